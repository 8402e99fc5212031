"""`python -m harness search` end to end against the emulator.

The inf2 profile (`inf2-xlarge-llama3-8b`) has 8 batch slots. With 50-token prompts and 24 output
tokens, up to 8 closed-loop users are all served at once: TTFT is at most the prefill of the one
request that arrived first and then of the other seven (≈ 0.18 + 0.67 s ≈ 0.85 s) — while a 9th user
waits for a whole batch to finish (its prefill and 24 decode steps of ≈ 65 ms: ≈ 2.4 s more), and
among any 9 consecutive sends of 9 users one is such a waiter. A TTFT p99 objective of 1.5 s
therefore crosses between 8 and 9 users, and the search must land there within one step. A plain
sweep of the same settings (7, 8, 9, 10 users, ≥ 10 requests each) measured TTFT p99 773 / 854 /
2,538 / 2,622 ms.

Kept short (≈ 40 s): 3 steps (8 users passes, doubling is capped at max_load 10, which fails, the
bisection tries 9, which fails: [8, 9)), ≥ 10 measured requests a step; started when the session's
tests are collected (tests/support/background.py), as it mostly waits on the emulator's clock.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from support.background import Background

from harness import exitcodes
from harness.emulator.profiles import PROFILES

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SLOTS = PROFILES["inf2-xlarge-llama3-8b"].max_batch_size
TTFT_SLO_MS = 1500.0
SHORT = ["--input-mean", "50", "--input-stddev", "0", "--output-mean", "24", "--prompt-pool-size", "32",
         "--warmup-min-s", "1", "--measure-min-requests", "10", "--measure-min-s", "1",
         "--measure-max-s", "10", "--quiet"]


def start_search() -> Background:
    return Background(lambda out: [
        sys.executable, "-m", "harness", "search", "--emulator-profile", "inf2-xlarge-llama3-8b",
        "--ttft-p99-ms", str(TTFT_SLO_MS), "--request-ttft-ms", str(TTFT_SLO_MS),
        "--start-load", "8", "--max-load", "10", "--resolution", "0",
        "--results-dir", str(out), "--run-id", "search", *SHORT,
    ], cwd=ROOT, timeout=120)


@pytest.mark.prestart.with_args(start_search)
def test_search_lands_where_ttft_p99_crosses_the_slo(prestarted) -> None:
    proc, out = prestarted
    assert proc.returncode == exitcodes.OK, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = out / "search"
    rows = list(csv.DictReader(open(run / "summary.csv")))
    tried = {int(r["users"]): r for r in rows}
    passed = sorted(u for u, r in tried.items() if r["slo_pass"] == "True")
    failed = sorted(u for u, r in tried.items() if r["slo_pass"] == "False")
    lo, hi = max(passed), min(failed)
    assert abs(lo - SLOTS) <= 1 and hi == lo + 1, (passed, failed)  # within one step of the slots
    assert float(tried[lo]["ttft_p99_s"]) * 1000 <= TTFT_SLO_MS < float(tried[hi]["ttft_p99_s"]) * 1000
    # goodput: requests under the per-request TTFT threshold; all of them at the passing load
    good = tried[lo]
    assert float(good["goodput_rps"]) == pytest.approx(int(good["ok"]) / float(good["window_s"]))
    assert float(tried[hi]["goodput_rps"]) < float(tried[hi]["sent_per_s"])
    answer = f"capacity: {lo} users (the capacity lies in [{lo}, {hi}) users"
    assert answer in proc.stdout
    for name in ("search-latency.png", "search-goodput.png", "search-pareto.png"):
        assert (run / name).stat().st_size > 1000
    # every tried step's records are in the run's records: the report rebuilds the answer offline
    (run / "summary.md").unlink()
    rebuilt = subprocess.run([sys.executable, "-m", "harness", "report", str(run), "--no-plots"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert rebuilt.returncode == 0, rebuilt.stderr
    summary = (run / "summary.md").read_text().split("## Capacity search")[1]
    assert f"**Answer: {lo} users (the capacity lies in [{lo}, {hi}) users" in summary
    assert summary.count("| pass |") == len(passed) and "fail: TTFT p99" in summary


def test_slo_missed_at_the_lowest_load_is_its_own_exit_code(fast_emulator, tmp_path: Path) -> None:
    proc = subprocess.run([
        sys.executable, "-m", "harness", "search", "--url", fast_emulator.url, "--ttft-p99-ms", "0.001",
        "--start-load", "1", "--min-load", "1", "--output-mean", "4", "--prompt-pool-size", "16",
        "--warmup-min-s", "0", "--measure-min-requests", "4", "--measure-max-s", "5",
        "--results-dir", str(tmp_path), "--run-id", "miss", "--quiet", "--no-plots",
    ], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == exitcodes.SLO_UNMET, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "no load met the SLOs" in proc.stdout and "missed even at the lowest load tried" in proc.stderr
    assert "search: step 0 at 1 users: TTFT p99" in proc.stdout and "step 1" not in proc.stdout


def test_a_search_needs_an_slo(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "harness", "search", "--results-dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == exitcodes.BAD_INPUT and "search needs an SLO" in proc.stderr
    assert "Traceback" not in proc.stderr
