"""Server profiles are data: planned and rendered without Docker, the seed's `docker run` line included."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from harness.config.layers import find_scenario, load_config
from harness.targets.servers import (
    PROFILES,
    REDACTED,
    HostFacts,
    ServerConfigError,
    ServerSettings,
    TokenSource,
    docker_run_command,
    find_token,
    plan,
    settings_from_target,
)

REPO = Path(__file__).resolve().parents[2]
SEED_DOC = REPO.parent / "shared" / "reference" / "seed-benchmark.md"
SECRET = "hf_TESTSECRETdoNotLeak0123456789"
HOME = "/home/ubuntu"

# seed-benchmark.md, "Start the TGI Container" (copied so the test runs without shared/).
SEED_LINE = """docker run --privileged -ti -p 8000:80 \\
  -v ~/.cache/huggingface:/root/.cache/huggingface \\
  -e MODEL_ID="meta-llama/Meta-Llama-3-8B-Instruct" \\
  -e HF_TOKEN=$(cat ~/.cache/huggingface/token) \\
  -e HF_AUTO_CAST_TYPE="fp16" \\
  -e HF_NUM_CORES=2 \\
  -e MAX_BATCH_SIZE=8 \\
  -e MAX_INPUT_LENGTH=4000 \\
  -e MAX_TOTAL_TOKENS=4096 \\
  ghcr.io/huggingface/neuronx-tgi:0.0.23"""


def seed_facts(**changes) -> HostFacts:
    token = TokenSource("file", f"{HOME}/.cache/huggingface/token", SECRET)
    return replace(HostFacts(home=HOME, neuron_devices=("/dev/neuron0",), token=token), **changes)


def seed_settings() -> ServerSettings:
    """The seed scenario's [server] table (privileged, port 8000 included), rendered with `-ti` as typed."""
    scenario = load_config(find_scenario("seed"), cli={"server": "neuronx-tgi"}, environ={})
    return settings_from_target(scenario.target, tty=True)


def squash(text: str) -> str:
    return " ".join(text.replace("\\\n", " ").split())


def test_seed_scenario_renders_the_seed_docker_run_line_exactly():
    rendered = docker_run_command(plan(seed_settings(), seed_facts()))
    assert rendered == SEED_LINE
    if SEED_DOC.is_file():  # and the copy above is the document's line
        block = re.search(r"```bash\n(docker run .*?)\n```", SEED_DOC.read_text(), re.S)
        assert block and squash(block.group(1)) == squash(rendered)


def test_seed_plan_runs_privileged_without_listing_devices_and_mounts_the_hf_cache():
    spec = plan(seed_settings(), seed_facts())
    assert spec.privileged and spec.devices == ()
    kwargs = spec.docker_kwargs()
    mount = {"bind": "/root/.cache/huggingface", "mode": "rw"}
    assert kwargs["volumes"] == {f"{HOME}/.cache/huggingface": mount}
    assert kwargs["ports"] == {"80/tcp": ("0.0.0.0", 8000)}
    assert kwargs["environment"]["HF_TOKEN"] == SECRET  # docker-py gets the value...
    assert list(kwargs["environment"])[:2] == ["MODEL_ID", "HF_TOKEN"]
    assert spec.health_timeout_s == 3600  # the scenario's startup_timeout_s


def test_the_token_never_appears_outside_docker_kwargs():
    spec = plan(seed_settings(), seed_facts())
    for text in (repr(spec), str(spec.redacted()), docker_run_command(spec, detach=True), repr(seed_facts())):
        assert SECRET not in text
    assert spec.redacted()["env"]["HF_TOKEN"] == REDACTED
    assert spec.redacted()["hf_token_source"] == "file:~/.cache/huggingface/token"
    assert spec.secrets() == (SECRET,)


