"""Scenario loading: layers (file < environment < command line) and one-line validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config.scenario import DEFAULT_USERS, Scenario, ScenarioError, load_scenario, scenario_from_json

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


def test_defaults() -> None:
    s = load_scenario(None, environ={})
    assert tuple(s.users) == DEFAULT_USERS
    assert s.steps[0].warmup.min_s == 10 and s.steps[0].measure.min_s == 60
    assert s.api == "generate_stream" and s.price_per_hour is None


def test_shipped_scenarios_are_valid() -> None:
    seed = load_scenario(ROOT / "harness" / "scenarios" / "seed.toml", environ={})
    assert seed.users == [1, 2, 4, 8, 16, 32, 64]
    assert seed.price_per_hour == 0.76
    assert (seed.tokens.input_mean, seed.tokens.output_mean) == (550, 150)
    assert seed.server.env["MAX_BATCH_SIZE"] == "8"
    default = load_scenario(ROOT / "harness" / "scenarios" / "default.toml", environ={})
    assert default.users == [1, 2, 4, 8, 16]
    assert sum(s.measure.max_s + s.warmup.max_s for s in default.steps) <= 160  # make bench ≤ 3 min
    assert seed.restart_users and default.restart_users  # each step starts its users together


def test_restart_users_switch_file_env_cli(tmp_path: Path) -> None:
    import argparse

    from harness.config.scenario import add_override_arguments

    assert load_scenario(None, environ={}).restart_users is False  # built-in: add users to running ones
    p = write(tmp_path, "[steps]\nusers = [1, 2]\nrestart = true\n")
    assert load_scenario(p, environ={}).restart_users is True
    assert load_scenario(p, environ={"HARNESS_RESTART_USERS": "0"}).restart_users is False
    assert load_scenario(None, environ={"HARNESS_RESTART_USERS": "yes"}).restart_users is True
    ap = argparse.ArgumentParser()
    add_override_arguments(ap)
    assert ap.parse_args([]).restart_users is None  # neither flag: lower layers decide
    cli_off = vars(ap.parse_args(["--no-restart-users"]))
    s = load_scenario(p, cli=cli_off, environ={"HARNESS_RESTART_USERS": "true"})
    assert s.restart_users is False and "--no-restart-users" in s.source  # cli beats env beats file
    cli_on = vars(ap.parse_args(["--restart-users"]))
    assert load_scenario(None, cli=cli_on, environ={}).restart_users is True
    assert scenario_from_json(s.to_dict()).restart_users is False
    assert scenario_from_json(load_scenario(p, environ={}).to_dict()).restart_users is True


def test_precedence_file_env_cli(tmp_path: Path) -> None:
    p = write(
        tmp_path, "price_per_hour = 1.0\nseed = 5\n[tokens]\ninput_mean = 100\n[steps]\nusers = [1, 2]\n"
    )
    env = {"HARNESS_PRICE_PER_HOUR": "2.0", "HARNESS_INPUT_MEAN": "200", "HARNESS_UNRELATED": "x"}
    s = load_scenario(p, cli={"price_per_hour": "3.0", "steps": "4,8"}, environ=env)
    assert s.price_per_hour == 3.0  # cli beats env beats file
    assert s.tokens.input_mean == 200  # env beats file
    assert s.seed == 5  # file
    assert s.users == [4, 8]
    assert "env: HARNESS_PRICE_PER_HOUR" in s.source and "--steps" in s.source


def test_per_step_overrides_and_rule_defaults(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
timeout_s = 100
[steps]
users = [1, { users = 16, measure = { min_requests = 50 } }]
measure = { min_s = 30 }
warmup = { min_s = 5 }
""",
    )
    s = load_scenario(p, environ={})
    assert s.steps[0].measure.max_s == 30 and s.steps[0].measure.min_requests == 0
    assert s.steps[1].measure.min_requests == 50
    assert s.steps[1].measure.max_s == 130  # min_s + timeout_s when a request target is set
    # --steps keeps the file's per-step settings for counts it keeps
    s2 = load_scenario(p, cli={"steps": "16,32"}, environ={})
    assert s2.steps[0].measure.min_requests == 50 and s2.steps[1].measure.min_requests == 0


@pytest.mark.parametrize(
    "text, cli, message",
    [
        ("bogus = 1\n", {}, "unknown key 'bogus'"),
        ("[tokens]\ninput_mena = 3\n", {}, "unknown key 'tokens.input_mena'"),
        ("api = 'grpc'\n", {}, "api must be one of"),
        ("[steps]\nusers = []\n", {}, "steps.users must be a non-empty list"),
        ("[steps]\nusers = [1, -2]\n", {}, "steps.users[1] must be > 0"),
        ("[steps]\nusers = [1]\nmeasure = { min_s = 10, max_s = 5 }\n", {}, "max_s (5) is less than"),
        ("[steps]\nusers = [1]\nmeasure = { min_s = 0 }\n", {}, "must last > 0 s"),
        ("price_per_hour = 'cheap'\n", {}, "price_per_hour must be a number"),
        ("[server]\nkind = 'tpu'\n", {}, "server.kind must be one of"),
        ("", {"steps": "1,x"}, "command line: steps: expected comma-separated integers"),
        ("", {"seed": "abc"}, "command line: seed: invalid value 'abc'"),
        ("", {"url": "localhost:80"}, "server.url must start with http://"),
        ("[steps]\nrestart = 'yes'\n", {}, "steps.restart must be true or false"),
        ("", {"restart_users": "maybe"}, "command line: restart_users: expected true or false"),
        ("x = [", {}, "invalid TOML"),
    ],
)
def test_errors_are_one_line(tmp_path: Path, text: str, cli: dict, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, text), cli=cli, environ={})
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith((str(tmp_path), "command line:"))


def test_missing_file() -> None:
    with pytest.raises(ScenarioError, match="not found"):
        load_scenario("/nonexistent.toml", environ={})


def test_roundtrip_through_manifest_json() -> None:
    s = load_scenario(ROOT / "harness" / "scenarios" / "default.toml", environ={})
    again = scenario_from_json(s.to_dict())
    assert isinstance(again, Scenario)
    assert again.steps == s.steps and again.tokens == s.tokens and again.server == s.server
    assert again.restart_users == s.restart_users
