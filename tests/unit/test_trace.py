"""Trace replay, pure parts: the JSONL loader and its one-line errors, the split over load generators,
the Azure CSV converter and its command, a trace step in the configuration and the plan, and
`--steps` entries for rates and traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.config.layers import ConfigError, load_config
from harness.config.settings import SettingError, parse_step
from harness.load.plan import SweepPlan
from harness.workload.trace import (
    LEAD_S,
    TraceEntry,
    TraceError,
    convert_azure,
    dump_lines,
    load_trace,
    parse_lines,
    share,
)

LINES = [
    '{"timestamp": 0.0, "input_tokens": 100, "output_tokens": 10}',
    "",
    '{"timestamp": 0.5, "input_tokens": 200, "output_tokens": 20, "text": "Hello"}',
    '{"timestamp": 0.5, "input_tokens": 300, "output_tokens": 30}',
    '{"timestamp": 2, "input_tokens": 400, "output_tokens": 40}',
]


def write(tmp_path: Path, lines: list[str], name: str = "t.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_lines_parse_in_order_blank_lines_skipped() -> None:
    entries = parse_lines(LINES)
    assert [e.timestamp for e in entries] == [0.0, 0.5, 0.5, 2.0]
    assert entries[1] == TraceEntry(0.5, 200, 20, "Hello") and entries[0].text is None
    # written back and read again: the same entries
    assert parse_lines(list(dump_lines(entries))) == entries


@pytest.mark.parametrize("line,needle", [
    ("{not json", "not JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"timestamp": 1, "input_tokens": 5}', "output_tokens must be an integer > 0"),
    ('{"timestamp": -1, "input_tokens": 5, "output_tokens": 5}', "timestamp must be a number"),
    ('{"timestamp": "1", "input_tokens": 5, "output_tokens": 5}', "timestamp must be a number"),
    ('{"timestamp": 1, "input_tokens": 5.5, "output_tokens": 5}', "input_tokens must be an integer"),
    ('{"timestamp": 1, "input_tokens": true, "output_tokens": 5}', "input_tokens must be an integer"),
    ('{"timestamp": 1, "input_tokens": 5, "output_tokens": 0}', "output_tokens must be an integer > 0"),
    ('{"timestamp": 1, "input_tokens": 5, "output_tokens": 5, "text": ""}', "text must be a non-empty"),
    ('{"timestamp": 1, "input_tokens": 5, "output_tokens": 5, "prompt": "x"}', "unknown key(s) prompt"),
    ('{"timestamp": 0.25, "input_tokens": 5, "output_tokens": 5}', "timestamp 0.25 is before the previous"),
])
def test_a_bad_line_is_named_by_file_and_line(tmp_path: Path, line: str, needle: str) -> None:
    path = write(tmp_path, [*LINES, line])
    with pytest.raises(TraceError) as info:
        load_trace(str(path))
    assert str(info.value).startswith(f"{path}:6: ") and needle in str(info.value), str(info.value)


def test_the_configuration_refuses_a_bad_trace_in_one_line(tmp_path: Path) -> None:
    bad = write(tmp_path, [LINES[0], '{"timestamp": 1, "input_tokens": 0, "output_tokens": 5}'], "bad.jsonl")
    scenario = tmp_path / "s.toml"
    scenario.write_text(f'[steps]\nusers = [1, {{ trace = "{bad}" }}]\n')
    for cli in ({}, {"steps": f"trace:{bad}"}):
        with pytest.raises(ConfigError) as info:
            load_config(scenario, cli=cli, environ={})
        text = str(info.value)
        assert f"{bad}:2: input_tokens must be an integer > 0" in text and "\n" not in text, text
    with pytest.raises(ConfigError, match=r"missing\.jsonl: trace file not found \(shipped traces: synth"):
        load_config(None, cli={"steps": "trace:missing.jsonl"}, environ={})
    with pytest.raises(ConfigError, match="no entries"):
        load_config(None, cli={"steps": f"trace:{write(tmp_path, [''], 'empty.jsonl')}"}, environ={})


def test_split_over_generators_is_i_mod_n_and_the_union_is_the_trace() -> None:
    entries = tuple(TraceEntry(i * 0.1, 10 + i, 5) for i in range(11))
    for workers in (1, 2, 3, 4):
        parts = [share(entries, workers, k) for k in range(workers)]
        assert all(i % workers == k for k, part in enumerate(parts) for i, _ in part)
        union = sorted(pair for part in parts for pair in part)
        assert [e for _, e in union] == list(entries)  # every entry once
    with pytest.raises(ValueError):
        share(entries, 2, 2)


def test_shipped_trace_by_name_and_its_step_window(tmp_path: Path) -> None:
    cfg = load_config(None, cli={"steps": "trace:synthetic.jsonl@2,4", "timeout_s": "30"}, environ={})
    trace = load_trace("synthetic")
    n, duration = len(trace.entries), trace.duration_s
    assert n > 50 and 60 < duration < 100
    spec, closed = cfg.plan_steps()
    assert cfg.step_labels == ["trace synthetic ×2", "4"]
    assert spec.trace == trace.path and spec.speed == 2.0 and spec.users == 1
    assert spec.rate == pytest.approx(n / (duration / 2), rel=1e-3)  # its mean rate at that speed
    # no warm-up; the window is every entry sent, capped at the replay's length + timeout
    assert spec.warmup.max_s == 0 and spec.measure.min_requests == n
    assert spec.measure.max_s == pytest.approx(LEAD_S + duration / 2 + 30)
    assert closed.trace is None and closed.warmup.max_s == 10  # the [steps] defaults still apply
    # its own measure table caps or shortens it
    path = tmp_path / "s.toml"
    path.write_text('[steps]\nusers = [{ trace = "synthetic", measure = { max_s = 5, min_requests = 9 } }]\n')
    own = load_config(path, environ={}).plan_steps()[0]
    assert (own.measure.max_s, own.measure.min_requests) == (5, 9)


@pytest.mark.parametrize("table,needle", [
    ('{ trace = "synthetic", warmup = { min_s = 5 } }', "a trace step has no warm-up"),
    ('{ trace = "synthetic", rate = 3 }', "exactly one"),
    ('{ trace = "synthetic", arrival = "constant" }', "arrival and burstiness apply to rate steps only"),
    ('{ users = 2, speed = 2 }', "speed applies to trace steps only"),
    ('{ users = 2, max_concurrency = 2 }', "max_concurrency applies to rate and trace steps only"),
])
def test_trace_step_tables_are_checked(tmp_path: Path, table: str, needle: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(f"[steps]\nusers = [{table}]\n")
    with pytest.raises(ConfigError, match=needle):
        load_config(path, environ={})


def test_a_trace_steps_ramp_is_not_its_window() -> None:
    spec = load_config(None, cli={"steps": "trace:synthetic"}, environ={}).plan_steps()[0]
    plan = SweepPlan([spec], spawn_rate=100)
    tick = plan.tick(0.0, 0)
    assert (tick.phase, tick.tag) == ("ramp", "ramp")  # its drivers wait for the window
    tick = plan.tick(0.5, 0, spawned=True)
    assert tick.phase == "measure"
    n = spec.measure.min_requests
    assert plan.tick(10.0, 0, window_sent=n - 1, window_open=3).phase == "measure"
    assert plan.tick(11.0, 0, window_sent=n, window_open=3).phase == "cooldown"  # every entry sent
    assert plan.tick(12.0, 0, window_sent=n, window_open=0) is None


AZURE = """\
TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:15:46.6805900,374,44
2023-11-16 18:15:50.9951690,396,109
2023-11-16 18:15:47.0000000,879,0
2023-11-16 18:15:48.1805900,1200,7
"""


def test_azure_csv_converts_to_relative_timestamps_in_order() -> None:
    entries = list(convert_azure(AZURE.splitlines(keepends=True), "azure.csv"))
    assert [(e.input_tokens, e.output_tokens) for e in entries] == [(374, 44), (1200, 7), (396, 109)]
    assert [e.timestamp for e in entries] == pytest.approx([0.0, 1.5, 4.314579])  # the 0-token row skipped
    assert list(convert_azure(AZURE.splitlines(keepends=True), limit=2))[-1].input_tokens == 396


@pytest.mark.parametrize("csv_text,needle", [
    ("TIMESTAMP,ContextTokens\n2023-11-16 18:15:46,3\n", "azure.csv:1: missing column(s) GeneratedTokens"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,x,3\n", "azure.csv:2: token counts"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,3,3\n", "azure.csv:2: TIMESTAMP 'yesterday'"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n", "no rows with token counts > 0"),
])
def test_azure_csv_errors_name_the_line(csv_text: str, needle: str) -> None:
    with pytest.raises(TraceError) as info:
        list(convert_azure(csv_text.splitlines(keepends=True), "azure.csv"))
    assert needle in str(info.value), str(info.value)


def test_trace_convert_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.__main__ import main

    src, dst = tmp_path / "azure.csv", tmp_path / "out.jsonl"
    src.write_text(AZURE)
    assert main(["trace-convert", "azure", str(src), str(dst)]) == 0
    assert "wrote 3 requests" in capsys.readouterr().out
    rows = [json.loads(line) for line in dst.read_text().splitlines()]
    assert rows[1] == {"timestamp": 1.5, "input_tokens": 1200, "output_tokens": 7}
    assert load_trace(str(dst)).entries[2].input_tokens == 396  # a valid trace
    assert main(["trace-convert", "azure", str(tmp_path / "none.csv"), str(dst)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none.csv: cannot read" in err


@pytest.mark.parametrize("text,value", [
    ("8", 8),
    (" 5/s ", {"rate": 5.0}),
    ("0.5/s:constant", {"rate": 0.5, "arrival": "constant"}),
    ("20/s:gamma:0.5", {"rate": 20.0, "arrival": "gamma", "burstiness": 0.5}),
    ("trace:synthetic.jsonl", {"trace": "synthetic.jsonl"}),
    ("trace:/data/a@b.jsonl@2.5", {"trace": "/data/a@b.jsonl", "speed": 2.5}),
])
def test_steps_entries(text: str, value: object) -> None:
    assert parse_step(text) == value


@pytest.mark.parametrize("text", ["x", "5/sec", "5/s:", "5/s:gamma:0.5:1", "5/s:gamma:x", "/s", "trace:",
                                  "trace:@2", "trace:a.jsonl@fast", "1.5"])
def test_bad_steps_entries(text: str) -> None:
    with pytest.raises(SettingError, match="expected N \\(users\\), R/s"):
        parse_step(text)


def test_steps_flag_mixes_kinds_and_keeps_the_files_tables(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[steps]\nusers = [{ users = 2, measure = { min_s = 7 } },'
                    ' { rate = 20, arrival = "constant", max_concurrency = 4 }]\n')
    cfg = load_config(path, cli={"steps": "2,20/s,20/s:poisson,1"}, environ={})
    specs = cfg.plan_steps()
    assert cfg.step_labels == ["2", "20 req/s", "20 req/s", "1"]
    assert specs[0].measure.min_s == 7  # the file's table for 2 users
    assert (specs[1].arrival, specs[1].max_concurrency) == ("constant", 4)  # the file's 20/s table
    assert (specs[2].arrival, specs[2].max_concurrency) == ("poisson", None)  # not that table
    # a warm-up flag applies to every step but a trace step (which has none)
    mixed = load_config(None, cli={"steps": "2,trace:synthetic", "warmup_min_s": "3"}, environ={})
    assert [s.warmup.min_s for s in mixed.plan_steps()] == [3, 0]
    env = load_config(None, environ={"HARNESS_STEPS": "3/s:gamma:2"}).plan_steps()[0]
    assert (env.rate, env.arrival, env.burstiness) == (3.0, "gamma", 2.0)
