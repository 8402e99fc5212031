"""Random scenario documents, variables and flags: load_config accepts each or refuses it with one
ConfigError line — never another exception, never a traceback (hypothesis).

Documents are built from the model's own sections and keys (plus unknown ones) with values of
every TOML type, so most reach the validators instead of stopping at "unknown key"."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.config.layers import ConfigError, load_config
from harness.config.model import RunConfig
from harness.config.settings import by_name

SECTIONS = {name: list(field.annotation.model_fields) for name, field in RunConfig.model_fields.items()
            if isinstance(field.annotation, type) and hasattr(field.annotation, "model_fields")}
SETTING_NAMES = sorted(by_name())

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.sampled_from(["http://127.0.0.1:8080", "http://", "ftp://x", "http://h:99999",
                                           "chat", "generate_stream", "llama3", "1,2,4", "-1", "0", "nan",
                                           "5/s", "2/s:gamma:0.5", "1,3/s:constant", "0/s", "4/s:",
                                           "trace:synthetic.jsonl@2", "trace:nope.jsonl", "trace:@"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)


@st.composite
def documents(draw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for section in draw(st.lists(st.sampled_from([*SECTIONS, "bogus"]), max_size=4, unique=True)):
        keys = SECTIONS.get(section, ["x"]) + ["unknown_key"]
        doc[section] = draw(st.dictionaries(st.sampled_from(keys), values, max_size=4))
    if draw(st.booleans()):
        doc["name"] = draw(scalars)
    return doc


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value if v is not None]
    return value


def _check(call: Any) -> None:
    try:
        cfg = call()
    except ConfigError as exc:
        text = str(exc)
        assert text and "\n" not in text.strip() and "Traceback" not in text, text
    else:
        assert isinstance(cfg, RunConfig)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents())
def test_random_documents_are_accepted_or_one_line(tmp_path_factory: pytest.TempPathFactory,
                                                  doc: dict[str, Any]) -> None:
    import json

    from harness.config.layers import validate

    doc = _strip_none(doc)
    _check(lambda: validate(json.loads(json.dumps(doc, default=str)), "scenario.toml"))
    # and as a file, written as TOML by hand where the document is representable
    path = Path(tmp_path_factory.mktemp("doc")) / "s.toml"
    path.write_text(_toml(doc))
    try:
        tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError:
        return
    _check(lambda: load_config(path, environ={}))


def _toml(doc: dict[str, Any]) -> str:
    import json

    lines = []
    for key, value in doc.items():
        if not isinstance(value, dict):
            lines.append(f"{json.dumps(str(key))} = {_toml_value(value)}")
    for key, value in doc.items():
        if isinstance(value, dict):
            lines.append(f"[{json.dumps(str(key))}]")
            lines += [f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    import json
    import math

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))


# `--steps` entries: user counts, rates (R/s[:ARRIVAL[:BURSTINESS]]) and traces (trace:FILE[@SPEED])
step_texts = st.lists(st.one_of(
    st.integers(-3, 9).map(str),
    st.tuples(st.sampled_from(["5", "0.5", "0", "-1", "nan", "inf", "x", ""]),
              st.sampled_from(["", ":constant", ":poisson", ":gamma:0.5", ":gamma:0", ":gamma:", ":x", ":"]))
    .map(lambda p: f"{p[0]}/s{p[1]}"),
    st.sampled_from(["trace:synthetic.jsonl", "trace:synthetic", "trace:synthetic.jsonl@2",
                     "trace:synthetic.jsonl@0", "trace:synthetic.jsonl@x", "trace:", "trace:/nope"]),
    st.text(max_size=6)), min_size=1, max_size=4).map(",".join)


@settings(max_examples=80, deadline=None)
@given(steps=step_texts, env=st.booleans())
def test_random_steps_are_accepted_or_one_line(steps: str, env: bool) -> None:
    if env:
        _check(lambda: load_config(None, environ={"HARNESS_STEPS": steps}))
    else:
        _check(lambda: load_config(None, cli={"steps": steps}, environ={}))


@settings(max_examples=120, deadline=None)
@given(flags=st.dictionaries(st.sampled_from(SETTING_NAMES), st.text(max_size=20), max_size=5),
       env=st.dictionaries(st.sampled_from(SETTING_NAMES), st.text(max_size=20), max_size=3))
def test_random_flags_and_variables_are_accepted_or_one_line(flags: dict[str, str],
                                                            env: dict[str, str]) -> None:
    settings_ = by_name()
    environ = {settings_[k].env: v for k, v in env.items()}
    _check(lambda: load_config(None, cli=flags, environ=environ))


@pytest.mark.parametrize("cli,needle", [
    ({"input_stddev": "900"}, "input_stddev (900) is larger than input_mean"),
    ({"output_mean": "10", "output_stddev": "11"}, "output_stddev (11) is larger than output_mean"),
    ({"steps": "0"}, "greater than 0"),
    ({"steps": "2,-1"}, "greater than 0"),
    ({"steps": "1,5/sec"}, "entry '5/sec': expected N (users), R/s"),
    ({"steps": "5/s:gamma:x"}, "entry '5/s:gamma:x'"),
    ({"steps": "5/s:bursty"}, "steps.users[0].arrival"),
    ({"steps": "0/s"}, "steps.users[0].rate: Input should be greater than 0"),
    ({"steps": "trace:no-such.jsonl"}, "no-such.jsonl: trace file not found"),
    ({"steps": "trace:synthetic.jsonl@0"}, "steps.users[0].speed: Input should be greater than 0"),
    ({"input_mean": "0"}, "greater than 0"),
    ({"prompt_pool_size": "-3"}, "greater than 0"),
    ({"timeout_s": "0"}, "greater than 0"),
    ({"url": "http://h:99999"}, "Port out of range"),
    ({"url": "127.0.0.1:8080"}, "must start with http://"),
    ({"server": "tgi-tpu"}, "tgi-tpu"),
    ({"emulator_profile": "no-such"}, "unknown emulator profile 'no-such'"),
])
def test_bad_values_name_themselves(cli: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, cli=cli, environ={})
    assert needle in str(info.value) and "\n" not in str(info.value)
