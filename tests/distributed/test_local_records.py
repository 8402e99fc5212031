"""`--worker-records local` (very large runs): the workers keep their records in their own
directories and send none to the master; `python -m harness collect` merges the master's run log
and the workers' records into one run directory with the report (here all on one host: each
worker's copy is under <run dir>/worker-<id>/)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from harness.targets.emulator_process import EmulatorProcess

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "LOCUST_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return env


def test_local_worker_records_collected_into_one_report(tmp_path: Path,
                                                        fast_emulator: EmulatorProcess) -> None:
    run_dir, merged = tmp_path / "run", tmp_path / "merged"
    cmd = [sys.executable, "-m", "harness", "sweep", "--workers", "2", "--url", fast_emulator.url,
           "--records-dir", str(run_dir), "--steps", "2", "--warmup-min-s", "1", "--warmup-max-s", "1",
           "--measure-min-s", "3", "--measure-max-s", "3", "--input-mean", "50", "--input-stddev", "0",
           "--output-mean", "20", "--output-stddev", "0", "--prompt-pool-size", "40", "--no-plots", "--quiet",
           "--worker-records", "local", "--report-every-s", "1"]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=180,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not list(run_dir.glob("records-*.jsonl"))  # nothing was sent to the master
    copies = sorted(run_dir.glob("worker-*/records-*.jsonl"))
    assert len(copies) == 2, sorted(p.name for p in run_dir.iterdir())
    assert "python -m harness collect" in proc.stdout + proc.stderr  # the sweep says where they are
    ids = [json.loads(line)["request_id"] for p in copies for line in p.read_text().splitlines() if line]
    collect = [sys.executable, "-m", "harness", "collect", str(merged), str(run_dir), "--no-plots"]
    done = subprocess.run(collect, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    merged_files = sorted(merged.glob("records-*.jsonl"))
    assert sorted(p.name for p in merged_files) == sorted(p.name for p in copies)
    got = [json.loads(line)["request_id"] for p in merged_files
           for line in p.read_text().splitlines() if line]
    assert sorted(got) == sorted(ids) and len(got) == len(set(got))
    rows = list(csv.DictReader(open(merged / "summary.csv")))
    assert [int(r["users"]) for r in rows] == [2] and int(rows[0]["ok"]) > 0, rows
