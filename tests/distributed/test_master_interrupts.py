"""Ctrl-C and SIGTERM mid-step in a distributed sweep (`sweep --workers 2`: the master and two local
workers; the signal sent to the master's process group, as a terminal does). The workers run in
their own sessions, so only the master gets it. Once: the workers' users stop, their in-flight
requests arrive as `cancelled` records, the report is written, exit 130. Twice: exit 130 at once,
the records on disk parse. SIGTERM: like once, exit 143. Every time no traceback (master or
workers) and no worker left. (A single Ctrl-C takes the SIGTERM case's path — the sweep turns
SIGTERM into the same KeyboardInterrupt, harness.load.locust.interrupts — and only the exit code
differs; test_interrupts checks 130 for it on one process. Each run here pays two workers' start,
so the once-case is not run a third time.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from support.background import children_running, default_sigint, group_killed_on_exit, signal_group

from harness import exitcodes
from harness.records.record import read_records

pytestmark = pytest.mark.distributed
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("signum, times, code", [
    (signal.SIGINT, 2, exitcodes.INTERRUPTED),
    (signal.SIGTERM, 1, exitcodes.TERMINATED),
], ids=["ctrl-c-twice", "sigterm"])
def test_master_interrupted_mid_step(tmp_path: Path, fast_emulator, signum: int, times: int,
                                     code: int) -> None:
    run, log = tmp_path / "run", tmp_path / "out.log"
    cmd = [sys.executable, "-m", "harness", "sweep", "--workers", "2", "--url", fast_emulator.url,
           "--records-dir", str(run), "--steps", "4", "--warmup-min-s", "0", "--warmup-max-s", "0",
           "--measure-min-s", "120", "--measure-max-s", "120", "--input-mean", "30", "--input-stddev", "0",
           "--output-mean", "3000", "--output-stddev", "0", "--prompt-pool-size", "20", "--no-plots",
           "--scrape-every-s", "0", "--progress-every-s", "0.5"]
    with open(log, "w") as out:  # its own process group: signalled as a terminal would
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=default_sigint)
    workers: list[psutil.Process] = []
    with group_killed_on_exit(proc):
        deadline = time.monotonic() + 120
        while "4 users · measure" not in log.read_text():  # both workers run their users
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        time.sleep(1.0)  # requests in flight (3000 tokens: seconds each)
        workers = children_running(proc.pid, "--worker")
        assert len(workers) == 2
        signal_group(proc.pid, signum, times)
        proc.wait(90)
    text = log.read_text()
    assert proc.returncode == code, text[-3000:]
    deadline = time.monotonic() + 20
    while any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers):
        assert time.monotonic() < deadline, "a worker is left"
        time.sleep(0.2)
    text = log.read_text()  # the workers' last words included
    assert "Traceback" not in text, text[-3000:]
    records = [r for p in run.glob("records-*.jsonl") for r in read_records(p)]
    if times == 1:
        assert len(records) >= 4 and {r.error_type for r in records} == {"cancelled"}
        assert (run / "summary.md").is_file() and "cut short" in (run / "summary.md").read_text()
    else:
        assert "interrupted again: exiting now" in text
