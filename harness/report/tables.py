"""The report's table: its rows, cell formatting, summary.md, summary.csv and records.parquet.

A row's label and cell format live here; the sentence that says how it is computed comes from the
metric registry (`harness.analysis.definitions`), so the report and docs/metrics.md cannot drift.

Length: the one list of the table's rows (client, open-loop and SLO figures) beside the CSV columns
and formats that mirror it; split, a row's label and its CSV column would live apart.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.analysis import metrics
from harness.analysis.attribution import ATTRIBUTION_RULE
from harness.analysis.definitions import metric
from harness.analysis.metrics import StepMetrics
from harness.records.record import Record
from harness.report import atomic, parquet
from harness.report.flags import FLAGS_NOTE
from harness.report.steps import StepReport
from harness.report.workers import workers_markdown
from harness.telemetry.server_steps import columns as server_columns

PERCENTILE_NOTE = (
    "Percentiles are exact over the raw records (records.parquet), not Locust's bucketed ones."
)


def _f(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _ms(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    ms = value * 1000
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}"


def _pct(s: StepReport, key: str, q: int, fmt: Callable[[float], str], n_beside: bool = False) -> str:
    """A percentile cell: "≈ max" when n < 100/(100 − q) samples (the percentile is then the
    maximum, give or take), and n beside the distribution's first row."""
    value = getattr(s.m, key)[q]
    n = (s.m.samples or {}).get(key, 0)
    text = fmt(value)
    if n and q > 50 and metrics.at_max(n, q):
        text += " ≈ max"
    if n_beside:
        text += f" (n={n})"
    return text


def _window(m: StepMetrics) -> str:
    if math.isnan(m.span_s) or m.span_s <= m.window_s:
        return _f(m.window_s, 1)
    return f"{_f(m.window_s, 1)} (+{_f(m.span_s - m.window_s, 1)} cool-down)"


def _loop(s: StepReport, text: Callable[[Any], str]) -> str:
    """An open-loop cell: "—" for a closed-loop step."""
    return "—" if s.open_loop is None else text(s.open_loop)


def _pair_ms(a: float, b: float) -> str:
    return f"{_ms(a)} / {_ms(b)}"


def _errors(m: StepMetrics) -> str:
    if not m.failed:
        return "0"
    return f"{m.failed} (" + ", ".join(f"{k}: {v}" for k, v in m.errors.items()) + ")"


@dataclass(frozen=True)
class Row:
    """One row of the table.

    `how` is formatted with the registry entry of `metric` (`{definition}`, `{aka}`), so the row's
    explanation starts from the metric's one definition and adds only what is particular to the row
    (which percentile, a remark on the row above).
    """

    label: str
    metric: str | None
    how: str
    cell: Callable[[StepReport], str]

    @property
    def explanation(self) -> str:
        if self.metric is None:
            return self.how
        entry = metric(self.metric)
        return self.how.format(definition=entry.definition, aka=entry.aka)


SAME = "same, {}th percentile"
AT_MAX = " (\"≈ max\": fewer than 100 ÷ (100 − q) samples, so the percentile is about the largest one)"

