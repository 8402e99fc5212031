"""Open-loop `rate = R` steps run by Locust against the exact-profile emulator, mixed with a
closed-loop step in one plan: the offered and achieved rates, schedule lag, client queue time under
a concurrency cap, and records carrying their intended send times."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from support.background import Background

ROOT = Path(__file__).resolve().parents[2]

SCENARIO = """\
name = "openloop"

[workload]
input_mean = 60
input_stddev = 0
output_mean = 5
output_stddev = 0
prompt_pool_size = 200

[steps]
users = [
  { rate = 40, arrival = "constant", measure = { min_s = 5, max_s = 5 } },
  { users = 2, measure = { min_s = 2, max_s = 2 } },
  { rate = 20, arrival = "poisson", max_concurrency = 2, measure = { min_s = 3, max_s = 3 } },
]
warmup = { min_s = 0, max_s = 0 }
measure = { min_s = 4, max_s = 4 }

[flags]
min_samples = 1
"""


def start_sweep() -> Background:
    """The sweep (~18 s of wall clock) with its own exact-profile emulator (50 ms / 20 ms), started
    once the session's tests are collected, or in one process once the QUIET files' tests are done
    (its Locust users keep part of a core busy: `busy`, tests/conftest.py), after the distributed
    open-loop run started with the session: nothing busy of the serial pass runs beside its capped
    step, whose scheduling lag decides the client-bound flag (at 10 ms p99; it was raised beside
    the master and workers)."""

    def command(out: Path) -> list[str]:
        scenario = out / "openloop.toml"
        scenario.write_text(SCENARIO)
        return [sys.executable, "-m", "harness", "sweep", "--scenario", str(scenario),
                "--emulator-profile", "exact", "--emulator-args", "--ttft-ms 50 --itl-ms 20",
                "--results-dir", str(out), "--run-id", "t", "--quiet", "--no-plots"]  # fmt: skip

    return Background(command, cwd=ROOT, timeout=240)


pytestmark = [pytest.mark.integration, pytest.mark.prestart.with_args(start_sweep, busy=1)]


@pytest.fixture
def run(prestarted) -> Path:
    proc, out = prestarted
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| Load (users or rate) | 40 req/s | 2 | 20 req/s |" in proc.stdout, proc.stdout[-3000:]
    return out / "t"


def rows(run: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(run / "summary.csv")))


def test_achieved_rate_is_the_offered_rate(run: Path) -> None:
    row = rows(run)[0]
    offered, achieved = float(row["offered_rps"]), float(row["achieved_rps"])
    assert offered == pytest.approx(40.0, rel=0.05)  # a constant schedule: 40 per s of window
    assert achieved / offered == pytest.approx(1.0, abs=0.01)
    assert int(row["sent"]) >= 190 and int(row["failed"]) == 0
    assert float(row["lag_p50_s"]) >= 0


def test_records_carry_their_intended_send_time(run: Path) -> None:
    raw = [json.loads(line) for p in run.glob("records-*.jsonl") for line in p.read_text().splitlines()]
    open_loop = [r for r in raw if r["step"] == 0 and r["phase"] == "measure"]
    closed = [r for r in raw if r["step"] == 1]
    assert open_loop and all(r["t_intended"] is not None for r in open_loop)
    assert all(r["t_send"] >= r["t_intended"] for r in open_loop)  # never sent before its time
    gaps = sorted(b["t_intended"] - a["t_intended"] for a, b in zip(open_loop, open_loop[1:], strict=False))
    assert gaps[len(gaps) // 2] == pytest.approx(0.025, abs=1e-6)  # the constant schedule's 1/40 s
    assert closed and all(r["t_intended"] is None for r in closed)  # the closed-loop step in between


def test_a_capped_step_reports_client_queue_time(run: Path) -> None:
    capped = rows(run)[2]
    # 5 tokens take ~130 ms: 2 slots carry ~15 req/s, so arrivals at 20 req/s wait for a slot
    assert float(capped["queue_p99_s"]) > 0.05
    assert "queued at max_concurrency" in capped["flags"]
    # the cap, not the client, held the achieved rate below the offered one
    assert float(capped["achieved_rps"]) < float(capped["offered_rps"])
    assert "client-bound" not in capped["flags"] or float(capped["lag_p99_s"]) > 0.005
    steps = json.loads((run / "steps.json").read_text())
    assert steps[2]["rate"] == 20 and steps[2]["max_concurrency"] == 2 and "rate" not in steps[1]
