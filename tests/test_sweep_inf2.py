"""The seed's table reproduced against the emulator's inf2 profile (slow: ~1.5 min).

Seed values (seed-benchmark.md / seed-analysis.md): TTFT p50 1001 ms (1 user), 1419 ms (2 users);
the seed's "ITL" is llmperf's E2E ÷ output tokens with the Llama 2 tokenizer (177 for ~150 real
tokens): 52.18 and 58.29 ms; the decode time per token it implies, (E2E − TTFT) ÷ 149, is ≈ 56 and
61 ms. Tolerance ±15 %; TTFT p50 must rise with users.

Known difference at 2 users: the seed's llmperf fork sends in waves (both users start together, so
their prompts are prefilled as one batch: ~1.9 s), while here users run back to back and drift
apart, so most prompts are prefilled alone (~1.0 s). The 2-user TTFT is therefore checked to lie
between the 1-user value and the seed's 2-user value (±15 %), not to equal the latter.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
SEED_TTFT_MS = {1: 1001.0, 2: 1419.0}
SEED_LLMPERF_ITL_MS = {1: 52.18, 2: 58.29}
SEED_MEAN_OUTPUT = {1: 177.0, 2: 175.0}  # Llama 2 tokenizer counts of the same outputs
SEED_TPOT_MS = {1: 56.0, 2: 61.0}


def test_seed_table_reproduced(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "harness",
        "sweep",
        "--scenario",
        "scenarios/default.toml",
        "--results-dir",
        str(tmp_path),
        "--run-id",
        "inf2",
        "--steps",
        "1,2,4",
        "--quiet",
        "--no-plots",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {int(r["users"]): r for r in csv.DictReader(open(tmp_path / "inf2" / "summary.csv"))}
    for users in (1, 2):
        row = rows[users]
        assert int(row["ok"]) >= 1 and int(row["failed"]) == 0
        ttft_ms = float(row["ttft_p50_s"]) * 1000
        if users == 1:
            assert ttft_ms == pytest.approx(SEED_TTFT_MS[1], rel=0.15), (users, ttft_ms)
        else:
            assert SEED_TTFT_MS[1] * 0.85 <= ttft_ms <= SEED_TTFT_MS[2] * 1.15, (users, ttft_ms)
        itl_ms = float(row["itl_p50_s"]) * 1000
        assert itl_ms == pytest.approx(SEED_TPOT_MS[users], rel=0.15), (users, itl_ms)
        # llmperf's convention, with the seed's token count: E2E ÷ 177 instead of E2E ÷ 150
        llmperf_ms = float(row["e2e_per_token_p50_s"]) * 1000 * float(row["mean_output_tokens"])
        llmperf_ms /= SEED_MEAN_OUTPUT[users]
        assert llmperf_ms == pytest.approx(SEED_LLMPERF_ITL_MS[users], rel=0.15), (users, llmperf_ms)
    ttft = [float(rows[u]["ttft_p50_s"]) for u in (1, 2, 4)]
    # 1 vs 2 users differ by less than the prompt-length noise of a few samples; 4 users queue visibly
    assert max(ttft[0], ttft[1]) < ttft[2], ttft