ROWS: list[Row] = [
    Row(
        "Requests measured (ok / failed / censored)",
        "requests",
        "{definition}",
        lambda s: f"{s.m.ok} / {s.m.failed} / {s.m.censored}",
    ),
    Row("Mean input tokens", "mean_input_tokens", "{definition}", lambda s: _f(s.m.mean_input_tokens, 0)),
    Row("Mean output tokens", "mean_output_tokens", "{definition}", lambda s: _f(s.m.mean_output_tokens, 1)),
    Row(
        "Token events per request (coalesced)",
        "mean_output_events",
        "{definition}",
        lambda s: f"{_f(s.m.mean_output_events, 1)} ({s.m.coalesced_events})",
    ),
    Row(
        "TTFT p50 (ms)",
        "ttft",
        "{definition}, 50th percentile (exact, linear interpolation); n = samples",
        lambda s: _pct(s, "ttft", 50, _ms, n_beside=True),
    ),
    Row("TTFT p90 (ms)", "ttft", SAME.format(90) + AT_MAX, lambda s: _pct(s, "ttft", 90, _ms)),
    Row("TTFT p99 (ms)", "ttft", SAME.format(99) + AT_MAX, lambda s: _pct(s, "ttft", 99, _ms)),
    Row(
        "ITL p50 (ms/token)",
        "itl",
        "{definition}, p50 — {aka}; n = samples",
        lambda s: _pct(s, "itl", 50, _ms, n_beside=True),
    ),
    Row("ITL p99 (ms/token)", "itl", SAME.format(99) + AT_MAX, lambda s: _pct(s, "itl", 99, _ms)),
    Row(
        "E2E ÷ tokens p50 (ms/token)",
        "e2e_per_token",
        "{definition} — {aka}; n = samples",
        lambda s: _pct(s, "e2e_per_token", 50, _ms, n_beside=True),
    ),
    Row(
        "Token gap p50 (ms)",
        "gap",
        "{definition}, p50 — {aka}; n = gaps",
        lambda s: _pct(s, "gap", 50, _ms, n_beside=True),
    ),
    Row("Token gap p99 (ms)", "gap", SAME.format(99) + AT_MAX, lambda s: _pct(s, "gap", 99, _ms)),
    Row(
        "Largest gap p50 (ms)",
        "max_gap",
        "{definition}, p50 over requests; n = samples",
        lambda s: _pct(s, "max_gap", 50, _ms, n_beside=True),
    ),
    Row(
        "E2E p50 (s)",
        "e2e",
        "{definition}, p50; n = samples",
        lambda s: _pct(s, "e2e", 50, lambda v: _f(v, 2), n_beside=True),
    ),
    Row("E2E p99 (s)", "e2e", SAME.format(99) + AT_MAX, lambda s: _pct(s, "e2e", 99, lambda v: _f(v, 2))),
    Row(
        "Throughput (output tokens/s)", "throughput_tps", "{definition}", lambda s: _f(s.m.throughput_tps, 2)
    ),
    Row(
        "Throughput, completed requests (tokens/s)",
        "completed_throughput_tps",
        "{definition} (lumpy when a step holds few batches; the row above is the smoother, exact one)",
        lambda s: _f(s.m.completed_throughput_tps, 2),
    ),
    Row(
        "Per-request output tokens/s p50",
        "output_tps",
        "{definition}, p50 ({aka})",
        lambda s: _f(s.m.output_tps[50], 2),
    ),
    Row("Requests per minute", "rpm", "{definition}", lambda s: _f(s.m.rpm, 2)),
    Row("Errors", "errors", "{definition}", lambda s: _errors(s.m)),
    Row(
        "Error rate",
        "error_rate",
        "{definition}",
        lambda s: "n/a" if math.isnan(s.m.error_rate) else f"{s.m.error_rate:.1%}",
    ),
    Row(
        "Cost per 1M output tokens",
        "cost_per_million",
        "{definition}",
        lambda s: "n/a" if math.isnan(s.m.cost_per_million) else f"${s.m.cost_per_million:,.2f}",
    ),
    Row("Window (s)", "window_s", "{definition}", lambda s: _window(s.m)),
    Row(
        "Rate: nominal / offered / achieved (req/s)",
        "achieved_rps",
        "{definition}",
        lambda s: _loop(s, lambda o: f"{o.nominal_rps:g} / {_f(o.offered_rps, 2)} / {_f(o.achieved_rps, 2)}"),
    ),
    Row(
        "Schedule lag p50 / p99 (ms)",
        "lag_p99_s",
        "{definition}",
        lambda s: _loop(s, lambda o: _pair_ms(o.lag_p50_s, o.lag_p99_s)),
    ),
    Row(
        "Client queue p50 / p99 (ms)",
        "queue_p99_s",
        "{definition}",
        lambda s: _loop(s, lambda o: _pair_ms(o.queue_p50_s, o.queue_p99_s)),
    ),
    Row(
        "TTFT from intended send p50 / p99 (ms)",
        "ttft_intended_p99_s",
        "{definition}",
        lambda s: _loop(s, lambda o: _pair_ms(o.ttft_intended_p50_s, o.ttft_intended_p99_s)),
    ),
    Row(
        "Load: offered → achieved",
        "achieved_load",
        "{definition}",
        lambda s: f"{s.info.label}{'' if s.info.rate is not None else ' users'} → "
        f"{_f(s.achieved_rps, 2)} req/s",
    ),
    Row("SLO", "objectives", "{definition}", lambda s: "—" if s.slo is None else s.slo.status()),
    Row(
        "Goodput: req/s (output tokens/s)",
        "goodput_rps",
        "{definition}",
        lambda s: "—" if s.slo is None else f"{_f(s.slo.goodput_rps, 2)} ({_f(s.slo.goodput_tps, 1)})",
    ),
    Row(
        "Cost per 1M output tokens at goodput",
        "cost_per_million_good",
        "{definition}",
        lambda s: "—" if s.slo is None or math.isnan(s.slo.cost_per_million_good)
        else f"${s.slo.cost_per_million_good:,.2f}",
    ),
    Row("Client CPU (%)", "client_cpu_percent", "{definition}", lambda s: _f(s.info.client_cpu_percent, 0)),
    Row(
        "Client lag p99 (ms)",
        "sched_lag_p99_ms",
        "{definition}, p99 over the window",
        lambda s: _f(s.info.sched_lag_p99_ms, 1),
    ),
    Row("Flags", None, "see below the table", lambda s: "; ".join(s.flags) or "—"),
]


