"""The container lifecycle against a real Docker engine, with the emulator image built locally.

The emulator runs through the *neuronx-tgi* profile's code path: only the image and the device
list differ from a real Inferentia run. Nothing is pulled. Without a Docker engine these tests are
skipped, except in CI (CI=true), where they fail: CI must start dockerd (see .ci/run).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from support.background import default_sigint
from support.docker import LABEL_RUN_ID, SECRET, assert_no_secret

from harness.targets.servers import HostFacts, ServerSettings, TokenSource

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]


def neuron_settings(image: str, tmp_path: Path, **changes) -> ServerSettings:
    """The seed's neuronx-tgi settings, with the image swapped and no devices (no Inferentia here)."""
    settings = ServerSettings(
        profile="neuronx-tgi", image=image, model_id="meta-llama/Meta-Llama-3-8B-Instruct",
        env={"HF_AUTO_CAST_TYPE": "fp16", "HF_NUM_CORES": 2, "MAX_BATCH_SIZE": 4,
             "MAX_INPUT_LENGTH": 4000, "MAX_TOTAL_TOKENS": 4096},
        devices=(), host_port=0, host_ip="127.0.0.1", hf_cache=str(tmp_path / "hf-cache"),
    )
    return settings.with_overrides(**changes)


def facts(tmp_path: Path) -> HostFacts:
    return HostFacts(home=str(tmp_path), token=TokenSource("env", "HF_TOKEN", SECRET))


def leftovers(client, run_id: str) -> list:
    return client.containers.list(all=True, filters={"label": f"{LABEL_RUN_ID}={run_id}"})


def post(url: str, body: dict) -> bytes:
    headers = {"Content-Type": "application/json"}
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 200
        return resp.read()


def test_lifecycle_emulator_through_the_neuron_profile(client, emulator_image, tmp_path):
    from harness.targets.container import ManagedServer

    run_id = f"test-{uuid.uuid4().hex[:8]}"
    results = tmp_path / "results"
    messages: list[str] = []
    with ManagedServer(neuron_settings(emulator_image, tmp_path), run_id=run_id, results_dir=results,
                       facts=facts(tmp_path), no_pull=True, progress=messages.append) as srv:
        assert len(leftovers(client, run_id)) == 1
        with urllib.request.urlopen(f"{srv.url}/health", timeout=5) as resp:
            assert resp.status == 200
        assert srv.info["model_id"] == "meta-llama/Meta-Llama-3-8B-Instruct"  # MODEL_ID reached it
        assert srv.info["max_input_tokens"] == 4000 and srv.info["max_total_tokens"] == 4096
        out = json.loads(post(f"{srv.url}/generate", {"inputs": "Shall I compare thee",
                                                      "parameters": {"max_new_tokens": 5}}))
        assert out["generated_text"]
        stream = post(f"{srv.url}/generate_stream", {"inputs": "to a summer's day",
                                                     "parameters": {"max_new_tokens": 4}}).decode()
        assert stream.count("data:") == 4
        manifest = srv.manifest()
        container = client.containers.get(srv.container_id)
        assert f"HF_TOKEN={SECRET}" in container.attrs["Config"]["Env"]  # the server does get it
        assert container.labels[LABEL_RUN_ID] == run_id
    assert leftovers(client, run_id) == []
    assert manifest["image_id"].startswith("sha256:") and manifest["image"] == emulator_image
    assert manifest["config"]["env"]["HF_TOKEN"] == "<redacted>"
    assert manifest["config"]["profile"] == "neuronx-tgi" and manifest["config"]["devices"] == []
    assert manifest["server_info"]["model_id"] == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert manifest["ready_after_s"] is not None and manifest["log_file"] == "server.log"
    (results / "manifest.json").write_text(json.dumps(manifest, indent=2))
    (results / "progress.txt").write_text("\n".join(messages))
    assert "READY" in (results / "server.log").read_text()
    assert any("healthy after" in m for m in messages)
    assert_no_secret(results)


def test_missing_image_with_no_pull_fails_clearly(client, tmp_path):
    from harness.targets.container import ImageUnavailableError, ManagedServer

    run_id = f"test-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ImageUnavailableError, match="not on this host and pulling is disabled"):
        ManagedServer(neuron_settings("tgi-loadtest/absent:0", tmp_path), run_id=run_id, no_pull=True,
                      facts=facts(tmp_path), progress=lambda m: None).start()
    assert leftovers(client, run_id) == []


