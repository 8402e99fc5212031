"""Plain `locust -f` runs get the same pre-flight and storm guard as the sweep (through the
listeners): an unusable target is one line and exit 4 before any user starts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness import exitcodes

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def locust(locustfile: str, host: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / locustfile),
                           "--headless", "--host", host, "--records-dir", str(tmp_path / "rec"), "-u", "1",
                           "-t", "20s"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)


def test_closed_port_is_exit_4_before_any_user(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = locust("sweep.py", f"http://127.0.0.1:{port}", tmp_path)
    assert proc.returncode == exitcodes.TARGET_UNUSABLE
    assert "error: nothing listens at" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "rec").exists()


def test_the_tgi_locustfile_against_an_openai_only_server_says_so(tmp_path: Path, faulty_emulator) -> None:
    emu = faulty_emulator(openai_only=True)
    proc = locust("tgi.py", emu.url, tmp_path)
    assert proc.returncode == exitcodes.TARGET_UNUSABLE
    assert "POST /generate_stream answered HTTP 404" in proc.stderr and "Traceback" not in proc.stderr


def test_a_missing_tokenizer_is_exit_2_without_a_traceback(tmp_path: Path, fast_emulator) -> None:
    proc = subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "sweep.py"),
                           "--headless", "--host", fast_emulator.url, "--tokenizer", str(tmp_path / "none")],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == exitcodes.BAD_INPUT
    assert f"error: --tokenizer {tmp_path / 'none'}" in proc.stderr and "Traceback" not in proc.stderr
