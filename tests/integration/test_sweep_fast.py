"""A short sweep against the emulator's fast profile with injected errors: every output exists and is
well formed, and the summary equals an independent computation from the raw JSONL (written here,
not by calling harness.analysis.metrics), including that failed requests never add tokens to throughput."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


# The default scenario's workload and server with 1 s warm-ups and 3 s windows (flags would do
# too, they win over per-step windows; a file keeps the command short).
SCENARIO = """\
name = "fast"

[workload]
tokenizer = "llama3"
seed = 11111
input_mean = 200
input_stddev = 50
output_mean = 40
output_stddev = 0

[steps]
spawn_rate = 100
users = [1, 4]
warmup = { min_s = 1, max_s = 1 }
measure = { min_s = 3, max_s = 3 }
restart = true

[target]
price_per_hour = 0.76
model_id = "meta-llama/Meta-Llama-3-8B-Instruct"
instance = "inf2.xlarge (emulated)"
emulator_profile = "fast"

[target.server_env]
MAX_BATCH_SIZE = "8"
[flags]
max_error_rate = 0.01
min_samples = 10

[request]
api = "generate_stream"
timeout_s = 120
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, scenario_file) -> Path:
    out = tmp_path_factory.mktemp("results")
    cmd = [
        sys.executable,
        "-m",
        "harness",
        "sweep",
        "--scenario",
        str(scenario_file(SCENARIO, "fast")),
        "--results-dir",
        str(out),
        "--run-id",
        "t",
        "--emulator-profile",
        "fast",
        "--emulator-args",
        "--error-rate 0.3 --seed 7",
        "--steps",
        "1,4",
        "--warmup-min-s",
        "1",
        "--warmup-max-s",
        "1",
        "--measure-min-s",
        "3",
        "--measure-max-s",
        "3",
        "--output-mean",
        "40",
        "--input-mean",
        "200",
        "--input-stddev",
        "50",
        "--prompt-pool-size",
        "100",
        "--quiet",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| Concurrent users | 1 | 4 |" in proc.stdout
    assert f"report: {out / 't' / 'report.html'}" in proc.stdout
    return out / "t"


def test_every_file_is_there_and_well_formed(run: Path) -> None:
    for name in (
        "summary.md",
        "summary.csv",
        "records.parquet",
        "report.html",
        "manifest.json",
        "steps.json",
        "run.jsonl",
        "locust_stats.csv",
        "locust_stats_history.csv",
        "locust_failures.csv",
        "locust.html",
    ):
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    jsonl = list(run.glob("records-*.jsonl"))
    assert len(jsonl) == 1
    lines = jsonl[0].read_text().splitlines()
    assert len(pd.read_parquet(run / "records.parquet")) == len(lines)
    manifest = json.loads((run / "manifest.json").read_text())
    for key in ("run_id", "config", "versions", "git", "machine", "server"):
        assert key in manifest, key
    assert manifest["server"]["kind"] == "emulator" and manifest["server"]["info"]["model_id"]
    assert manifest["server"]["model_id"] == manifest["server"]["info"]["model_id"]
    assert manifest["versions"]["locust"] and manifest["config"]["steps"]["users"] == [1, 4]
    assert manifest["server"]["emulator_stats"]["requests_total"]  # an end fact of the run log
    assert manifest["token_stamps"] == ("kernel" if sys.platform.startswith("linux") else "recv")
    steps = json.loads((run / "steps.json").read_text())
    assert [s["users"] for s in steps] == [1, 4]
    assert all(s["client"]["cpu_percent"] is not None for s in steps)
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 6
    md = (run / "summary.md").read_text()
    assert "How each row is computed" in md and "Cost per 1M output tokens" in md
    assert list(csv.reader(open(run / "locust_stats.csv")))[0][:2] == ["Type", "Name"]


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else math.nan


def test_summary_equals_independent_computation(run: Path) -> None:
    raw = [json.loads(line) for p in run.glob("records-*.jsonl") for line in p.read_text().splitlines()]
    steps = json.loads((run / "steps.json").read_text())
    rows = {int(r["users"]): r for r in csv.DictReader(open(run / "summary.csv"))}
    price = json.loads((run / "manifest.json").read_text())["config"]["target"]["price_per_hour"]
    failed_with_tokens = 0
    for s in steps:
        # the window opens with the first span tagged "measure" (a restart's one-shot ramp without a
        # warm-up) and the step closes when its cool-down ends
        phases = s["phases"]
        lo = min(p["start_wall"] for p in phases.values() if p["tag"] == "measure")
        close = phases["cooldown"]["end_wall"]
        end = lambda r: r["wall_start"] + r["t_end"] - r["t_send"]  # noqa: E731
        # a request counts in the step whose window it was sent in; still open at the close (or
        # cancelled by the client): censored, in no latency or error row
        sent = [r for r in raw if r["step"] == s["step"] and r["phase"] == "measure"]
        censored = [r for r in sent if r["error_type"] == "cancelled" or end(r) > close]
        mine = [r for r in sent if r not in censored]
        row = rows[s["users"]]
        assert int(row["sent"]) == len(sent) and int(row["censored"]) == len(censored)
        hi = close  # throughput, requests/min: from the window's opening to the step's close
        ok = [r for r in mine if r["error_type"] is None]
        bad = [r for r in mine if r["error_type"] is not None]
        row = rows[s["users"]]
        assert int(row["ok"]) == len(ok) > 0 and int(row["failed"]) == len(bad)
        ttft = [r["token_us"][0] / 1e6 for r in ok]
        # ITL: first to last token's arrival ÷ (tokens − 1), tokens the server's count when given
        tokens = lambda r: r["server_output_tokens"] or len(r["token_us"])  # noqa: E731
        itl = [
            (r["token_us"][-1] - r["token_us"][0]) / 1e6 / (tokens(r) - 1)
            for r in ok
            if len(r["token_us"]) > 1
        ]
        assert float(row["ttft_p50_s"]) == pytest.approx(_pct(ttft, 50), rel=1e-6)
        assert float(row["ttft_p99_s"]) == pytest.approx(_pct(ttft, 99), rel=1e-6)
        assert float(row["itl_p50_s"]) == pytest.approx(_pct(itl, 50), rel=1e-6)
        assert float(row["mean_output_tokens"]) == pytest.approx(np.mean([len(r["token_us"]) for r in ok]))
        tokens_ok = sum(  # served tokens: successful requests, and those the client cancelled
            1
            for r in raw
            if r["error_type"] in (None, "cancelled")
            for t in r["token_us"]
            if lo <= r["wall_start"] + t / 1e6 < hi
        )
        tokens_bad = sum(
            1
            for r in raw
            if r["error_type"] not in (None, "cancelled")
            for t in r["token_us"]
            if lo <= r["wall_start"] + t / 1e6 < hi
        )
        failed_with_tokens += tokens_bad
        tps = tokens_ok / (hi - lo)
        assert float(row["throughput_tps"]) == pytest.approx(tps, rel=1e-6)
        assert float(row["cost_per_million"]) == pytest.approx(price / (tps * 3600) * 1e6, rel=1e-6)
        done = sum(1 for r in raw if r["error_type"] is None and lo <= end(r) < hi)
        assert float(row["rpm"]) == pytest.approx(done * 60 / (hi - lo), rel=1e-6)
        assert json.loads(row["errors"]) == {
            k: sum(1 for r in bad if r["error_type"] == k) for k in {r["error_type"] for r in bad}
        }
    # the c=16 lesson: mid-stream failures streamed tokens, and none of them reached the throughput row
    assert failed_with_tokens > 0
    assert any("high error rate" in r["flags"] for r in rows.values())


def test_records_and_run_log_alone_rebuild_every_report_file(run: Path, tmp_path: Path) -> None:
    """`harness report DIR` on a copy holding only records-*.jsonl, run.jsonl and the scraped server
    metrics (server_metrics.jsonl) writes every report file identical to what the run wrote."""
    import shutil

    derived = ("manifest.json", "steps.json", "summary.md", "summary.csv", "records.parquet", "report.html",
               "server_metrics.parquet")
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in [*run.glob("records-*.jsonl"), run / "run.jsonl", run / "server_metrics.jsonl"]:
        shutil.copy(p, copy / p.name)
    proc = subprocess.run([sys.executable, "-m", "harness", "report", str(copy)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name in derived:
        assert (copy / name).read_bytes() == (run / name).read_bytes(), name


def _sweep_refused(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """A sweep that must stop before starting anything."""
    return subprocess.run([sys.executable, "-m", "harness", "sweep", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=env)


def test_bad_scenario_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[steps]\nusers = [1, 0]\n")
    proc = _sweep_refused("--scenario", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "steps.users[1]: Input should be greater than 0" in proc.stderr
    assert str(bad) in proc.stderr and "Traceback" not in proc.stderr


def test_unset_bearer_token_is_exit_2_before_anything_runs(tmp_path: Path) -> None:
    env = {**os.environ, "HARNESS_BEARER_TOKEN_ENV": "HARNESS_TEST_NO_SUCH_TOKEN"}
    env.pop("HARNESS_TEST_NO_SUCH_TOKEN", None)
    proc = _sweep_refused("--results-dir", str(tmp_path), env=env)
    assert proc.returncode == 2 and "HARNESS_TEST_NO_SUCH_TOKEN" in proc.stderr
    assert not any(tmp_path.iterdir())  # no run directory, no emulator started


def test_a_scenario_url_is_the_target(fast_emulator, scenario_file, tmp_path: Path) -> None:
    """Bug: a scenario's url was validated but never read: the sweep benchmarked an emulator it
    started instead."""
    path = scenario_file(f"""
name = "url"
[target]
url = "{fast_emulator.url}"
[workload]
input_mean = 50
input_stddev = 0
output_mean = 8
prompt_pool_size = 32
[steps]
users = [1]
warmup = {{ min_s = 0, max_s = 0 }}
measure = {{ min_s = 2, max_s = 2 }}
""", name="url")
    proc = subprocess.run([sys.executable, "-m", "harness", "sweep", "--scenario", str(path), "--results-dir",
                           str(tmp_path), "--run-id", "u", "--quiet", "--no-plots"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "starting the emulator" not in proc.stdout
    manifest = json.loads((tmp_path / "u" / "manifest.json").read_text())
    assert manifest["server"]["kind"] == "url" and manifest["server"]["url"] == fast_emulator.url
    assert manifest["config"]["request"]["model_name"] == "tgi"  # a TGI server: its documented name
