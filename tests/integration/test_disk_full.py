"""The results directory's disk fills up mid-run (a 1 MB tmpfs, most of it taken beforehand): the
sweep stops with exit 2 (harness.exitcodes: the results directory) and one line naming the file and
"No space left on device" — no traceback from the record writer's greenlet, Locust's CSV writer or
an event handler — and every record line written before the fault parses (a line torn by the
fault is the only one skipped)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.background import default_sigint

from harness import exitcodes
from harness.records.record import read_records

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_disk(tmp_path: Path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                              capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no mount command: cannot make a small disk (a 1 MB tmpfs)")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a 1 MB tmpfs (needs root / CAP_SYS_ADMIN): {proc.stderr.strip()}")
    try:
        (mnt / "filler").write_bytes(b"\0" * (1024 * 1024 - 160 * 1024))  # ~160 kB left: ~250 records
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def test_disk_full_mid_run_one_line_exit_2_records_parse(small_disk: Path, fast_emulator) -> None:
    run = small_disk / "run"
    cmd = [sys.executable, "-m", "harness", "sweep", "--records-dir", str(run), "--url", fast_emulator.url,
           "--steps", "8", "--warmup-min-s", "0", "--warmup-max-s", "0", "--measure-min-s", "300",
           "--measure-max-s", "300", "--input-mean", "20", "--input-stddev", "0", "--output-mean", "8",
           "--output-stddev", "0", "--prompt-pool-size", "20", "--quiet", "--no-plots",
           "--scrape-every-s", "0"]
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=120, preexec_fn=default_sigint)  # only the fault ends it
    assert proc.returncode == exitcodes.BAD_INPUT, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Uncaught exception" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and errors[0].startswith("error: cannot write "), proc.stderr  # (+ log lines)
    assert "No space left on device" in errors[0] and str(run) in errors[0]
    paths = list(run.glob("records-*.jsonl"))
    lines = [line for p in paths for line in p.read_text(errors="replace").splitlines()]
    parsed = [r for p in paths for r in read_records(p)]
    assert len(parsed) >= 50 and len(lines) - len(parsed) <= len(paths)  # at most the torn last line
    for line in lines[:-1]:
        json.loads(line)
