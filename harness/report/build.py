"""`python -m harness report DIR`: recompute every output of a run from its saved records.

Inputs in DIR: records-*.jsonl (the truth), steps.json (each phase's wall-clock span and the
client's CPU and scheduling lag per step, written by the sweep) and manifest.json (the scenario,
for the price and flag thresholds). Outputs: summary.md, summary.csv, records.parquet,
report.html. Nothing here talks to Locust or a server, so a report can be rebuilt at any time.

Attribution rule: a record belongs to the step in which it was *sent* (its `step` tag); it counts
in that step's latency and error statistics if it was sent after the step's ramp (warm-up or
measurement phase) and *completed* inside the step's measurement window, so its whole life ran at
that step's user count. Throughput counts the token events of successful requests that arrived
inside the window; requests per minute the successful requests completed inside it. Failed
requests are errors, never tokens.
"""

from __future__ import annotations

import argparse
import base64
import csv
import dataclasses
import io
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.analysis import metrics
from harness.analysis.metrics import CANCELLED, StepMetrics, Window
from harness.config.model import Flags
from harness.records.record import Record, read_records

# --- loading a run directory ------------------------------------------------------------------


def load_records(run_dir: Path) -> list[Record]:
    """All records-*.jsonl in the directory (one per worker process), sorted by send time."""
    out: list[Record] = []
    for path in sorted(run_dir.glob("records*.jsonl")):
        out.extend(read_records(path))
    out.sort(key=lambda r: r.wall_start)
    return out


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


@dataclass
class StepInfo:
    """What the sweep saved about one step: its window and the client's health during it."""

    step: int
    users: int
    window: Window
    min_requests: int = 0
    client_cpu_percent: float | None = None
    sched_lag_p99_ms: float | None = None
    sched_lag_max_ms: float | None = None
    spans: dict[str, Any] = field(default_factory=dict)


def steps_from_json(data: list[dict[str, Any]]) -> list[StepInfo]:
    out = []
    for s in data:
        m = s["phases"].get("measure")
        if not m or m.get("end_wall") is None:
            continue  # the sweep stopped before this step's window closed
        client = s.get("client") or {}
        out.append(
            StepInfo(
                step=s["step"],
                users=s["users"],
                window=Window(m["start_wall"], m["end_wall"]),
                min_requests=s.get("min_requests", 0),
                client_cpu_percent=client.get("cpu_percent"),
                sched_lag_p99_ms=client.get("sched_lag_p99_ms"),
                sched_lag_max_ms=client.get("sched_lag_max_ms"),
                spans=s["phases"],
            )
        )
    return out


def steps_from_records(records: Sequence[Record]) -> list[StepInfo]:
    """Fallback without steps.json: each step's window spans its measure-phase sends."""
    by_step: dict[int, list[Record]] = {}
    for r in records:
        if r.step is not None and r.phase == "measure" and r.error_type != CANCELLED:
            by_step.setdefault(r.step, []).append(r)
    out = []
    for step, recs in sorted(by_step.items()):
        window = Window(min(r.wall_start for r in recs), max(r.wall_end for r in recs) + 1e-6)
        out.append(StepInfo(step=step, users=recs[0].users or 0, window=window))
    return out


# --- computing ----------------------------------------------------------------------------------


@dataclass
class StepReport:
    info: StepInfo
    m: StepMetrics
    flags: list[str]


def step_flags(info: StepInfo, m: StepMetrics, flags: Flags) -> list[str]:
    """Why a step's numbers should not be taken at face value."""
    out = []
    if m.requests and m.error_rate > flags.max_error_rate:
        out.append(f"high error rate ({m.error_rate:.0%})")
    if m.ok < flags.min_samples:
        out.append(f"too few samples ({m.ok} < {flags.min_samples})")
    if info.client_cpu_percent is not None and info.client_cpu_percent > flags.max_client_cpu_percent:
        out.append(f"client-bound (CPU {info.client_cpu_percent:.0f}%)")
    elif info.sched_lag_p99_ms is not None and info.sched_lag_p99_ms > flags.max_sched_lag_ms:
        out.append(f"client-bound (scheduling lag p99 {info.sched_lag_p99_ms:.0f} ms)")
    if info.min_requests and m.completed_in_window < info.min_requests:
        out.append(f"window capped ({m.completed_in_window} < {info.min_requests} requests)")
    return out


