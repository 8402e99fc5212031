"""The emulator that `sweep` started dies mid-run (SIGKILL, as an OOM kill would): the run stops at
once with exit 4 (target unusable) and one line saying it crashed — not 20 refused connections
later as an error storm — with the records up to the fault parseable and the report written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from support.background import default_sigint

from harness import exitcodes
from harness.records.record import read_records

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _records_written(run: Path) -> bool:
    return any(p.stat().st_size > 0 for p in run.glob("records-*.jsonl"))


def test_emulator_killed_mid_sweep_exits_4_saying_it_crashed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "harness", "sweep", "--records-dir", str(run), "--emulator-profile", "fast",
           "--steps", "4", "--warmup-min-s", "0", "--warmup-max-s", "0", "--measure-min-s", "300",
           "--measure-max-s", "300", "--input-mean", "20", "--input-stddev", "0", "--output-mean", "20",
           "--output-stddev", "0", "--prompt-pool-size", "20", "--quiet", "--no-plots",
           "--scrape-every-s", "0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None and not _records_written(run):
            time.sleep(0.1)
        emulators = [c for c in psutil.Process(proc.pid).children() if "emulate" in " ".join(c.cmdline())]
        assert len(emulators) == 1, (proc.poll(), emulators)
        emulators[0].send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=60)  # 300 s window: only the crash ends it this soon
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == exitcodes.TARGET_UNUSABLE, err[-2000:]
    assert "Traceback" not in err, err
    said = [line for line in err.splitlines() if "crashed" in line]
    pid = emulators[0].pid
    assert said and said[0] == f"error: the emulator crashed mid-run (killed by SIGKILL, pid {pid})"
    records = [r for p in run.glob("records-*.jsonl") for r in read_records(p)]
    assert records and any(r.ok for r in records)  # what was measured before the fault is kept
    assert (run / "summary.md").is_file() and (run / "report.html").is_file()
