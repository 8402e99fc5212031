"""An open-loop step over Locust's master and two workers: the master splits the rate, each worker
drives its share with its own seed, and the union of both schedules is the requested process
(a constant 20 req/s: the two workers' 10 req/s schedules interleave). Then a trace step: entry i
goes to worker i mod 2, and the union of what both sent is the trace."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.background import Background

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "locustfiles" / "sweep.py"
CLUSTER = ROOT / "tests" / "support" / "locust_cluster.py"
RUN_TIMEOUT_S = 60.0

SCENARIO = """\
name = "openloop-distributed"

[workload]
input_mean = 50
input_stddev = 0
output_mean = 5
output_stddev = 0
prompt_pool_size = 100

[steps]
users = [{ rate = 20, arrival = "constant", measure = { min_s = 4, max_s = 4 } }, { trace = "TRACE" }]
warmup = { min_s = 1, max_s = 1 }

[request]
timeout_s = 30

[output]
plots = false
"""
TRACE = [{"timestamp": 0.05 * i, "input_tokens": 60 + i, "output_tokens": 2} for i in range(16)]


def start_run() -> Background:
    """Master, two workers and a fast-profile emulator of their own (tests/support/locust_cluster.py),
    started once the session's tests are collected (in the serial pass beside the engine tier,
    whose checks compare the client's and the engine's own times of the same tokens; its checks
    here are on intended send times and counts, which a neighbour's load does not move)."""

    def command(tmp: Path) -> list[str]:
        trace = tmp / "trace.jsonl"
        trace.write_text("".join(json.dumps(e) + "\n" for e in TRACE))
        (tmp / "scenario.toml").write_text(SCENARIO.replace("TRACE", str(trace)))
        return [sys.executable, str(CLUSTER), str(tmp), "fast", "2", str(RUN_TIMEOUT_S), str(LOCUSTFILE),
                "--records-dir", str(tmp / "records")]  # fmt: skip

    return Background(command, cwd=ROOT, timeout=RUN_TIMEOUT_S + 30)


pytestmark = [pytest.mark.distributed, pytest.mark.integration,
              pytest.mark.prestart.with_args(start_run)]


@pytest.fixture
def records(prestarted) -> Path:
    proc, tmp = prestarted
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-9000:]
    return tmp / "records"


def test_the_union_of_the_workers_schedules_is_the_requested_rate(records: Path) -> None:
    files = sorted(records.glob("records-*.jsonl"))
    per_worker = [[json.loads(line) for line in p.read_text().splitlines()] for p in files]
    assert len(per_worker) == 2 and all(per_worker), [p.name for p in files]

    def intended(r: dict) -> float:
        return r["wall_start"] - (r["t_send"] - r["t_intended"])

    shares = []
    for recs in per_worker:
        times = sorted(intended(r) for r in recs if r["phase"] == "measure" and r["step"] == 0)
        assert all(r["t_intended"] is not None for r in recs)
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert sorted(gaps)[len(gaps) // 2] == pytest.approx(0.1, abs=0.002)  # each worker: 10 req/s
        shares.append(times)
    union = sorted(shares[0] + shares[1])
    gaps = [b - a for a, b in zip(union, union[1:], strict=False)]
    # interleaved on the step's common clock: the union is 20 req/s, gaps of 50 ms
    assert len(union) == pytest.approx(20 * 4, rel=0.1)
    assert statistics_median(gaps) == pytest.approx(0.05, abs=0.005)
    rebuilt = subprocess.run([sys.executable, "-m", "harness", "report", str(records), "--no-plots"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    row = next(csv.DictReader(open(records / "summary.csv")))
    assert float(row["achieved_rps"]) / float(row["offered_rps"]) == pytest.approx(1.0, abs=0.02)


def test_the_master_splits_a_trace_entry_i_to_worker_i_mod_2(records: Path) -> None:
    shares = []
    for path in sorted(records.glob("records-*.jsonl")):
        recs = [json.loads(line) for line in path.read_text().splitlines()]
        shares.append(sorted(r["input_tokens"] - 60 for r in recs if r["step"] == 1))  # its entries' numbers
    assert sorted(shares) == [list(range(0, 16, 2)), list(range(1, 16, 2))]  # each entry once, i mod 2


def statistics_median(xs: list[float]) -> float:
    ordered = sorted(xs)
    return ordered[len(ordered) // 2]