OPEN_LOOP_METRICS = ("achieved_rps", "lag_p99_s", "queue_p99_s", "ttft_intended_p99_s")
SLO_METRICS = ("achieved_load", "objectives", "goodput_rps", "cost_per_million_good")


def rows_for(steps: Sequence[StepReport]) -> list[Row]:
    """The rows a report shows: the open-loop ones only when a step is open-loop, the SLO ones
    (load offered → achieved, SLO status, goodput) only when the run has SLOs."""
    hidden: tuple[str, ...] = ()
    if not any(s.open_loop is not None for s in steps):
        hidden += OPEN_LOOP_METRICS
    if all(s.slo is None for s in steps):
        hidden += SLO_METRICS
    return [row for row in ROWS if row.metric not in hidden]


def column_title(steps: Sequence[StepReport]) -> str:
    """What the columns are: user counts, or (with open-loop steps) users or rates."""
    return "Concurrent users" if all(s.info.rate is None for s in steps) else "Load (users or rate)"


def markdown_table(steps: Sequence[StepReport]) -> str:
    """Metrics as rows, user counts as columns (the layout of llmperf-based published tables)."""
    header = f"| {column_title(steps)} | " + " | ".join(s.info.label for s in steps) + " |"
    sep = "|---|" + "---|" * len(steps)
    lines = [header, sep]
    for row in rows_for(steps):
        lines.append(f"| {row.label} | " + " | ".join(row.cell(s) for s in steps) + " |")
    return "\n".join(lines)


def describe_run(manifest: dict[str, Any] | None) -> tuple[str, str]:
    """(title, one line: the model the server reported, the server, API, model name sent, token
    shape and price) from the run header. The model is the server's own (/info, /v1/models),
    never what a scenario assumed."""
    m = manifest or {}
    cfg = m.get("config") or {}
    server = m.get("server") or {}
    req, work, target = cfg.get("request") or {}, cfg.get("workload") or {}, cfg.get("target") or {}
    title = f"{cfg.get('name', 'run')} — {m.get('run_id', '')}"
    model = server.get("model_id") or (server.get("info") or {}).get("model_id") or "(not reported)"
    api = req.get("api", "?")
    if api != "generate_stream" and req.get("model_name"):
        api += f" (model sent: {req['model_name']})"
    price = target.get("price_per_hour")
    line = (
        f"Model {model} on {server.get('description', server.get('url', '?'))}; "
        f"API {api}; input {work.get('input_mean', '?')}±{work.get('input_stddev', '?')} tokens, "
        f"max_new_tokens {work.get('output_mean', '?')}±{work.get('output_stddev', '?')}; "
        f"price {'$' + format(price, 'g') + '/h' if price is not None else 'not set'}."
    )
    return title, line


