"""Plain `locust -f locustfiles/...` runs against the emulator: the exact summary at the end (checked
against an independent computation from the records), the report files, `--stop-after-requests`,
the live client-bound warning of a starved client, and `--help`.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
REPORT_FILES = ("summary.md", "summary.csv", "records.parquet", "report.html", "manifest.json", "run.jsonl")
HOG_LOCUSTFILE = '''
import time

from locust import User, constant, events, task

from harness.load.locust.listeners import register
from harness.load.locust.users import TgiStreamUser

register(events)


class Streamer(TgiStreamUser):
    pass


class Hog(User):
    """Holds the gevent hub for 120 ms of CPU at a time: every token read waits behind it."""

    wait_time = constant(0.005)

    @task
    def hog(self):
        end = time.process_time() + 0.12
        while time.process_time() < end:
            pass
'''


def locust(locustfile: str | Path, *args: str, cwd: Path, timeout: float = 180):  # noqa: ANN201
    cmd = [sys.executable, "-m", "locust", "-f", str(locustfile), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def headless(url: str, rec: Path, *args: str) -> list[str]:
    return ["--headless", "--host", url, "--records-dir", str(rec), "--prompt-pool-size", "40",
            "--output-mean", "30", "--only-summary", *args]


def load(rec: Path) -> tuple[list[dict], list[dict]]:
    """The records (plain JSON) and the run log's steps, read without the harness."""
    records = []
    for path in rec.glob("records-*.jsonl"):
        records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    steps = None
    for line in (rec / "run.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if entry["kind"] == "steps":
            steps = entry["steps"]
    return records, steps


def wall_end(r: dict) -> float:
    return r["wall_start"] + r["t_end"] - r["t_send"]


def summary_row(text: str, label: str) -> list[float]:
    """The numbers of one distribution row of the printed summary: n, mean, min, p50, p90, p99, max."""
    line = next(ln for ln in text.splitlines() if ln.strip().startswith(label))
    return [float(x.replace(",", "")) for x in line.strip()[len(label):].split()]


def test_plain_headless_run_ends_with_exact_summary_and_report(fast_emulator, tmp_path):
    rec = tmp_path / "rec"
    proc = locust(ROOT / "locustfiles" / "openai_completions.py",
                  *headless(fast_emulator.url, rec, "-u", "4", "-r", "4", "-t", "4s"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stderr  # where Locust logs its table
    # after Locust's own table, with the directory's path
    assert out.index("Response time percentiles") < out.index("=== exact results")
    text = out[out.index("=== exact results"):]
    assert str(rec) in text and f"python -m harness report {rec}" in text
    for name in REPORT_FILES:
        assert (rec / name).is_file(), name

    # independently: the step's window from the run log, the attribution rule, numpy's percentiles
    records, steps = load(rec)
    assert len(steps) == 1 and steps[0]["users"] == 4
    window = steps[0]["phases"]["measure"]
    start, end = window["start_wall"], window["end_wall"]
    assert {r["step"] for r in records} == {0}
    measured = [r for r in records if r["phase"] in ("warmup", "measure") and r["error_type"] != "cancelled"
                and start <= wall_end(r) < end]
    ok = [r for r in measured if r["error_type"] is None]
    assert len(ok) >= 10
    cancelled = sum(r["error_type"] == "cancelled" for r in records)
    all_ok = sum(r["error_type"] is None for r in records)
    assert f"requests sent {len(records):,}: ok {all_ok:,}, failed 0, cancelled {cancelled:,}" in text
    assert f"measured: ok {len(ok):,}, failed 0" in text

    ttft_ms = [r["token_us"][0] / 1000 for r in ok]
    e2e_s = [r["t_end"] - r["t_send"] for r in ok]
    gaps_ms = [(b - a) / 1000 for r in ok for a, b in zip(r["token_us"], r["token_us"][1:], strict=False)]
    for label, values, unit in (("TTFT (ms)", ttft_ms, 0.05), ("E2E (s)", e2e_s, 0.005),
                                ("token gap (ms)", gaps_ms, 0.05)):
        n, mean, lo, p50, p90, p99, hi = summary_row(text, label)
        assert n == len(values), label
        expected = [np.mean(values), min(values), *np.percentile(values, [50, 90, 99]), max(values)]
        for shown, exact in zip((mean, lo, p50, p90, p99, hi), expected, strict=True):
            assert shown == pytest.approx(exact, abs=unit + 1e-9), (label, shown, exact)

    tokens = sum(1 for r in records if r["error_type"] in (None, "cancelled") for t in r["token_us"]
                 if start <= r["wall_start"] + t / 1e6 < end)
    tps = float(re.search(r"output tokens/s ([\d,.]+)", text).group(1).replace(",", ""))
    assert tps == pytest.approx(tokens / (end - start), abs=0.005 + 1e-9)
    out_total = int(re.search(r"output tokens client total ([\d,]+)", text).group(1).replace(",", ""))
    assert out_total == sum(r["output_tokens"] for r in ok)
    in_total = int(re.search(r"input tokens  client total ([\d,]+)", text).group(1).replace(",", ""))
    assert in_total == sum(r["input_tokens"] for r in ok)

    # the CSV holds the same figures at full precision
    with open(rec / "summary.csv") as fh:
        row = next(csv.DictReader(fh))
    assert float(row["ttft_p50_s"]) * 1000 == pytest.approx(np.percentile(ttft_ms, 50), rel=1e-9)
    assert float(row["throughput_tps"]) == pytest.approx(tokens / (end - start), rel=1e-9)

    # `python -m harness report` on the same directory prints the same summary
    again = subprocess.run([sys.executable, "-m", "harness", "report", str(rec), "--no-plots"], cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert summary_row(again.stdout, "TTFT (ms)") == summary_row(text, "TTFT (ms)")


def test_stop_after_requests_sends_exactly_n_and_cancels_none(fast_emulator, tmp_path):
    rec = tmp_path / "rec"
    proc = locust(ROOT / "locustfiles" / "tgi.py",
                  *headless(fast_emulator.url, rec, "-u", "8", "-r", "8", "-t", "300s",
                            "--stop-after-requests", "50"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--stop-after-requests: 50 requests sent and ended: stopping the test" in proc.stderr
    assert "--run-time limit reached" not in proc.stderr
    records, _ = load(rec)
    assert len(records) == 50
    assert [r for r in records if r["error_type"] == "cancelled"] == []
    assert "requests sent 50: ok 50, failed 0, cancelled 0" in proc.stderr


def test_starved_client_is_warned_live_and_in_the_summary(fast_emulator, tmp_path):
    (tmp_path / "hog.py").write_text(HOG_LOCUSTFILE)
    rec = tmp_path / "rec"
    proc = locust(tmp_path / "hog.py", *headless(fast_emulator.url, rec, "-u", "2", "-r", "2", "-t", "7s"),
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    mark = "/WARNING/harness.load.locust.monitor: client-bound"
    live = [ln for ln in proc.stderr.splitlines() if mark in ln]
    assert live, proc.stderr[-3000:]
    assert "WARNING client-bound" in proc.stderr


LOCUSTFILES = ["tgi.py", "openai_chat.py", "openai_completions.py", "sweep.py"]


@pytest.fixture(scope="module")
def help_of_all(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess:
    """One `locust -f a.py,b.py,... --help` for every locustfile (Locust prints its help before it
    imports any of them: harness.load.locust.help), not one process per file."""
    files = ",".join(str(ROOT / "locustfiles" / name) for name in LOCUSTFILES)
    return locust(files, "--help", cwd=tmp_path_factory.mktemp("help"), timeout=120)


@pytest.mark.parametrize("locustfile", LOCUSTFILES)
def test_help_lists_the_projects_options(help_of_all, locustfile):
    from harness.load.locust.help import hooks_suite

    proc = help_of_all
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the .pth adds the options when any -f file hooks the suite: this one must, on its own
    assert hooks_suite([str(ROOT / "locustfiles" / locustfile)]), locustfile
    hint = "is tgi_loadtest_locust_help.pth in the venv? (`make venv` installs it)"
    for flag in ("--stop-after-requests", "--input-mean", "--records-dir", "--scenario"):
        assert flag in proc.stdout, (flag, hint)
