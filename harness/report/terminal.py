"""The exact summary printed at the end of a locustfile run (and by `python -m harness report`).

Locust's own end-of-run table rounds percentiles to two significant digits and squeezes TTFT/ITL
into whole-ms "response time" columns; this text gives the report's figures instead, from the
same functions (harness.analysis.metrics over the records the attribution rule gives each step):
what was sent and how it ended (ok, failed by type, cancelled), each latency distribution with its
n, output tokens/s, input and output tokens as the client and the server counted them, the
client's CPU and scheduling lag, the step's flags, and where the files are. Pure: a function of
what `harness.report.build.build_report` computed from a run directory.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.analysis import metrics
from harness.analysis.attribution import CANCELLED, split_step
from harness.records.record import Record
from harness.report.steps import StepReport

REPORT_FILES = ("summary.md", "summary.csv", "records.parquet", "report.html", "manifest.json")
# (sample key of metrics.latency_samples, label, scale to the unit in the label)
DISTRIBUTIONS = (
    ("ttft", "TTFT (ms)", 1000.0),
    ("itl", "ITL (ms/token)", 1000.0),
    ("gap", "token gap (ms)", 1000.0),
    ("e2e", "E2E (s)", 1.0),
    ("output_tps", "request tokens/s", 1.0),
)
QUANTILES = (50, 90, 99)


def distribution(values: Sequence[float], scale: float = 1.0) -> dict[str, float]:
    """n, mean, min, the QUANTILES (exact, metrics.percentile) and max of one distribution."""
    out: dict[str, float] = {"n": len(values), "mean": metrics.mean(values) * scale}
    out["min"] = min(values) * scale if values else math.nan
    for q in QUANTILES:
        out[f"p{q}"] = metrics.percentile(values, q) * scale
    out["max"] = max(values) * scale if values else math.nan
    return out


def outcomes(records: Sequence[Record]) -> dict[str, Any]:
    """How the requests ended: ok, failed by error type, cancelled by the client."""
    failed = Counter(r.error_type for r in records if not r.ok and r.error_type != CANCELLED)
    return {
        "sent": len(records),
        "ok": sum(1 for r in records if r.ok),
        "failed": dict(sorted(failed.items())),
        "cancelled": sum(1 for r in records if r.error_type == CANCELLED),
    }


def _num(v: float | None, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if abs(v) < 0.5 * 10**-digits:
        v = 0.0  # no "-0.0" from float noise (an ITL of tokens that arrived together)
    return f"{v:,.{digits}f}"


def _total(values: Sequence[int | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "n/a"
    return f"{sum(known):,}" + ("" if len(known) == len(values) else f" (of {len(known)} reporting)")


def step_text(s: StepReport, records: Sequence[Record]) -> list[str]:
    """One step's block of the summary."""
    info, m = s.info, s.m
    sent = [r for r in records if r.step == info.step]
    out = outcomes(sent)
    measured = split_step(records, info.step, info.closed_at).measured
    ok = [r for r in measured if r.ok]
    failed = ", ".join(f"{k} {v}" for k, v in out["failed"].items()) or "0"
    lines = [
        f"step {info.step} · {f'{info.users} users' if info.rate is None else info.label} · window "
        f"{m.window_s:.1f} s "
        f"(requests sent in the window are measured)",
        f"  requests sent {out['sent']:,}: ok {out['ok']:,}, failed {failed}, "
        f"cancelled {out['cancelled']:,} (stopped by the client)",
        f"  measured: ok {m.ok:,}, failed {m.failed:,}"
        + (" (" + ", ".join(f"{k} {v}" for k, v in m.errors.items()) + ")" if m.errors else "")
        + f", censored {m.censored:,} (still open when the step closed) of {m.sent:,} sent in the window",
        f"  {'':<18}{'n':>8}{'mean':>10}{'min':>10}{'p50':>10}{'p90':>10}{'p99':>10}{'max':>10}",
    ]
    samples = metrics.latency_samples(measured)
    for key, label, scale in DISTRIBUTIONS:
        d = distribution(samples[key], scale)
        digits = 2 if scale == 1.0 else 1
        cells = "".join(f"{_num(d[k], digits):>10}" for k in ("mean", "min", "p50", "p90", "p99", "max"))
        lines.append(f"  {label:<18}{d['n']:>8,}{cells}")
    lines += [
        f"  output tokens/s {_num(m.throughput_tps, 2)} (tokens that arrived from the window's opening to "
        f"the step's close ÷ that span, {_num(m.span_s)} s); "
        f"completed requests {_num(m.completed_throughput_tps, 2)}; requests/min {_num(m.rpm, 1)}",
        f"  input tokens  client total {_total([r.input_tokens for r in ok])}, mean "
        f"{_num(m.mean_client_input_tokens)}; server total {_total([r.server_input_tokens for r in ok])}",
        f"  output tokens client total {_total([r.output_tokens for r in ok])}, mean "
        f"{_num(m.mean_output_tokens)}; server total {_total([r.server_output_tokens for r in ok])}, "
        f"mean {_num(m.mean_server_output_tokens)}",
        f"  client CPU {_num(info.client_cpu_percent, 0)}%, scheduling lag p99 "
        f"{_num(info.sched_lag_p99_ms)} ms (max {_num(info.sched_lag_max_ms)} ms)",
    ]
    if s.slo is not None:
        g = s.slo
        offered = info.label + ("" if info.rate is not None else " users")
        lines.append(f"  load {offered} → {_num(s.achieved_rps, 2)} req/s sent; goodput "
                     f"{_num(g.goodput_rps, 2)} req/s ({_num(g.goodput_tps, 1)} tokens/s, {g.good:,} good); "
                     f"SLO {g.status()}")
    bound = [f for f in s.flags if f.startswith("client-bound")]
    if bound:
        lines.append(f"  WARNING {bound[0]}: latencies include the client's own delay; "
                     "use fewer users per process or more workers")
    lines.append("  flags: " + ("; ".join(s.flags) or "none"))
    return lines


def summary_text(steps: Sequence[StepReport], records: Sequence[Record], run_dir: str | Path) -> str:
    """The whole end-of-run summary: each step's block, then the files and how to rebuild them."""
    run_dir = Path(run_dir)
    head = f"=== exact results from the records ({len(records):,} in {run_dir}) ==="
    lines = [head]
    for s in steps:
        lines += step_text(s, records)
    if not steps:
        out = outcomes(records)
        lines.append(f"no measurement window (the test stopped before one opened); requests sent "
                     f"{out['sent']:,}: ok {out['ok']:,}, failed {sum(out['failed'].values()):,}, "
                     f"cancelled {out['cancelled']:,}")
    present = [name for name in REPORT_FILES if (run_dir / name).exists()]
    lines.append(f"files in {run_dir}: records-*.jsonl, run.jsonl, " + ", ".join(present))
    lines.append(f"rebuild: python -m harness report {run_dir}")
    return "\n".join(lines)