def test_container_exiting_at_start_fails_with_its_log(client, emulator_image, tmp_path):
    from harness.targets.container import ManagedServer, ServerStartError

    run_id = f"test-{uuid.uuid4().hex[:8]}"
    settings = neuron_settings(emulator_image, tmp_path,
                               args=("sh", "-c", "echo model failed to load: $HF_TOKEN >&2; exit 3"))
    with pytest.raises(ServerStartError) as err:
        with ManagedServer(settings, run_id=run_id, results_dir=tmp_path / "r", facts=facts(tmp_path),
                           no_pull=True, progress=lambda m: None):
            pytest.fail("should not become healthy")
    assert "exited with code 3" in str(err.value) and "model failed to load" in str(err.value)
    assert SECRET not in str(err.value)
    assert err.value.log_path and "model failed to load: <redacted>" in err.value.log_path.read_text()
    assert leftovers(client, run_id) == []
    assert_no_secret(tmp_path / "r")


def test_server_never_healthy_times_out(client, emulator_image, tmp_path):
    from harness.targets.container import ManagedServer, ServerStartError

    run_id = f"test-{uuid.uuid4().hex[:8]}"
    settings = neuron_settings(emulator_image, tmp_path, env={"EMULATOR_ARGS": "--startup-delay-s 600"},
                               health_timeout_s=3.0)
    messages: list[str] = []
    t0 = time.monotonic()
    with pytest.raises(ServerStartError, match="not healthy after 3 s"):
        ManagedServer(settings, run_id=run_id, results_dir=tmp_path / "r", facts=facts(tmp_path),
                      no_pull=True, progress=messages.append, progress_every_s=1.0).start()
    assert time.monotonic() - t0 < 60  # 3 s of waiting plus start and removal, with slack
    assert any("still loading" in m for m in messages)
    assert (tmp_path / "r" / "server.log").exists()
    assert leftovers(client, run_id) == []


SCRIPT = textwrap.dedent("""
    import sys, time
    from harness.targets.container import ManagedServer
    from harness.targets.servers import HostFacts, ServerSettings, TokenSource
    settings = ServerSettings(profile="neuronx-tgi", image=sys.argv[1], devices=(), host_port=0,
                              host_ip="127.0.0.1", hf_cache=None, model_id="m/x",
                              env={"EMULATOR_ARGS": sys.argv[3]} if sys.argv[3] else {})
    facts = HostFacts(home="/nonexistent", token=TokenSource("env", "HF_TOKEN", "hf_x"))
    print("STARTING", flush=True)
    with ManagedServer(settings, run_id=sys.argv[2], facts=facts, no_pull=True, progress_every_s=0.5,
                       progress=lambda m: print(m, flush=True)) as srv:
        print("UP", srv.url, flush=True)
        time.sleep(300)
""")


@pytest.mark.parametrize(("when", "signals"), [
    ("up", [signal.SIGINT]),
    ("up", [signal.SIGINT, signal.SIGINT]),  # the second Ctrl-C lands during cleanup
    ("up", [signal.SIGTERM]),
    ("loading", [signal.SIGINT]),  # Ctrl-C while waiting for /health
])
def test_interrupt_leaves_no_container(client, emulator_image, tmp_path, when, signals):
    run_id = f"test-{uuid.uuid4().hex[:8]}"
    delay = "--startup-delay-s 600" if when == "loading" else ""
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, emulator_image, run_id, delay], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=default_sigint)
    lines: list[str] = []
    try:
        wanted = "UP " if when == "up" else "still loading"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith(wanted) or wanted in line:
                break
        assert any(wanted in ln for ln in lines), "".join(lines)
        assert len(leftovers(client, run_id)) == 1
        for sig in signals:
            proc.send_signal(sig)
            time.sleep(0.05)
        rest, _ = proc.communicate(timeout=60)
        lines.append(rest)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(lines)
    assert proc.returncode != 0, output
    assert "removed container" in output, output
    assert leftovers(client, run_id) == [], output
