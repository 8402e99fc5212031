"""The seed's table reproduced against the emulator's inf2 profile (slow: ~1 min of wall clock,
so the sweeps are started as soon as the session's tests are collected: `prestart`, tests/conftest.py).

Acceptance: TTFT and ITL p50 within ±15 % of the seed at 1 and 2 users, and TTFT p50 rising with
users (1 → 2 → 4).

Seed values (seed-benchmark.md / seed-analysis.md): TTFT p50 1001 ms (1 user), 1419 ms (2 users).
ITL is compared with the decode time per token the seed implies, (E2E − TTFT) ÷ 149 ≈ 56 and
61 ms (seed-analysis.md), not with the seed's "ITL" row (52.18, 58.29 ms): our ITL is
(E2E − TTFT) ÷ (N − 1), the same definition as the former, while the row is llmperf's E2E ÷ output
tokens counted with the Llama 2 tokenizer (177 for ~150 real tokens), TTFT included. The row is
still checked, in its own convention (E2E ÷ tokens rescaled to the seed's 177/175 tokens).

Why 2 users give ~1.5 s: default.toml restarts users at each step (`[steps] restart = true`), so
both users start together, as in llmperf's runs. The first arrival is prefilled alone (~1.0 s),
the second waits for it and is prefilled next (~2.0 s); both then decode together and finish on
the same decode step, so every round repeats 1.0 / 2.0 s and the window counts whole pairs:
p50 ≈ 1.5 s. At 4 users the other three are prefilled together after the first (~3.8 s).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
from support.background import Background

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SEED_TTFT_MS = {1: 1001.0, 2: 1419.0}
SEED_TPOT_MS = {1: 56.0, 2: 61.0}  # (E2E − TTFT) ÷ 149, from the seed's TTFT and requests/min
SEED_LLMPERF_ITL_MS = {1: 52.18, 2: 58.29}  # the seed's "ITL" row: E2E ÷ Llama 2 token count
SEED_MEAN_OUTPUT = {1: 177.0, 2: 175.0}  # Llama 2 tokenizer counts of the same outputs
TOLERANCE = 0.15


def start_step(users: int) -> Background:
    """The sweep's step at `users` (~1 min of wall clock, little CPU), started when the session's
    tests are collected. One sweep per step, each with its own emulator, all at once: the steps
    restart their users anyway (each starts from an idle engine, as the first step of `--steps
    1,2,4` did), and the longest (6 rounds at 2 users, ~65 s) is the test's length instead of the
    sum of the three (~2.5 min). The scenario's own windows (6 requests at 1 user, 12 at 2): with
    2 requests per step the TTFT p50 at 2 users missed the seed by 20 % in 2 runs of 4. A pool of 32
    prompts, not the scenario's 1000 (≈ 6 CPU-s to build, three times at once): the prompts are
    handed out in order and their lengths drawn in order from `lengths_seed`, so the first 32 have
    the lengths they have in the pool of 1000, and no step sends more than 16."""
    return Background(lambda out: [
        sys.executable,
        "-m",
        "harness",
        "sweep",
        "--scenario",
        "default",
        "--results-dir",
        str(out),
        "--run-id",
        "inf2",
        "--steps",
        str(users),
        "--restart",
        "--prompt-pool-size",
        "32",
        "--quiet",
        "--no-plots",
    ], cwd=ROOT, timeout=300)


def start_1_user() -> Background:
    return start_step(1)


def start_2_users() -> Background:
    return start_step(2)


def start_4_users() -> Background:
    return start_step(4)


@pytest.mark.prestart.with_args(start_1_user, start_2_users, start_4_users)
def test_seed_table_reproduced(prestarted_all) -> None:
    rows = {}
    for proc, out in prestarted_all:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        rows.update({int(r["users"]): r for r in csv.DictReader(open(out / "inf2" / "summary.csv"))})
    assert sorted(rows) == [1, 2, 4]
    for users in (1, 2):
        row = rows[users]
        assert int(row["ok"]) >= 1 and int(row["failed"]) == 0
        if users == 2:  # whole rounds: as many first as second arrivals in the median
            assert int(row["ok"]) % 2 == 0, row["ok"]
        ttft_ms = float(row["ttft_p50_s"]) * 1000
        assert ttft_ms == pytest.approx(SEED_TTFT_MS[users], rel=TOLERANCE), (users, ttft_ms)
        itl_ms = float(row["itl_p50_s"]) * 1000
        assert itl_ms == pytest.approx(SEED_TPOT_MS[users], rel=TOLERANCE), (users, itl_ms)
        llmperf_ms = float(row["e2e_per_token_p50_s"]) * 1000 * float(row["mean_output_tokens"])
        llmperf_ms /= SEED_MEAN_OUTPUT[users]
        assert llmperf_ms == pytest.approx(SEED_LLMPERF_ITL_MS[users], rel=TOLERANCE), (users, llmperf_ms)
    ttft = [float(rows[u]["ttft_p50_s"]) for u in (1, 2, 4)]
    assert ttft[0] < ttft[1] < ttft[2], ttft
