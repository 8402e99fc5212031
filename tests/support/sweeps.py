"""Running `python -m harness sweep` as a user would, for the fault tests: one subprocess, its
output captured, and the checks every fault test makes (one error line, no traceback, every
request accounted)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from harness.records.record import read_records

ROOT = Path(__file__).resolve().parents[2]
# One short step: 2 users, outputs of 8 tokens, a 5 s request timeout, 64 prompts (not the default
# 1000: each process builds its pool before the clock starts); a test adds what it needs.
SHORT = ["--steps", "2", "--warmup-min-s", "0", "--measure-min-s", "30", "--input-mean", "60",
         "--input-stddev", "0", "--output-mean", "8", "--quiet", "--no-plots", "--timeout-s", "5",
         "--prompt-pool-size", "64"]


def sweep(tmp_path: Path, *args: str, timeout: float = 120,
          env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m harness sweep` with results in tmp_path/r/run."""
    env = {**(os.environ if env is None else env), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "harness", "sweep", "--results-dir", str(tmp_path / "r"),
                           "--run-id", "run", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The first `error:` line of stderr, after checking there is no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) >= 1, proc.stderr[-3000:]
    return lines[0]


def no_results(tmp_path: Path) -> None:
    """No run directory full of n/a: nothing was created."""
    assert not (tmp_path / "r" / "run").exists()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once we return: nothing listens there


def accounted(run: Path) -> list:
    """Every request sent is one parseable record; ok + failed + cancelled = all of them."""
    records = [r for p in run.glob("records-*.jsonl") for r in read_records(p)]
    ok = sum(r.ok for r in records)
    cancelled = sum(r.error_type == "cancelled" for r in records)
    failed = sum(not r.ok and r.error_type != "cancelled" for r in records)
    assert ok + failed + cancelled == len(records) > 0
    return records