def compute(
    records: Sequence[Record], infos: Sequence[StepInfo], price: float | None, flags: Flags
) -> list[StepReport]:
    out = []
    for info in infos:
        measured = metrics.measured_records(records, info.step, info.window)
        m = metrics.step_metrics(info.step, info.users, measured, records, info.window, price)
        out.append(StepReport(info, m, step_flags(info, m, flags)))
    return out


# --- formatting -------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _ms(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    ms = value * 1000
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}"


# (label, how it is computed, cell function)
ROWS: list[tuple[str, str, Any]] = [
    (
        "Requests measured (ok / failed)",
        "requests sent in this step after its ramp and completed inside its measurement window; "
        "failed = HTTP error, error event, timeout or cut stream",
        lambda s: f"{s.m.ok} / {s.m.failed}",
    ),
    (
        "Mean input tokens",
        "mean over successful measured requests of the server's input_length/prompt_tokens (else our "
        "tokenizer's count of what was sent, chat template included)",
        lambda s: _f(s.m.mean_input_tokens, 0),
    ),
    (
        "Mean output tokens",
        "mean token events received per successful measured request (counted from the stream, not "
        "re-tokenized)",
        lambda s: _f(s.m.mean_output_tokens, 1),
    ),
    (
        "TTFT p50 (ms)",
        "time from sending to the first token event, 50th percentile (exact, linear interpolation)",
        lambda s: _ms(s.m.ttft[50]),
    ),
    ("TTFT p90 (ms)", "same, 90th percentile", lambda s: _ms(s.m.ttft[90])),
    ("TTFT p99 (ms)", "same, 99th percentile", lambda s: _ms(s.m.ttft[99])),
    (
        "ITL p50 (ms/token)",
        "per request (E2E − TTFT) ÷ (output tokens − 1), p50 — vLLM TPOT, GuideLLM/genai-perf ITL",
        lambda s: _ms(s.m.itl[50]),
    ),
    ("ITL p99 (ms/token)", "same, 99th percentile", lambda s: _ms(s.m.itl[99])),
    (
        "E2E ÷ tokens p50 (ms/token)",
        "per request E2E ÷ output tokens, TTFT included — llmperf's \"inter-token "
        "latency\", the seed's ITL row",
        lambda s: _ms(s.m.e2e_per_token[50]),
    ),
    (
        "Token gap p50 (ms)",
        "all gaps between successive token arrivals pooled over requests, p50 — vLLM ITL",
        lambda s: _ms(s.m.gap[50]),
    ),
    ("Token gap p99 (ms)", "same, 99th percentile", lambda s: _ms(s.m.gap[99])),
    (
        "Largest gap p50 (ms)",
        "each request's largest gap between tokens (stalls), p50 over requests",
        lambda s: _ms(s.m.max_gap[50]),
    ),
    ("E2E p50 (s)", "time from sending to the last event, p50", lambda s: _f(s.m.e2e[50], 2)),
    ("E2E p99 (s)", "same, 99th percentile", lambda s: _f(s.m.e2e[99], 2)),
    (
        "Throughput (output tokens/s)",
        "token events of successful (or client-cancelled) requests that arrived inside the measurement "
        "window ÷ window length",
        lambda s: _f(s.m.throughput_tps, 2),
    ),
    (
        "Throughput, completed requests (tokens/s)",
        "output tokens of successful requests completed inside the window ÷ window length (lumpy when "
        "a window holds few batches; the row above is the smoother, exact one)",
        lambda s: _f(s.m.completed_throughput_tps, 2),
    ),
    (
        "Per-request output tokens/s p50",
        "per request output tokens ÷ E2E, p50 (llmperf's per-request throughput)",
        lambda s: _f(s.m.output_tps[50], 2),
    ),
    (
        "Requests per minute",
        "successful requests completed inside the window × 60 ÷ window length",
        lambda s: _f(s.m.rpm, 2),
    ),
    ("Errors", "failed measured requests, by error type", lambda s: _errors(s.m)),
    (
        "Error rate",
        "failed ÷ measured requests",
        lambda s: "n/a" if math.isnan(s.m.error_rate) else f"{s.m.error_rate:.1%}",
    ),
    (
        "Cost per 1M output tokens",
        "instance $/h ÷ (throughput × 3600) × 10⁶",
        lambda s: "n/a" if math.isnan(s.m.cost_per_million) else f"${s.m.cost_per_million:,.2f}",
    ),
    ("Window (s)", "length of the measurement window", lambda s: _f(s.m.window_s, 1)),
    (
        "Client CPU (%)",
        "load generator process CPU during the window (100 = one core)",
        lambda s: _f(s.info.client_cpu_percent, 0),
    ),
    (
        "Client lag p99 (ms)",
        "how late a 10 ms sleep in the client woke up, p99 over the window",
        lambda s: _f(s.info.sched_lag_p99_ms, 1),
    ),
    ("Flags", "see below the table", lambda s: "; ".join(s.flags) or "—"),
]


