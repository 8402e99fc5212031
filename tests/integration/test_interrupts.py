"""Ctrl-C during a sweep that started its own emulator: the emulator runs in its own session, so the
terminal's SIGINT (sent here to the sweep's process group, as a terminal does) reaches only the
harness. Once: users stop, in-flight requests are `cancelled` (not errors of a killed server), the
run log says interrupted, the report is written, the emulator is stopped, exit 130. Twice: exit
130 at once, the records on disk still parse, and no emulator is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.background import signal_group

from harness import exitcodes
from harness.records.record import read_records

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # CI may run us with SIGINT ignored


def _emulator_pids(marker: str) -> list[int]:
    out = subprocess.run(["ps", "-eww", "-o", "pid,args"], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "harness emulate" in line and marker in line]


def _interrupt(tmp_path: Path, times: int, signum: int = signal.SIGINT
               ) -> tuple[subprocess.CompletedProcess, Path, str]:
    run = tmp_path / "r" / "run"
    marker = f"--seed {os.getpid() % 100000 + times}"  # finds this test's emulator in `ps`
    cmd = [sys.executable, "-m", "harness", "sweep", "--results-dir", str(tmp_path / "r"), "--run-id", "run",
           "--emulator-profile", "fast", "--emulator-args", f"--itl-ms 5 {marker}", "--steps", "4",
           "--warmup-min-s", "0", "--measure-min-s", "120", "--output-mean", "4000", "--input-mean", "60",
           "--input-stddev", "0", "--prompt-pool-size", "32", "--quiet", "--no-plots"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=_default_sigint)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not list(run.glob("records-*.jsonl")):
            time.sleep(0.2)
        time.sleep(1.5)  # requests in flight (4000 tokens at 5 ms: 20 s each)
        assert _emulator_pids(marker), f"the sweep's emulator is not running: {proc.poll()}"
        signal_group(proc.pid, signum, times)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), run, marker


def test_ctrl_c_once_cancels_in_flight_writes_the_report_and_stops_the_emulator(tmp_path: Path) -> None:
    proc, run, marker = _interrupt(tmp_path, 1)
    assert proc.returncode == exitcodes.INTERRUPTED, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr, proc.stderr
    records = [r for p in run.glob("records-*.jsonl") for r in read_records(p)]
    assert records and {r.error_type for r in records} == {"cancelled"}  # not `truncated`: the server lived
    facts = [json.loads(x).get("facts", {}) for x in (run / "run.jsonl").read_text().splitlines()]
    assert any(f.get("interrupted") for f in facts)
    assert (run / "summary.md").is_file()
    assert not _emulator_pids(marker)


def test_ctrl_c_twice_exits_at_once_with_parseable_records_and_no_child_left(tmp_path: Path) -> None:
    proc, run, marker = _interrupt(tmp_path, 2)
    assert proc.returncode == exitcodes.INTERRUPTED, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for path in run.glob("records-*.jsonl"):
        read_records(path)  # complete lines parse; a torn last one is skipped
    deadline = time.monotonic() + 10
    while _emulator_pids(marker) and time.monotonic() < deadline:  # PR_SET_PDEATHSIG → SIGTERM
        time.sleep(0.2)
    assert not _emulator_pids(marker)


def test_sigterm_ends_the_run_like_ctrl_c_with_exit_143(tmp_path: Path) -> None:
    proc, run, marker = _interrupt(tmp_path, 1, signal.SIGTERM)
    assert proc.returncode == exitcodes.TERMINATED, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    records = [r for p in run.glob("records-*.jsonl") for r in read_records(p)]
    assert records and {r.error_type for r in records} == {"cancelled"}
    assert (run / "summary.md").is_file()
    assert not _emulator_pids(marker)
