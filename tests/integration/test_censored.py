"""A server slower than its step: the requests sent in the window are reported as censored (still
open when the cool-down's hard cap closed the step), never silently dropped, and a step that
measured nothing prints no throughput or cost (bug: 0 requests measured at 8 and 16 users printed
1.68 tok/s and $125 per 1M tokens)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

# 300 tokens at 20 ms: each request takes ~6 s; the window is 1–2 s (the shape polls every second)
# and the cool-down may last 0.5 s.
SCENARIO = """\
name = "censored"

[workload]
input_mean = 40
input_stddev = 0
output_mean = 300
output_stddev = 0
prompt_pool_size = 50

[steps]
users = [4, 2]
warmup = { min_s = 0, max_s = 0 }
measure = { min_s = 1, max_s = 1 }
cooldown_max_s = 0.5
restart = true

[target]
price_per_hour = 0.76
"""


def test_requests_open_at_the_close_are_censored_not_dropped(tmp_path, scenario_file, exact_emulator) -> None:
    scenario = str(scenario_file(SCENARIO, "censored"))
    cmd = [sys.executable, "-m", "harness", "sweep", "--scenario", scenario, "--url", exact_emulator.url,
           "--results-dir", str(tmp_path), "--run-id", "t", "--quiet", "--no-plots"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = tmp_path / "t"
    raw = [json.loads(line) for p in run.glob("records-*.jsonl") for line in p.read_text().splitlines()]
    for row in csv.DictReader(open(run / "summary.csv")):
        step = int(row["step"])
        sent = [r for r in raw if r["step"] == step and r["phase"] == "measure"]
        # every request sent in the window is in the row: ok + failed + censored
        ok, failed, censored = int(row["ok"]), int(row["failed"]), int(row["censored"])
        assert int(row["sent"]) == len(sent) == ok + failed + censored > 0
        assert censored == len(sent) and ok == 0  # none ended within 2.5 s
        assert "censored" in row["flags"] and "nothing measured" in row["flags"]
        # nothing measured: no throughput, requests/min or cost as if measured
        for key in ("throughput_tps", "rpm", "cost_per_million"):
            assert row[key] in ("", "nan"), (key, row[key])
    md = (run / "summary.md").read_text()
    assert "| Cost per 1M output tokens | n/a | n/a |" in md
    assert "| Throughput (output tokens/s) | n/a | n/a |" in md