def _errors(m: StepMetrics) -> str:
    if not m.failed:
        return "0"
    return f"{m.failed} (" + ", ".join(f"{k}: {v}" for k, v in m.errors.items()) + ")"


def markdown_table(steps: Sequence[StepReport]) -> str:
    header = "| Concurrent users | " + " | ".join(str(s.info.users) for s in steps) + " |"
    sep = "|---|" + "---|" * len(steps)
    lines = [header, sep]
    for label, _, cell in ROWS:
        lines.append(f"| {label} | " + " | ".join(cell(s) for s in steps) + " |")
    return "\n".join(lines)


def summary_markdown(steps: Sequence[StepReport], manifest: dict[str, Any] | None) -> str:
    sc = (manifest or {}).get("scenario") or {}
    server = (manifest or {}).get("server") or {}
    lines = [f"# {sc.get('name', 'run')} — {(manifest or {}).get('run_id', '')}", ""]
    info = server.get("info") or {}
    target = info.get("model_id") or sc.get("server", {}).get("model_id") or "?"
    lines.append(
        f"Model {target} on {server.get('description', server.get('url', '?'))}; "
        f"API {sc.get('api', '?')}; input {sc.get('tokens', {}).get('input_mean', '?')}±"
        f"{sc.get('tokens', {}).get('input_stddev', '?')} tokens, max_new_tokens "
        f"{sc.get('tokens', {}).get('output_mean', '?')}±{sc.get('tokens', {}).get('output_stddev', '?')}; "
        f"price ${sc.get('price_per_hour') if sc.get('price_per_hour') is not None else '?'}/h."
    )
    lines += ["", markdown_table(steps), "", "How each row is computed:", ""]
    for label, how, _ in ROWS:
        lines.append(f"- **{label}**: {how}.")
    lines += [
        "",
        "A request belongs to the step in which it was sent. It counts in that step's latency and error rows "
        "if it was sent after the step's ramp and completed inside the step's measurement window, so its "
        "whole life ran at that user count; requests still in flight when a window closes count in no "
        "step's latency. Throughput (and cost) count token events of successful requests that arrived "
        "inside the window, and those of requests the client cancelled when it stopped its users "
        "(served correctly up to then); failed requests never add tokens. Percentiles are exact over "
        "the raw records (records.parquet), not Locust's bucketed ones.",
        "",
        "Flags: *high error rate* (above the scenario's max_error_rate), *too few samples* (fewer successful "
        "requests than min_samples: p99 is then mostly the maximum), *client-bound* (client CPU or "
        "scheduling lag above the thresholds: latencies include client delay), *window capped* (max_s "
        "reached before min_requests).",
    ]
    return "\n".join(lines) + "\n"


