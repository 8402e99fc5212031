"""The LLM tab's data route with `--processes 2` (a master and two forked workers, the web UI on the
master): a sweep started through the UI's own /swarm endpoint shows its steps, phases and the
workers' user count live, and once it ends the report link builds report.html from the workers'
records and serves it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from support.background import default_sigint
from support.net import free_port

pytestmark = pytest.mark.distributed
ROOT = Path(__file__).resolve().parents[2]

SCENARIO = """\
name = "ui-processes"

[workload]
tokenizer = "llama3"
seed = 5
input_mean = 50
input_stddev = 0
output_mean = 20
output_stddev = 0
prompt_pool_size = 40

[steps]
spawn_rate = 100
users = [1, 2]
warmup = { min_s = 1, max_s = 1 }
measure = { min_s = 3, max_s = 3 }
restart = true

[request]
api = "generate_stream"
timeout_s = 30

[distributed]
report_every_s = 1  # the workers' stats reports: a step's cool-down lasts this and 1 s

[output]
plots = false
"""



def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.read()


def test_llm_tab_state_with_processes(fast_emulator, tmp_path):
    (tmp_path / "scenario.toml").write_text(SCENARIO)
    run = tmp_path / "run"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HARNESS_SCENARIO": str(tmp_path / "scenario.toml"), "HARNESS_RECORDS_DIR": str(run),
           "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    log = open(tmp_path / "locust.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "sweep.py"), "--processes", "2",
         "--class-picker", "--web-host", "127.0.0.1", "--web-port", str(port), "--host", fast_emulator.url],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        preexec_fn=default_sigint,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # the UI is up and both workers have connected
            try:
                if '"worker_count": 2' in get(base + "/").decode():
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "locust.log").read_text()
            time.sleep(0.3)
        form = urllib.parse.urlencode({"shape_class": "StepSweep", "user_classes": "SweepUser",
                                       "user_count": "1", "spawn_rate": "1", "host": fast_emulator.url})
        started = json.loads(urllib.request.urlopen(base + "/swarm", data=form.encode(), timeout=30).read())
        assert started["success"], started

        seen_phases, users = set(), 0
        deadline = time.monotonic() + 60
        while True:
            state = json.loads(get(base + "/llm/state"))
            if state["current"]:
                seen_phases.add(state["current"]["phase"])
            users = max([users, *(p["users"] or 0 for p in state["points"])])
            if state["report"]:
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.5)
        assert state["distributed"] is True and state["test"] == 1
        assert {"warmup", "measure"} <= seen_phases | {"done"} and users == 2
        assert [s["step"] for s in state["spans"] if s["phase"] == "measure"] == [0, 1]
        assert state["table"]["users"] == [1, 2]
        html = get(base + "/" + state["report"]).decode()  # built from the workers' record files
        assert "<table>" in html and (run / "report.html").is_file()
        steps = json.loads((run / "steps.json").read_text())
        assert [s["users"] for s in steps] == [1, 2]
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
