"""The streaming users under Locust, headless, against the emulator's exact profile: options from
flags, a config file and the environment; records, run log and manifest beside them; TTFT and ITL in
Locust's statistics (the users' own timing truth, a few ms: test_users_emulator.py).

Apart from test_users_emulator.py because their tolerance is looser (TTFT median ±15 ms): in the
serial pass they run beside the busy prestarted runs, not among the QUIET files (tests/conftest.py).
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from harness.records.record import read_records

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TTFT_MS, ITL_MS = 50.0, 20.0


@pytest.fixture(scope="module")
def emu(exact_emulator):
    """The session's exact-profile emulator (tests/integration/conftest.py)."""
    assert exact_emulator.args == ["--ttft-ms", str(TTFT_MS), "--itl-ms", str(ITL_MS)]
    return exact_emulator


def run_locust(locustfile: str, url: str, tmp: Path, seconds: int) -> tuple[list, list[dict]]:
    """Options arrive three ways: flags, a config file and HARNESS_* environment variables (the
    configuration model's names); the run log and manifest are written beside the records."""
    (tmp / "test.conf").write_text("prompt-pool-size = 40\ninput-mean = 200\n")
    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / locustfile), "--headless",
           "--config", str(tmp / "test.conf"), "-u", "4", "-r", "4", "-t", f"{seconds}s", "--host", url,
           "--records-dir", str(tmp / "rec"), "--csv", str(tmp / "stats"), "--only-summary"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false",
           "HARNESS_OUTPUT_MEAN": "20", "HARNESS_OUTPUT_STDDEV": "0"}  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=seconds + 90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = list((tmp / "rec").glob("records-*.jsonl"))
    assert len(files) == 1
    with open(tmp / "stats_stats.csv") as fh:
        rows = list(csv.DictReader(fh))
    records = read_records(files[0])
    assert {r.max_new_tokens for r in records} == {20}  # from the environment
    assert 100 < statistics.mean(r.input_tokens for r in records) < 300  # from the config file
    manifest = json.loads((tmp / "rec" / "manifest.json").read_text())
    assert manifest["config"]["workload"]["output_mean"] == 20 and manifest["server"]["model_id"]
    assert (tmp / "rec" / "run.jsonl").is_file()
    return records, rows


@pytest.mark.parametrize(
    "locustfile, route, seconds",
    [("tgi.py", "/generate_stream", 4), ("openai_chat.py", "/v1/chat/completions", 3)],
)
def test_locust_headless_run(emu, tmp_path, locustfile, route, seconds):
    records, rows = run_locust(locustfile, emu.url, tmp_path, seconds)
    ok = [r for r in records if r.ok]
    assert len(ok) >= 8
    assert {r.error_type for r in records} <= {None, "cancelled"}  # users stopped mid-request at -t
    assert all(r.output_tokens == r.server_output_tokens for r in ok)
    assert all(r.input_tokens == r.server_input_tokens for r in ok)
    by_type = {(row["Type"], row["Name"]): row for row in rows}
    post, total = by_type[("POST", route)], by_type[("", "Aggregated")]
    assert total["Request Count"] == post["Request Count"]  # TTFT/ITL not double-counted
    for metric in ("TTFT", "ITL"):
        assert int(by_type[(metric, route)]["Request Count"]) > 0
    assert not [key for key in by_type if "tokens" in key[0].lower()]  # never under Locust's "(ms)"
    assert float(by_type[("TTFT", route)]["Median Response Time"]) == pytest.approx(TTFT_MS, abs=15)
    assert json.loads(ok[0].to_json())["api"] == (
        "generate_stream" if route == "/generate_stream" else "chat"
    )