def test_neuron_devices_found_on_the_host_are_passed_unless_privileged():
    facts = seed_facts(neuron_devices=("/dev/neuron0", "/dev/neuron1"))
    spec = plan(replace(seed_settings(), privileged=False, tty=False), facts)
    assert spec.docker_kwargs()["devices"] == [f"/dev/neuron{i}:/dev/neuron{i}:rwm" for i in (0, 1)]
    line = docker_run_command(spec)
    assert "--privileged" not in line and "--device=/dev/neuron0" in line and "--device=/dev/neuron1" in line
    with pytest.raises(ServerConfigError, match="no /dev/neuron"):
        plan(replace(seed_settings(), privileged=False), seed_facts(neuron_devices=()))


def test_emulator_through_the_neuron_profile_differs_only_in_image_and_devices():
    facts = seed_facts()
    real = plan(replace(seed_settings(), privileged=False), facts).redacted()
    emu = plan(replace(seed_settings(), privileged=False, image="tgi-loadtest/emulator:0.1.0", devices=()),
               facts).redacted()
    differ = {k for k in real if real[k] != emu[k]}
    assert differ == {"image", "devices", "warnings", "docker_run"}
    assert emu["warnings"] and "not one the neuronx-tgi profile knows" in emu["warnings"][0]


@pytest.mark.parametrize("image", ["ghcr.io/huggingface/text-generation-inference:3.3.5-neuron",
                                   "ghcr.io/huggingface/neuronx-tgi:0.0.28"])
def test_known_neuron_images_plan_without_warnings(image):
    assert plan(replace(seed_settings(), image=image), seed_facts()).warnings == ()


def test_token_from_the_environment_is_passed_by_reference():
    facts = HostFacts(home=HOME, neuron_devices=("/dev/neuron0",),
                      token=find_token({"HF_TOKEN": SECRET}, HOME))
    line = docker_run_command(plan(seed_settings(), facts))
    assert "-e HF_TOKEN \\" in line and SECRET not in line
    facts = replace(facts, token=find_token({"HUGGING_FACE_HUB_TOKEN": SECRET}, HOME))
    assert '-e HF_TOKEN="$HUGGING_FACE_HUB_TOKEN"' in docker_run_command(plan(seed_settings(), facts))


def test_find_token_order_env_then_file(tmp_path):
    (tmp_path / ".cache" / "huggingface").mkdir(parents=True)
    (tmp_path / ".cache" / "huggingface" / "token").write_text(SECRET + "\n")
    expected = TokenSource("file", f"{tmp_path}/.cache/huggingface/token", SECRET)
    assert find_token({}, str(tmp_path)) == expected
    assert find_token({"HF_TOKEN": "hf_env"}, str(tmp_path)).where == "HF_TOKEN"
    assert find_token({"HUGGING_FACE_HUB_TOKEN": "hf_old"}, str(tmp_path)).value == "hf_old"
    (tmp_path / "hfhome").mkdir()
    assert find_token({"HF_HOME": str(tmp_path / "hfhome")}, str(tmp_path)) is None
    assert find_token({}, str(tmp_path / "nowhere")) is None


def test_no_token_no_hf_token_variable():
    spec = plan(seed_settings(), seed_facts(token=None))
    assert "HF_TOKEN" not in spec.docker_kwargs()["environment"]
    spec = plan(replace(seed_settings(), pass_token=False), seed_facts())
    assert "HF_TOKEN" not in spec.docker_kwargs()["environment"]


