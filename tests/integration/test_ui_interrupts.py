"""Ctrl-C and SIGTERM in `python -m harness ui` mid-step (a sweep started through the web UI's own
/swarm API; the signal sent to the process group, as a terminal does). Once: the test stops, its
in-flight requests are `cancelled` (the emulator lived), the step is written (summary.md), exit
130. Twice: exit 130 at once, the records on disk parse. SIGTERM: like once, exit 143. Every time
no traceback and no child left: neither the Locust process nor the emulator the UI started."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest
from support.background import default_sigint, group_killed_on_exit, signal_group
from support.net import free_port

from harness import exitcodes
from harness.records.record import read_records

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SCENARIO = """\
name = "uisig"
[workload]
input_mean = 30
input_stddev = 0
output_mean = 2000
output_stddev = 0
prompt_pool_size = 20
[steps]
users = [4]
warmup = { min_s = 0, max_s = 0 }
measure = { min_s = 120, max_s = 120 }
[output]
plots = false
"""


def _wait(predicate, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _up(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("signum, times, code", [
    (signal.SIGINT, 1, exitcodes.INTERRUPTED),
    (signal.SIGINT, 2, exitcodes.INTERRUPTED),
    (signal.SIGTERM, 1, exitcodes.TERMINATED),
], ids=["ctrl-c", "ctrl-c-twice", "sigterm"])
def test_ui_interrupted_mid_step(tmp_path: Path, scenario_file, signum: int, times: int, code: int) -> None:
    results, port, log = tmp_path / "r", free_port(), tmp_path / "ui.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "LOCUST_"))}
    env.update(PYTHONPATH=str(ROOT), TOKENIZERS_PARALLELISM="false", HARNESS_RESULTS_DIR=str(results))
    cmd = [sys.executable, "-m", "harness", "ui", "--scenario", str(scenario_file(SCENARIO, "uisig")),
           "--web-port", str(port), "--emulator-profile", "fast", "--emulator-args", "--itl-ms 5"]
    with open(log, "w") as out:  # its own process group: signalled as a terminal would
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=default_sigint)
    base = f"http://127.0.0.1:{port}"
    family: list[psutil.Process] = []
    with group_killed_on_exit(proc):
        _wait(lambda: _up(base + "/") or proc.poll() is not None, 60, "the web UI")
        target = re.search(r"target (http://[0-9.:]+)", log.read_text()).group(1)
        form = {"user_classes": "SweepUser", "shape_class": "StepSweep", "user_count": "1", "spawn_rate": "1",
                "host": target}
        with urllib.request.urlopen(base + "/swarm", data=urllib.parse.urlencode(form).encode(),
                                    timeout=30) as resp:
            assert json.loads(resp.read())["success"]
        _wait(lambda: list(results.glob("*/records-*.jsonl")), 60, "the test's records")
        run = next(results.glob("*"))
        _wait(lambda: '"measure"' in (run / "run.jsonl").read_text() or "4 total users" in log.read_text(),
              30, "the step's users")
        time.sleep(1.0)  # requests in flight (2000 tokens at 5 ms: 10 s each)
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        assert len(family) == 3, family  # the UI, its emulator, Locust
        signal_group(proc.pid, signum, times)
        proc.wait(60)
    text = log.read_text()
    assert proc.returncode == code, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    records = [r for p in run.glob("records-*.jsonl") for r in read_records(p)]
    _wait(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in family), 15,
          "no child left")
    if times == 1:
        assert records and {r.error_type for r in records} == {"cancelled"}, {r.error_type for r in records}
        assert (run / "summary.md").is_file() and "cut short" in (run / "summary.md").read_text()
    else:
        assert "interrupted again" in text