CSV_FIELDS = [
    "step",
    "users",
    "window_s",
    "requests",
    "ok",
    "failed",
    "error_rate",
    "errors",
    "mean_input_tokens",
    "mean_client_input_tokens",
    "mean_output_tokens",
    "mean_server_output_tokens",
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
    rows = []
    for s in steps:
        m = s.m
        row: dict[str, Any] = {k: getattr(m, k) for k in CSV_FIELDS if hasattr(m, k)}
        row["errors"] = json.dumps(m.errors)
        row["client_cpu_percent"] = s.info.client_cpu_percent
        row["sched_lag_p99_ms"] = s.info.sched_lag_p99_ms
        row["flags"] = "; ".join(s.flags)
        for key in DIST_FIELDS:
            unit = "" if key == "output_tps" else "_s"
            for q, v in getattr(m, key).items():
                row[f"{key}_p{q}{unit}"] = v
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        path.write_text("")
        return
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def write_parquet(path: Path, records: Sequence[Record]) -> None:
    """Raw records plus the derived per-request metrics, for notebooks."""
    import pandas as pd

    rows = []
    for r in records:
        d = {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}
        d["token_us"] = list(r.token_us)
        d.update(
            ok=r.ok,
            ttft_s=metrics.ttft_s(r),
            e2e_s=metrics.e2e_s(r),
            itl_s=metrics.itl_s(r),
            e2e_per_token_s=metrics.e2e_per_token_s(r),
            max_gap_s=metrics.max_gap_s(r),
            output_tps=metrics.output_tps(r),
            wall_end=r.wall_end,
        )
        rows.append(d)
    pd.DataFrame(rows).to_parquet(path, index=False)


# --- HTML with plots --------------------------------------------------------------------------


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def plots(steps: Sequence[StepReport], records: Sequence[Record]) -> list[tuple[str, str]]:
    """(title, base64 PNG) pairs: latency/throughput/cost vs users and per-step CDFs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: list[tuple[str, str]] = []
    if not steps:
        return out
    users = [s.info.users for s in steps]

    def vs_users(title: str, series: dict[str, list[float]], ylabel: str) -> None:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for label, ys in series.items():
            ax.plot(users, ys, marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(users, [str(u) for u in users])
        ax.set_xlabel("concurrent users")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend()
        ax.set_title(title)
        out.append((title, _png(fig)))

    vs_users("TTFT vs users", {f"p{q}": [s.m.ttft[q] * 1000 for s in steps] for q in (50, 90, 99)}, "ms")
    vs_users(
        "ITL vs users",
        {
            "ITL p50 (E2E−TTFT)/(N−1)": [s.m.itl[50] * 1000 for s in steps],
            "ITL p99": [s.m.itl[99] * 1000 for s in steps],
            "gap p99 (pooled)": [s.m.gap[99] * 1000 for s in steps],
            "E2E/N p50 (llmperf)": [s.m.e2e_per_token[50] * 1000 for s in steps],
        },
        "ms / token",
    )
    vs_users(
        "Throughput vs users",
        {"output tokens/s (aggregate)": [s.m.throughput_tps for s in steps]},
        "tokens/s",
    )
    if any(not math.isnan(s.m.cost_per_million) for s in steps):
        vs_users("Cost vs users", {"$ per 1M output tokens": [s.m.cost_per_million for s in steps]}, "$")

    for key, title, scale in (
        ("ttft", "TTFT CDF per step", 1000),
        ("itl", "ITL CDF per step", 1000),
        ("e2e", "E2E CDF per step", 1),
    ):
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for s in steps:
            measured = metrics.measured_records(records, s.info.step, s.info.window)
            xs = sorted(v * scale for v in metrics.latency_samples(measured)[key])
            if xs:
                ax.step(
                    xs,
                    [(i + 1) / len(xs) for i in range(len(xs))],
                    where="post",
                    label=f"{s.info.users} users",
                )
        ax.set_xlabel("ms" if scale == 1000 else "s")
        ax.set_ylabel("fraction of requests")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        ax.set_title(title)
        out.append((title, _png(fig)))
    return out


def report_html(
    summary_md: str,
    steps: Sequence[StepReport],
    images: list[tuple[str, str]],
    manifest: dict[str, Any] | None,
) -> str:
    import html

    table = [
        "<table><tr><th>Concurrent users</th>" + "".join(f"<th>{s.info.users}</th>" for s in steps) + "</tr>"
    ]
    for label, how, cell in ROWS:
        table.append(
            f"<tr><th title='{html.escape(how)}'>{html.escape(label)}</th>"
            + "".join(f"<td>{html.escape(cell(s))}</td>" for s in steps)
            + "</tr>"
        )
    table.append("</table>")
    defs = "".join(f"<li><b>{html.escape(label)}</b>: {html.escape(how)}.</li>" for label, how, _ in ROWS)
    imgs = "".join(
        f"<figure><img alt='{html.escape(t)}' src='data:image/png;base64,{b}'>"
        f"<figcaption>{html.escape(t)}</figcaption></figure>"
        for t, b in images
    )
    title = html.escape(summary_md.splitlines()[0].lstrip("# ")) if summary_md else "report"
    man = html.escape(json.dumps(manifest or {}, indent=2, default=str))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th:first-child{{text-align:left}}
figure{{display:inline-block;margin:8px}}pre{{background:#f6f6f6;padding:1em;overflow:auto;max-height:30em}}</style>
</head><body><h1>{title}</h1>
<p>{html.escape(summary_md.splitlines()[2] if len(summary_md.splitlines()) > 2 else "")}</p>
{"".join(table)}
<h2>Plots</h2>{imgs}
<h2>How each row is computed</h2><ul>{defs}</ul>
<p>A request belongs to the step in which it was sent; it counts in that step's latency rows if it was sent
after the step's ramp and completed inside the step's measurement window. Throughput counts token events of
successful requests that arrived inside the window. Percentiles are exact over the raw records.</p>
<h2>Manifest</h2><pre>{man}</pre></body></html>"""


# --- entry points -----------------------------------------------------------------------------


def build_report(
    run_dir: str | Path, write: bool = True, with_plots: bool = True
) -> tuple[list[StepReport], str]:
    """Recompute everything from the files in `run_dir`; returns the steps and summary.md text."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no such results directory: {run_dir}")
    records = load_records(run_dir)
    manifest = load_json(run_dir / "manifest.json") or {}
    steps_json = load_json(run_dir / "steps.json")
    infos = steps_from_json(steps_json) if steps_json else steps_from_records(records)
    sc = manifest.get("scenario") or {}
    flags = Flags(**sc["flags"]) if sc.get("flags") else Flags()
    steps = compute(records, infos, sc.get("price_per_hour"), flags)
    md = summary_markdown(steps, manifest)
    if write:
        (run_dir / "summary.md").write_text(md)
        write_csv(run_dir / "summary.csv", csv_rows(steps))
        write_parquet(run_dir / "records.parquet", records)
        images = plots(steps, records) if with_plots else []
        (run_dir / "report.html").write_text(report_html(md, steps, images, manifest))
    return steps, md


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness report", description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", help="a results/<run-id> directory")
    ap.add_argument("--no-plots", action="store_true", help="skip the matplotlib plots")
    args = ap.parse_args(argv)
    try:
        steps, md = build_report(args.run_dir, with_plots=not args.no_plots)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(steps))
    print(f"\nreport: {Path(args.run_dir) / 'report.html'}")
    return 0
