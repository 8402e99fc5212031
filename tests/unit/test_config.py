"""The configuration model: layers (file < HARNESS_* < command line), one name per setting, one-line
errors, and the per-step rule (a flag wins for every step)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from harness.config.layers import ConfigError, find_scenario, load_config, validate
from harness.config.model import RunConfig
from harness.config.settings import add_arguments, by_name, from_namespace, settings

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


def cli(*argv: str) -> dict:
    ap = argparse.ArgumentParser()
    add_arguments(ap)
    return from_namespace(ap.parse_args(list(argv)))


def test_defaults() -> None:
    c = load_config(None, environ={})
    assert c.users == [1, 2, 4, 8, 16, 32, 64]
    st = c.plan_steps()[0]
    assert st.warmup.min_s == 10 and st.measure.min_s == 0
    # a window of measured requests (enough that p99 is not simply the maximum), with a time cap
    assert st.measure.min_requests == 100 and st.measure.max_s == 900
    assert st.cooldown_max_s == c.request.timeout_s + 5  # every request sent in the window ends by then
    assert c.request.api is None and c.target.price_per_hour is None  # None: chosen by the pre-flight


def test_shipped_scenarios_are_valid_and_found_by_name() -> None:
    seed = load_config(find_scenario("seed"), environ={})
    assert seed.users == [1, 2, 4, 8, 16, 32, 64]
    assert seed.target.price_per_hour == 0.76 and seed.target.server is None  # started only when asked
    assert (seed.workload.input_mean, seed.workload.output_mean) == (550, 150)
    assert seed.target.server_env["MAX_BATCH_SIZE"] == "8"
    default = load_config(find_scenario("default"), environ={})
    assert default.users == [1, 2, 4, 8, 16]
    # windows of measured requests (they fit any server), each with a time cap
    assert [s.measure.min_requests for s in default.plan_steps()] == [6, 12, 4, 8, 16]
    assert all(s.measure.max_s == 300 and s.warmup.max_s == 0 for s in default.plan_steps())
    assert seed.steps.restart and default.steps.restart


def test_scenarios_are_package_data_that_exists() -> None:
    """Bug: the scenarios were listed as package data under harness/ but lived at the repo root."""
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = data["tool"]["setuptools"]["package-data"]["harness"]
    assert "scenarios/*.toml" in globs
    for pattern in globs:
        assert list((ROOT / "harness").glob(pattern)), f"package data {pattern!r} matches nothing"
    assert find_scenario("seed") == ROOT / "harness" / "scenarios" / "seed.toml"


def test_one_name_per_setting_in_file_env_and_flags(tmp_path: Path) -> None:
    names = [s.name for s in settings()]
    assert len(names) == len(set(names))
    s = by_name()
    assert (s["timeout_s"].flag, s["timeout_s"].env, s["timeout_s"].key) == (
        "--timeout-s", "HARNESS_TIMEOUT_S", "request.timeout_s")
    assert (s["measure_min_s"].flag, s["measure_min_s"].key) == ("--measure-min-s", "steps.measure.min_s")
    assert s["steps"].key == "steps.users"
    p = write(tmp_path, "[request]\ntimeout_s = 100\n[workload]\nseed = 5\ninput_mean = 100\n"
                        "[steps]\nusers = [1, 2]\n")
    env = {"HARNESS_TIMEOUT_S": "200", "HARNESS_INPUT_MEAN": "200", "HARNESS_UNRELATED": "x"}
    c = load_config(p, cli=cli("--timeout-s", "300", "--steps", "4,8"), environ=env)
    assert c.request.timeout_s == 300  # cli beats env beats file
    assert c.workload.input_mean == 200  # env beats file
    assert c.workload.seed == 5  # file
    assert c.users == [4, 8]


def test_switches_file_env_cli(tmp_path: Path) -> None:
    p = write(tmp_path, "[steps]\nusers = [1, 2]\nrestart = true\n")
    assert load_config(None, environ={}).steps.restart is False
    assert load_config(p, environ={}).steps.restart is True
    assert load_config(p, environ={"HARNESS_RESTART": "0"}).steps.restart is False
    assert cli() == {}  # neither flag: lower layers decide
    assert load_config(p, cli=cli("--no-restart"), environ={"HARNESS_RESTART": "true"}).steps.restart is False
    assert load_config(None, cli=cli("--restart"), environ={}).steps.restart is True


def test_command_line_windows_win_over_per_step_windows() -> None:
    """Bug: `--measure-s 60` / `--measure-max-s 120` were silent no-ops with the default scenario,
    whose steps each carry their own window."""
    path = find_scenario("default")
    base = load_config(path, environ={}).plan_steps()
    assert [s.measure.min_requests for s in base] == [6, 12, 4, 8, 16]
    longer = load_config(path, cli=cli("--measure-min-s", "60"), environ={}).plan_steps()
    assert all(s.measure.min_s == 60 and s.measure.max_s == 300 for s in longer)
    assert [s.measure.min_requests for s in longer] == [6, 12, 4, 8, 16]  # the per-step tables' own
    capped = load_config(path, cli=cli("--measure-max-s", "120", "--measure-min-requests", "5"),
                         environ={}).plan_steps()
    assert all(s.measure.max_s == 120 and s.measure.min_requests == 5 for s in capped)
    short = load_config(path, environ={"HARNESS_MEASURE_MAX_S": "10"}).plan_steps()
    assert all(s.measure.max_s == 10 for s in short)


def test_per_step_tables_and_derived_max(tmp_path: Path) -> None:
    p = write(tmp_path, """
