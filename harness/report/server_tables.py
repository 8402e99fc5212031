"""The report's server section: one row per server-side figure, beside the client's table.

Rows exist only for figures some step has (a llama.cpp run has no queue-time histogram); the
sentence under each row comes from the registry (harness.analysis.definitions.SERVER_METRICS).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from harness.report.steps import StepReport
from harness.report.tables import Row, _f, _ms

SERVER_NOTE = (
    "Server rows come from the server's own metrics, scraped every second during the run "
    "(server_metrics.jsonl; Neuron rows from neuron-monitor's reports, neuron_metrics.jsonl): gauges "
    "averaged over the scrapes inside the window, counters and histograms "
    "as their increase over it. ≤ marks a bucket-bounded percentile (the upper bound of the histogram "
    "bucket that holds it)."
)


def _pair(mean: float, peak: float, digits: int = 1) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{_f(mean, digits)} / {_f(peak, 0)}"


def _timing(figure: str, with_percentiles: bool = True):  # noqa: ANN202 - a cell function
    def cell(s: StepReport) -> str:
        t = s.server.timings.get(figure) if s.server else None
        if t is None or not t.count:
            return "n/a"
        if not with_percentiles or math.isnan(t.p50_le):
            return _ms(t.mean)
        return f"{_ms(t.mean)} / ≤{_ms(t.p50_le)} / ≤{_ms(t.p99_le)}"

    return cell


def _counted(s: StepReport) -> str:
    v = s.server
    if v is None or v.server_ok is None:
        return "n/a"
    failed = "n/a" if v.server_failed is None else f"{v.server_failed:.0f}"
    mark = " ≠" if v.count_mismatch else ""
    return f"{v.server_ok:.0f} / {failed} (client saw {v.client_completed}){mark}"


def _breakdown(s: StepReport) -> str:
    v = s.server
    if v is None or math.isnan(v.unexplained_ttft):
        return "n/a"
    q, p = v.timings["queue_time"].mean, v.timings["prefill_time"].mean
    return f"{_ms(v.ttft_mean)} = {_ms(q)} + {_ms(p)} + {_ms(v.unexplained_ttft)}"


def _has(attr: str):  # noqa: ANN202
    return lambda s: s.server is not None and not math.isnan(getattr(s.server, attr))


def _has_timing(figure: str):  # noqa: ANN202
    return lambda s: s.server is not None and figure in s.server.timings


SERVER_ROWS: list[tuple[Row, object]] = [
    (Row("Server queue size (mean / max)", "server_queue_size", "{definition}",
         lambda s: _pair(s.server.queue_mean, s.server.queue_max) if s.server else "n/a"),
     _has("queue_mean")),
    (Row("Server batch size (mean / max)", "server_batch_size", "{definition}",
         lambda s: _pair(s.server.batch_mean, s.server.batch_max) if s.server else "n/a"),
     _has("batch_mean")),
    (Row("KV-cache usage (mean / max, %)", "server_kv_cache", "{definition}",
         lambda s: _pair(s.server.kv_cache_mean * 100, s.server.kv_cache_max * 100) if s.server else "n/a"),
     _has("kv_cache_mean")),
    (Row("Server queue time (ms: mean / p50 / p99)", "server_queue_time", "{definition}",
         _timing("queue_time")), _has_timing("queue_time")),
    (Row("Server prefill batch (ms, mean)", "server_prefill_time", "{definition}",
         _timing("prefill_time", with_percentiles=False)), _has_timing("prefill_time")),
    (Row("Server inference time (ms: mean / p50 / p99)", "server_inference_time", "{definition}",
         _timing("inference_time")), _has_timing("inference_time")),
    (Row("Server time per token (ms: mean / p50 / p99)", "server_time_per_token", "{definition}",
         _timing("time_per_token")), _has_timing("time_per_token")),
    (Row("Requests the server counted (ok / failed)", "server_requests", "{definition}", _counted),
     lambda s: s.server is not None and s.server.server_ok is not None),
    (Row("Where the TTFT went (ms: client = queue + prefill + rest)", "ttft_breakdown", "{definition}",
         _breakdown), lambda s: s.server is not None and not math.isnan(s.server.unexplained_ttft)),
    (Row("NeuronCore utilization (%: mean / max)", "neuroncore_utilization", "{definition}",
         lambda s: _pair(s.server.neuroncore_util_mean, s.server.neuroncore_util_max) if s.server else "n/a"),
     _has("neuroncore_util_mean")),
    (Row("Neuron device memory (GiB: mean / max)", "neuron_device_memory", "{definition}",
         lambda s: _gib(s.server.device_memory_mean, s.server.device_memory_max) if s.server else "n/a"),
     _has("device_memory_mean")),
    (Row("Neuron execution errors", "neuron_errors", "{definition}",
         lambda s: "n/a" if s.server is None or s.server.neuron_errors is None
         else f"{s.server.neuron_errors:.0f}"),
     lambda s: s.server is not None and s.server.neuron_errors is not None),
]


def _gib(mean: float, peak: float) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean / 2**30:,.2f} / {peak / 2**30:,.2f}"


def server_rows(steps: Sequence[StepReport]) -> list[Row]:
    """The server rows some step has a figure for (none: the run has no server section)."""
    return [row for row, present in SERVER_ROWS if any(present(s) for s in steps)]  # type: ignore[operator]


def server_markdown(steps: Sequence[StepReport]) -> list[str]:
    """summary.md's server section (empty without scraped metrics)."""
    rows = server_rows(steps)
    if not rows:
        return []
    head = "| Concurrent users | " + " | ".join(str(s.info.users) for s in steps) + " |"
    lines = ["", "## Server", "", head, "|---|" + "---|" * len(steps)]
    for row in rows:
        lines.append(f"| {row.label} | " + " | ".join(row.cell(s) for s in steps) + " |")
    lines += ["", "How each server row is computed:", ""]
    lines += [f"- **{row.label}**: {row.explanation}." for row in rows]
    lines += ["", SERVER_NOTE]
    return lines
