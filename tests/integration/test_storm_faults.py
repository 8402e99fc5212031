"""A server that fails every request once the run has started (HTTP errors, then gone): the
error storm stops the run with the error's type and exit 4, users back off instead of flooding
the records, and what was recorded is complete and accounted for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.sweeps import ROOT, SHORT, accounted, one_error_line, sweep

from harness import exitcodes
from harness.targets.emulator_process import EmulatorProcess

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("status,extra", [
    (503, {"retry_after": "2"}), (500, {}), (422, {}), (424, {"http_body": False}), (429, {}),
])
def test_an_error_storm_mid_run_stops_with_its_type_and_exit_4(tmp_path: Path, faulty_emulator,
                                                               status: int, extra: dict) -> None:
    emu = faulty_emulator(http_status=status, after=1, **extra)  # the pre-flight's request passes
    # 16 users: the first 50 failures arrive before each user's back-off has grown
    proc = sweep(tmp_path, "--url", emu.url, *SHORT, "--steps", "16")
    assert proc.returncode == exitcodes.TARGET_UNUSABLE, proc.stderr[-2000:]
    line = one_error_line(proc)
    assert f"HTTP {status}" in line and "the first 50 requests all failed" in line
    run = tmp_path / "r" / "run"
    records = accounted(run)
    failed = [r for r in records if r.status == status]
    assert len(failed) >= 50
    assert (run / "summary.md").is_file()  # the report is written from what was recorded
    lines = [json.loads(x) for x in (run / "run.jsonl").read_text().splitlines()]
    assert any(x.get("facts", {}).get("stopped") for x in lines)


def test_a_server_that_dies_mid_run_is_exit_4_and_bounded(tmp_path: Path) -> None:
    """Connection refused mid-run: users back off, the storm stops the run, no flood of records."""
    emu = EmulatorProcess(profile="fast").start()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "sweep", "--results-dir", str(tmp_path / "r"),
                             "--run-id", "run", "--url", emu.url, *SHORT, "--steps", "16"],
                            cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run = tmp_path / "r" / "run"
    try:
        import time

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(run.glob("records-*.jsonl")):
            time.sleep(0.2)
        time.sleep(1.0)
        emu.stop()
        out, err = proc.communicate(timeout=120)
    finally:
        emu.stop()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == exitcodes.TARGET_UNUSABLE, err[-2000:]
    assert "Traceback" not in err
    assert "the server is gone" in err or "connection" in err
    records = accounted(run)
    assert len(records) < 5000  # a refused-connection loop writes thousands a second without backoff