def summary_markdown(steps: Sequence[StepReport], manifest: dict[str, Any] | None) -> str:
    """summary.md: the table, how each row is computed, the attribution rule and the flags."""
    title, line = describe_run(manifest)
    lines = [f"# {title}", "", line]
    lines += ["", markdown_table(steps), "", "How each row is computed:", ""]
    for row in rows_for(steps):
        lines.append(f"- **{row.label}**: {row.explanation}.")
    lines += ["", f"{ATTRIBUTION_RULE} {PERCENTILE_NOTE}", "", FLAGS_NOTE]
    from harness.report.server_tables import server_markdown  # it builds on this module's Row

    lines += server_markdown(steps)
    workers = workers_markdown(steps, manifest)
    if workers:
        lines += ["", "Workers (distributed run):", "", workers]
    return "\n".join(lines) + "\n"


CSV_FIELDS = [
    "step",
    "users",
    "window_s",
    "sent",
    "requests",
    "ok",
    "failed",
    "censored",
    "error_rate",
    "errors",
    "mean_input_tokens",
    "mean_client_input_tokens",
    "mean_output_tokens",
    "mean_server_output_tokens",
    "mean_output_events",
    "coalesced_events",
    "token_count_differs",
    "throughput_tps",
    "completed_throughput_tps",
    "completed_in_window",
    "rpm",
    "cost_per_million",
    "client_cpu_percent",
    "sched_lag_p99_ms",
    "flags",
]
DIST_FIELDS = ["ttft", "itl", "e2e_per_token", "gap", "max_gap", "e2e", "output_tps"]


def csv_rows(steps: Sequence[StepReport]) -> list[dict[str, Any]]:
    """summary.csv: one row per step, distributions as `<key>_p<q>_s` columns (output_tps in tokens/s)."""
    rows = []
    for s in steps:
        m = s.m
        row: dict[str, Any] = {k: getattr(m, k) for k in CSV_FIELDS if hasattr(m, k)}
        row["errors"] = json.dumps(m.errors)
        row["client_cpu_percent"] = s.info.client_cpu_percent
        row["sched_lag_p99_ms"] = s.info.sched_lag_p99_ms
        row["flags"] = "; ".join(s.flags)
        row["rate"] = s.info.rate
        row["sent_per_s"] = s.achieved_rps
        if s.slo is not None:
            row.update(slo_pass=s.slo.passed, slo=s.slo.status(), good=s.slo.good,
                       goodput_rps=s.slo.goodput_rps, goodput_tps=s.slo.goodput_tps,
                       cost_per_million_good=s.slo.cost_per_million_good)
        row["trace"] = s.info.trace
        for key in ("offered_rps", "achieved_rps", "lag_p50_s", "lag_p99_s", "queue_p50_s", "queue_p99_s",
                    "ttft_intended_p50_s", "ttft_intended_p99_s"):
            row[key] = None if s.open_loop is None else getattr(s.open_loop, key)
        if s.server is not None:
            row.update(server_columns(s.server))
        for key in DIST_FIELDS:
            row[f"{key}_n"] = (m.samples or {}).get(key, 0)
            unit = "" if key == "output_tps" else "_s"
            for q, v in getattr(m, key).items():
                row[f"{key}_p{q}{unit}"] = v
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        atomic.write_text(path, "")
        return
    with atomic.atomic_open(path, newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def write_parquet(path: Path, records: Sequence[Record]) -> None:
    """Raw records plus the derived per-request metrics, for notebooks."""
    rows = []
    for r in records:
        d = {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}
        d["token_us"] = list(r.token_us)
        d["server_timings"] = json.dumps(r.server_timings) if r.server_timings else None
        d.update(
            ok=r.ok,
            ttft_s=metrics.ttft_s(r),
            e2e_s=metrics.e2e_s(r),
            itl_s=metrics.itl_s(r),
            e2e_per_token_s=metrics.e2e_per_token_s(r),
            max_gap_s=metrics.max_gap_s(r),
            output_tps=metrics.output_tps(r),
            tokens=metrics.output_tokens(r),
            coalesced_events=metrics.coalesced_events(r),
            wall_end=r.wall_end,
        )
        rows.append(d)
    with atomic.atomic_path(path) as tmp:
        parquet.write_rows(tmp, rows)
