"""The web UI's tests end like headless ones: no directory before a test starts, one directory per
test with its manifest, run log, records and report, whatever the shape (Locust's own user count,
StepSweep), the exact summary in the log, and a step stopped in the middle of its window flagged
cut short."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from support.net import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SCENARIO = """\
name = "uitest"
[workload]
prompt_pool_size = 40
output_mean = 30
[steps]
users = [2, 4]
warmup = { min_s = 1, max_s = 1 }
measure = { min_s = 60, max_s = 60 }
[output]
plots = false
"""



def _post(url: str, data: dict | None = None) -> str:
    body = urllib.parse.urlencode(data or {}).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=30) as r:
        return r.read().decode()


def _wait(predicate, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_web_ui_tests_each_end_with_a_report(tmp_path, fast_emulator, scenario_file):
    results, port = tmp_path / "results", free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "LOCUST_"))}
    env.update(PYTHONPATH=str(ROOT), TOKENIZERS_PARALLELISM="false", HARNESS_RESULTS_DIR=str(results),
               HARNESS_SCENARIO=str(scenario_file(SCENARIO)))
    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "sweep.py"), "--class-picker",
           "--web-host", "127.0.0.1", "--web-port", str(port), "--host", fast_emulator.url]
    log = tmp_path / "locust.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    base = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            try:
                urllib.request.urlopen(base + "/", timeout=2).close()
                return True
            except OSError:
                return False

        _wait(up, 60, "the web UI")
        time.sleep(1)
        assert not results.exists()  # no test yet: no directory

        def run_test(**form: str) -> Path:
            before = set(results.glob("*")) if results.exists() else set()
            _post(base + "/swarm", {"host": fast_emulator.url, "user_classes": "SweepUser", **form})
            _wait(lambda: results.exists() and set(results.glob("*")) - before, 60, "the test's directory")
            (new,) = set(results.glob("*")) - before
            _wait(lambda: any(p.stat().st_size for p in new.glob("records-*.jsonl")), 60, "records")
            time.sleep(4)
            _post(base + "/stop")
            _wait(lambda: (new / "summary.md").is_file(), 90, f"the report in {new}")
            return new

        plain = run_test(user_count="3", spawn_rate="3")  # Locust's own user count, no shape
        sweep = run_test(user_count="1", spawn_rate="1", shape_class="StepSweep")
    finally:
        proc.terminate()
        proc.wait(30)
    text = log.read_text()
    for run in (plain, sweep):
        for name in ("manifest.json", "run.jsonl", "summary.md", "summary.csv", "records.parquet",
                     "report.html"):
            assert (run / name).is_file(), (run, name)
        assert "=== exact results from the records" in text and str(run.name) in text
    assert "| Concurrent users | 3 |" in (plain / "summary.md").read_text()
    assert "cut short (test stopped" not in (plain / "summary.md").read_text()  # measured until stopped
    swept = (sweep / "summary.md").read_text()
    assert "| Concurrent users | 2 |" in swept and "cut short (test stopped" in swept, swept[:1500]
