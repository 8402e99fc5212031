"""`harness sweep --server neuronx-tgi` end to end with a real Docker engine.

The emulator image stands in for neuronx-tgi: the sweep goes through the neuronx-tgi profile's code
path (env, port publishing, health wait, manifest, teardown); only the image differs, and there
are no /dev/neuron* devices here. The HF token must reach the container and nothing else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.docker import LABEL_RUN_ID, SECRET, assert_no_secret

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

SCENARIO = """
name = "docker-short"

[workload]
input_mean = 120
input_stddev = 20
output_mean = 20
output_stddev = 0

[steps]
spawn_rate = 100
users = [1, 2]
warmup = { min_s = 0, max_s = 0 }
measure = { min_s = 3, min_requests = 4, max_s = 20 }

[target]
price_per_hour = 0.76
server = "neuronx-tgi"
image = "IMAGE"
model_id = "meta-llama/Meta-Llama-3-8B-Instruct"
instance = "inf2.xlarge (emulator image)"
startup_timeout_s = 120
devices = []          # no Inferentia here: the only difference from a real run besides the image

[target.server_env]
HF_AUTO_CAST_TYPE = "fp16"
HF_NUM_CORES = "2"
MAX_BATCH_SIZE = "4"
MAX_INPUT_LENGTH = "4000"
MAX_TOTAL_TOKENS = "4096"
EMULATOR_PROFILE = "fast"

[request]
api = "generate_stream"
timeout_s = 60
"""


def test_sweep_starts_the_server_container_and_removes_it(client, emulator_image, tmp_path):  # noqa: F811
    scenario = tmp_path / "docker.toml"
    scenario.write_text(SCENARIO.replace("IMAGE", emulator_image))
    run_id = "docker-sweep-test"
    env = {**os.environ, "HF_TOKEN": SECRET, "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "sweep", "--scenario", str(scenario), "--server", "neuronx-tgi",
         "--no-pull", "--results-dir", str(tmp_path / "results"), "--run-id", run_id, "--no-plots"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = tmp_path / "results" / run_id
    manifest = json.loads((run_dir / "manifest.json").read_text())
    server = manifest["server"]
    assert server["kind"] == "neuronx-tgi"
    container = server["container"]
    assert container["image"] == emulator_image and container["image_id"].startswith("sha256:")
    assert container["config"]["profile"] == "neuronx-tgi"
    assert container["config"]["env"]["HF_TOKEN"] == "<redacted>"
    assert server["info"]["model_id"] == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert (run_dir / "server.log").read_text().count("READY") == 1
    summary = (run_dir / "summary.csv").read_text()
    assert summary.strip(), "empty summary"
    records = [json.loads(line) for p in run_dir.glob("records-*.jsonl")
               for line in p.read_text().splitlines()]
    assert any(r.get("error_type") is None for r in records)
    # the server's side: /metrics scraped, and the image's neuron-monitor stand-in run by docker exec
    telemetry = manifest["telemetry"]
    assert telemetry["prometheus"]["scrapes"] > 0
    assert telemetry["neuron"]["reports"] > 0, telemetry["neuron"]
    assert telemetry["neuron"]["hardware"]["neuron_device_type"] == "emulated"
    md = (run_dir / "summary.md").read_text()
    assert "NeuronCore utilization" in md and "Server batch size" in md
    assert client.containers.list(all=True, filters={"label": f"{LABEL_RUN_ID}={run_id}"}) == []
    assert_no_secret(run_dir)
    assert SECRET not in proc.stdout + proc.stderr
