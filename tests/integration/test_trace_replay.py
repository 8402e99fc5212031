"""Trace replay against the exact-profile emulator: a trace written here, replayed at its own speed
and at twice it under a concurrency cap (the second step given by `--steps`, keeping the file's
table): every entry sent once, at its intended time on the trace's clock, with its own sizes or
text, and the report's offered and achieved rates."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
# entry i: 60 + i input tokens (so a record names its entry), 2-4 output tokens; a pause after 12
ENTRIES = [{"timestamp": round(0.04 * i + (0.3 if i >= 12 else 0.0), 3), "input_tokens": 60 + i,
            "output_tokens": 2 + i % 3} for i in range(20)]
TEXT = "Say hello to the trace."
ENTRIES.append({"timestamp": 1.2, "input_tokens": 9, "output_tokens": 2, "text": TEXT})

SCENARIO = """\
name = "trace"

[workload]
input_mean = 60
input_stddev = 0
output_mean = 3
prompt_pool_size = 10

[steps]
users = [{{ trace = "{trace}" }}, {{ trace = "{trace}", speed = 2, max_concurrency = 2 }}]

[flags]
min_samples = 1
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, scenario_file, exact_emulator) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("trace")
    trace = out / "t.jsonl"
    trace.write_text("".join(json.dumps(e) + "\n" for e in ENTRIES))
    scenario = scenario_file(SCENARIO.format(trace=trace), "trace")
    cmd = [sys.executable, "-m", "harness", "sweep", "--scenario", str(scenario), "--url", exact_emulator.url,
           "--steps", f"trace:{trace},trace:{trace}@2", "--results-dir", str(out), "--run-id", "t",
           "--quiet", "--no-plots"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out / "t", proc.stdout


def records(run: Path, step: int) -> list[dict]:
    raw = [json.loads(line) for p in run.glob("records-*.jsonl") for line in p.read_text().splitlines()]
    return sorted((r for r in raw if r["step"] == step), key=lambda r: r["t_intended"])


@pytest.mark.parametrize("step,speed", [(0, 1.0), (1, 2.0)])
def test_every_entry_is_sent_once_at_its_intended_time(run: tuple[Path, str], step: int,
                                                      speed: float) -> None:
    recs = records(run[0], step)
    assert len(recs) == len(ENTRIES) and all(r["phase"] == "measure" and r["status"] == 200 for r in recs)
    by_size = {r["input_tokens"]: r for r in recs}
    assert len(by_size) == len(ENTRIES)  # each entry's own prompt, once
    t0 = recs[0]["t_intended"]
    for e in ENTRIES[:-1]:
        r = by_size[e["input_tokens"]]  # the prompt has exactly the entry's input tokens
        assert r["max_new_tokens"] == e["output_tokens"]
        assert r["t_intended"] - t0 == pytest.approx(e["timestamp"] / speed, abs=1e-6)  # the trace's clock
        assert r["t_send"] >= r["t_intended"]  # never before its time
    # the entry with its own text: sent as is (the record holds its exact token count, not the trace's 9)
    assert sum(1 for r in recs if r["input_tokens"] not in {e["input_tokens"] for e in ENTRIES[:-1]}) == 1


def test_the_report_shows_offered_and_achieved(run: tuple[Path, str]) -> None:
    path, stdout = run
    assert "| Load (users or rate) | trace t | trace t ×2 |" in stdout, stdout[-3000:]
    assert "| Rate: nominal / offered / achieved (req/s) |" in stdout
    rows = list(csv.DictReader(open(path / "summary.csv")))
    for row in rows:
        assert int(row["sent"]) == len(ENTRIES) and int(row["failed"]) == 0
        # every entry was sent in the window
        assert float(row["achieved_rps"]) == pytest.approx(float(row["offered_rps"]))
        assert row["trace"].endswith("t.jsonl")
    assert float(rows[1]["queue_p50_s"]) >= 0  # the capped step reports client queue time
    steps = json.loads((path / "steps.json").read_text())
    assert [s.get("speed") for s in steps] == [1.0, 2.0] and steps[1]["max_concurrency"] == 2