[request]
timeout_s = 100
[steps]
users = [1, { users = 16, measure = { min_requests = 50 } }]
measure = { min_s = 30 }
warmup = { min_s = 5 }
""")
    st = load_config(p, environ={}).plan_steps()
    assert st[0].measure.max_s == 30 and st[0].measure.min_requests == 0
    assert st[1].measure.min_requests == 50 and st[1].measure.max_s == 130  # min_s + timeout_s
    st2 = load_config(p, cli=cli("--steps", "16,32"), environ={}).plan_steps()
    assert st2[0].measure.min_requests == 50 and st2[1].measure.min_requests == 0


def test_upper_layer_target_choice_wins(tmp_path: Path) -> None:
    p = write(tmp_path, "[target]\nserver = 'neuronx-tgi'\n")
    c = load_config(p, cli=cli("--url", "http://127.0.0.1:9/"), environ={})
    assert c.target.url == "http://127.0.0.1:9" and c.target.server is None
    with pytest.raises(ConfigError, match="not both"):
        load_config(write(tmp_path, "[target]\nserver = 'tgi-cpu'\nurl = 'http://x'\n"), environ={})


def test_another_servers_url_drops_the_files_instance_and_price(tmp_path: Path) -> None:
    """Bug: `make bench TGI_URL=...` priced the user's own server at the default scenario's emulated
    inf2.xlarge ($0.76/h). A url from an upper layer keeps the file's price only when it is the
    file's own url, or when the upper layer states a price too."""
    default = find_scenario("default")
    assert load_config(default, environ={}).target.price_per_hour == 0.76
    cfg = load_config(default, {"url": "http://127.0.0.1:9"}, {})
    assert cfg.target.price_per_hour is None and cfg.target.instance is None
    cfg = load_config(default, {"url": "http://127.0.0.1:9"}, {"HARNESS_PRICE_PER_HOUR": "1.5"})
    assert cfg.target.price_per_hour == 1.5
    own = tmp_path / "own.toml"
    own.write_text('[target]\nurl = "http://127.0.0.1:9"\nprice_per_hour = 2.0\ninstance = "g5"\n')
    assert load_config(own, {"url": "http://127.0.0.1:9"}, {}).target.price_per_hour == 2.0
    assert load_config(own, {"url": "http://127.0.0.1:10"}, {}).target.price_per_hour is None


def test_lists_and_tables_from_flags_and_env() -> None:
    c = load_config(None, cli=cli("--headers", "X-A: 1", "--headers", "X-B: 2", "--server-env",
                                  "MAX_BATCH_SIZE=4"), environ={"HARNESS_DEVICES": "/dev/a,/dev/b"})
    assert c.request.headers == ["X-A: 1", "X-B: 2"]
    assert c.target.server_env == {"MAX_BATCH_SIZE": "4"} and c.target.devices == ["/dev/a", "/dev/b"]


@pytest.mark.parametrize(
    "text, argv, env, message",
    [
        ("bogus = 1\n", (), {}, "unknown key 'bogus' (allowed: name, description, target,"),
        ("[workload]\ninput_mena = 3\n", (), {}, "unknown key 'workload.input_mena' (allowed: tokenizer,"),
        ("[request]\napi = 'grpc'\n", (), {}, "request.api: Input should be 'generate_stream', 'chat' or"),
        ("[steps]\nusers = []\n", (), {}, "steps.users: List should have at least 1 item"),
        ("[steps]\nusers = [1, -2]\n", (), {}, "steps.users[1]: Input should be greater than 0"),
        ("[steps]\nusers = [1, { users = 2, measure = { min_s = -1 } }]\n", (), {},
         "steps.users[1].measure.min_s: Input should be greater than or equal to 0"),
        ("[steps]\nusers = [1]\nmeasure = { min_s = 10, max_s = 5 }\n", (), {}, "max_s (5) is less than"),
        ("[steps]\nusers = [1]\nmeasure = { min_s = 0 }\n", (), {}, "must last > 0 s"),
        ("[target]\nprice_per_hour = 'cheap'\n", (), {},
         "target.price_per_hour: Input should be a valid number"),
        ("[target]\nserver = 'tpu'\n", (), {}, "target.server: Input should be 'emulator', 'neuronx-tgi'"),
        ("[request]\nheaders = ['NoColon']\n", (), {}, "expected 'Name: value'"),
        ("", ("--steps", "1,x"), {}, "--steps: entry 'x': expected N (users), R/s"),
        ("", ("--seed", "abc"), {}, "--seed: workload.seed: Input should be a valid integer"),
        ("", ("--url", "localhost:80"), {}, "--url: target.url: must start with http://"),
        ("", (), {"HARNESS_TIMEOUT_S": "-1"},
         "HARNESS_TIMEOUT_S: request.timeout_s: Input should be greater than 0"),
        ("", (), {"HARNESS_RESTART": "maybe"}, "HARNESS_RESTART: expected true or false"),
        ("x = [", (), {}, "invalid TOML"),
    ],
)
def test_errors_are_one_line_naming_layer_key_and_allowed(tmp_path: Path, text: str, argv: tuple, env: dict,
                                                          message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, cli=cli(*argv), environ=env)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    if not argv and not env:
        assert str(info.value).startswith(str(path))


def test_missing_file_names_the_shipped_ones() -> None:
    with pytest.raises(ConfigError, match="not found.*shipped: default, seed"):
        load_config("/nonexistent.toml", environ={})


def test_roundtrip_through_json() -> None:
    c = load_config(find_scenario("default"), environ={})
    again = validate(c.model_dump(mode="json"))
    assert isinstance(again, RunConfig) and again == c and again.plan_steps() == c.plan_steps()
    assert RunConfig.model_validate_json(c.model_dump_json()) == c