def test_gpu_profile_requests_gpus_and_shared_memory():
    settings = ServerSettings(profile="tgi-gpu", model_id="m/x", env={"MAX_INPUT_TOKENS": 1000})
    spec = plan(settings, seed_facts())
    kwargs = spec.docker_kwargs()
    assert kwargs["device_requests"] == [{"count": -1, "capabilities": [["gpu"]]}]
    assert kwargs["shm_size"] == "1g" and kwargs["devices"] == [] and not kwargs["privileged"]
    assert kwargs["volumes"][f"{HOME}/.cache/huggingface"]["bind"] == "/data"
    line = docker_run_command(spec)
    assert "--gpus all" in line and "--shm-size 1g" in line
    assert spec.image == PROFILES["tgi-gpu"].default_image and spec.warnings == ()
    ids = plan(replace(settings, gpus="device=0,1"), seed_facts()).docker_kwargs()["device_requests"]
    assert ids == [{"device_ids": ["0", "1"], "capabilities": [["gpu"]]}]
    two = plan(replace(settings, gpus="2"), seed_facts()).docker_kwargs()["device_requests"]
    assert two == [{"count": 2, "capabilities": [["gpu"]]}]
    warned = plan(replace(settings, env={"HF_NUM_CORES": 2}), seed_facts())
    assert any("Neuron" in w for w in warned.warnings)


def test_cpu_and_emulator_profiles():
    cpu = plan(ServerSettings(profile="tgi-cpu", model_id="m/x"), seed_facts())
    assert cpu.gpus is None and "device_requests" not in cpu.docker_kwargs()
    emu = plan(ServerSettings(profile="emulator", host_port=0, host_ip="127.0.0.1"), seed_facts())
    assert emu.mounts == () and emu.devices == ()
    assert emu.docker_kwargs()["ports"] == {"80/tcp": ("127.0.0.1", None)}
    assert "-p 127.0.0.1::80" in docker_run_command(emu)


def test_settings_from_the_default_scenario_start_the_emulator_profile():
    scenario = load_config(find_scenario("default"), cli={"server": "emulator"}, environ={})
    settings = settings_from_target(scenario.target, host_port=0)
    assert settings.profile == "emulator" and settings.host_port == 0
    assert settings.env["EMULATOR_PROFILE"] == scenario.target.emulator_profile
    assert plan(settings, seed_facts()).public_env()["MODEL_ID"] == scenario.target.model_id


@pytest.mark.parametrize(("changes", "message"), [
    ({"profile": "vllm"}, "unknown server profile"),
    ({"env": {"MAX_BATCH_SIZE": "eight"}}, "MAX_BATCH_SIZE must be a positive integer"),
    ({"env": {"MAX_INPUT_TOKENS": 10, "MAX_INPUT_LENGTH": 10}}, "not both"),
    ({"env": {"MAX_INPUT_TOKENS": 4096, "MAX_TOTAL_TOKENS": 4096}}, "must be below MAX_TOTAL_TOKENS"),
    ({"env": {"HF_AUTO_CAST_TYPE": "int4"}}, "HF_AUTO_CAST_TYPE"),
    ({"env": {"MODEL_ID": "x"}}, "through model_id"),
    ({"env": {"HF_TOKEN": "x"}}, "HF token"),
    ({"env": {"bad name": "x"}}, "not a variable name"),
    ({"host_port": 70000}, "host_port"),
    ({"gpus": "0,1"}, "gpus must be"),
    ({"image": "has space:1"}, "not an image reference"),
    ({"health_timeout_s": 0.0}, "health_timeout_s"),
])
def test_invalid_settings_are_rejected_with_a_reason(changes, message):
    with pytest.raises(ServerConfigError, match=message):
        plan(replace(ServerSettings(profile="emulator"), **changes), seed_facts())


def test_validate_lists_every_problem():
    errors = ServerSettings(profile="nope", host_port=-1, env={"MAX_BATCH_SIZE": 0}).validate()
    assert len(errors) == 3


def test_host_facts_detect_reads_env_and_home(tmp_path):
    facts = HostFacts.detect(environ={"HF_TOKEN": SECRET}, home=str(tmp_path))
    assert facts.home == str(tmp_path) and facts.token is not None and facts.token.where == "HF_TOKEN"
    assert all(re.fullmatch(r"/dev/neuron\d+", d) for d in facts.neuron_devices)
