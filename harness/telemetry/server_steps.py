"""A step's server-side figures: what the server's own metrics say happened in the step's window.

Which metric gives which figure depends on the server; `SOURCES` lists, per figure, the names TGI
(router source: `backends/v3/src/queue.rs`, `backend.rs`, `router/src/server.rs`), vLLM
(`vllm:*`) and llama.cpp (`llama-server --metrics`, `llamacpp:*`) use; the first one the scrapes
hold wins. Gauges are averaged over the scrapes inside the window; counters and histograms are
deltas over it (harness.telemetry.series). What each figure means is registered in
harness.analysis.definitions (SERVER_METRICS).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.analysis.attribution import CANCELLED
from harness.records.record import Record
from harness.telemetry.series import HistogramDelta, Scrapes

# figure → [(metric name, label match)], first present wins
SOURCES: dict[str, list[tuple[str, dict[str, str]]]] = {
    "queue": [("tgi_queue_size", {}), ("vllm:num_requests_waiting", {}), ("llamacpp:requests_deferred", {})],
    "batch": [
        ("tgi_batch_current_size", {}),
        ("vllm:num_requests_running", {}),
        ("llamacpp:requests_processing", {}),
    ],
    "kv_cache": [
        ("vllm:kv_cache_usage_perc", {}),
        ("vllm:gpu_cache_usage_perc", {}),
        ("llamacpp:kv_cache_usage_ratio", {}),
    ],
    "queue_time": [("tgi_request_queue_duration", {}), ("vllm:request_queue_time_seconds", {})],
    "inference_time": [("tgi_request_inference_duration", {}), ("vllm:request_inference_time_seconds", {})],
    "time_per_token": [
        ("tgi_request_mean_time_per_token_duration", {}),
        ("vllm:time_per_output_token_seconds", {}),
        ("vllm:inter_token_latency_seconds", {}),
    ],
    "prefill_time": [
        ("tgi_batch_inference_duration", {"method": "prefill"}),
        ("vllm:request_prefill_time_seconds", {}),
    ],
    "server_ok": [("tgi_request_success", {}), ("vllm:request_success", {})],
    "server_failed": [("tgi_request_failure", {})],
}
# llama.cpp has no latency histograms; its counters give exact means over the window
LLAMACPP_TPT = ("llamacpp:tokens_predicted_seconds_total", "llamacpp:tokens_predicted_total")
EDGE_SLACK_S = 0.25  # completions this close to a scrape may fall on either side of it


@dataclass
class Timing:
    """A server latency over the window: mean (exact: Δsum/Δcount) and bucket-bounded p50/p99."""

    metric: str
    count: float
    mean: float
    p50_le: float = math.nan
    p99_le: float = math.nan


@dataclass
class ServerStep:
    """What the server's metrics say about one step's window (NaN / None: not available)."""

    scrapes: int = 0
    queue_mean: float = math.nan
    queue_max: float = math.nan
    batch_mean: float = math.nan
    batch_max: float = math.nan
    kv_cache_mean: float = math.nan
    kv_cache_max: float = math.nan
    timings: dict[str, Timing] = field(default_factory=dict)
    server_ok: float | None = None
    server_failed: float | None = None
    client_completed: int | None = None
    count_tolerance: int = 0
    ttft_mean: float = math.nan
    sources: dict[str, str] = field(default_factory=dict)
    neuron_reports: int = 0
    neuroncore_util_mean: float = math.nan  # percent, mean over cores and reports
    neuroncore_util_max: float = math.nan  # percent, the busiest report (mean over cores)
    device_memory_mean: float = math.nan  # bytes
    device_memory_max: float = math.nan
    neuron_errors: float | None = None

    @property
    def count_mismatch(self) -> bool:
        """The server counted a different number of finished requests than the client saw finish."""
        if self.server_ok is None or self.client_completed is None:
            return False
        server = self.server_ok + (self.server_failed or 0)
        return abs(server - self.client_completed) > self.count_tolerance

    @property
    def unexplained_ttft(self) -> float:
        """Client TTFT mean − (server queue mean + prefill mean): network, validation and the client."""
        q, p = self.timings.get("queue_time"), self.timings.get("prefill_time")
        if q is None or p is None:
            return math.nan
        return self.ttft_mean - q.mean - p.mean


def _first(scrapes: Scrapes, figure: str) -> tuple[str, dict[str, str]] | None:
    for name, match in SOURCES[figure]:
        probe = name + "_bucket" if figure in _HISTOGRAMS else name
        if scrapes.keys(probe, match) or (figure in _COUNTERS and scrapes.keys(name + "_total", match)):
            return name, match
    return None


_HISTOGRAMS = ("queue_time", "inference_time", "time_per_token", "prefill_time")
_COUNTERS = ("server_ok", "server_failed")


def _timing(name: str, h: HistogramDelta) -> Timing:
    return Timing(name, h.count, h.mean, h.quantile_upper(0.5), h.quantile_upper(0.99))


def server_step(
    scrapes: Scrapes | None,
    start: float,
    end: float,
    records: Sequence[Record],
    measured: Sequence[Record],
    neuron: Scrapes | None = None,
) -> ServerStep:
    """The server's figures for the window [start, end) (wall-clock seconds, as in steps.json).

    `records` are all the run's records (the client's count of requests that finished while the
    server counted), `measured` the step's own (its TTFT, for "where the time went"); `neuron` the
    neuron-monitor reports, when they were collected."""
    out = ServerStep()
    if neuron is not None:
        _neuron(out, neuron, start, end)
    if scrapes is None:
        return out
    out.scrapes = len(scrapes.times_in(start, end))
    for figure in ("queue", "batch", "kv_cache"):
        src = _first(scrapes, figure)
        if src is None:
            continue
        values = scrapes.gauge(src[0], start, end, src[1])
        if values:
            setattr(out, f"{figure}_mean", sum(values) / len(values))
            setattr(out, f"{figure}_max", max(values))
            out.sources[figure] = src[0]
    for figure in _HISTOGRAMS:
        src = _first(scrapes, figure)
        if src is None:
            continue
        h = scrapes.histogram(src[0], start, end, src[1])
        if h is not None:
            out.timings[figure] = _timing(src[0], h)
            out.sources[figure] = src[0]
    if "time_per_token" not in out.timings:
        secs = scrapes.counter(LLAMACPP_TPT[0], start, end)
        toks = scrapes.counter(LLAMACPP_TPT[1], start, end)
        if secs is not None and toks:
            name = LLAMACPP_TPT[0] + " / " + LLAMACPP_TPT[1]
            out.timings["time_per_token"] = Timing(name, toks, secs / toks)
            out.sources["time_per_token"] = LLAMACPP_TPT[0]
    for figure in _COUNTERS:
        src = _first(scrapes, figure)
        if src is None:
            continue
        name = src[0] if scrapes.keys(src[0], src[1]) else src[0] + "_total"
        value = scrapes.counter(name, start, end, src[1])
        setattr(out, figure, value)
        out.sources[figure] = name
    if out.sources.get("server_ok", "").startswith("tgi_") and "server_failed" not in out.sources:
        out.server_failed = 0.0  # TGI creates tgi_request_failure on the first failure
    _client_side(out, scrapes, start, end, records, measured)
    return out


def _neuron(out: ServerStep, neuron: Scrapes, start: float, end: float) -> None:
    from harness.telemetry import neuron as nm

    out.neuron_reports = len(neuron.times_in(start, end))
    util = nm.core_utilization(neuron, start, end)
    if util:
        out.neuroncore_util_mean, out.neuroncore_util_max = sum(util) / len(util), max(util)
    mem = neuron.gauge(nm.DEVICE_MEMORY, start, end)
    if mem:
        out.device_memory_mean, out.device_memory_max = sum(mem) / len(mem), max(mem)
    out.neuron_errors = nm.period_total(neuron, nm.ERRORS, start, end)


def _bracket(scrapes: Scrapes, t: float) -> float | None:
    """The time of the last scrape at or before t: the instant the server's counts refer to."""
    i = bisect.bisect_right(scrapes.times, t)
    return scrapes.times[i - 1] if i else None


def _client_side(
    out: ServerStep,
    scrapes: Scrapes,
    start: float,
    end: float,
    records: Sequence[Record],
    measured: Sequence[Record],
) -> None:
    done = [r for r in records if r.error_type != CANCELLED]
    s0, e0 = scrapes.baseline(start) if scrapes.times else None, _bracket(scrapes, end)
    if out.server_ok is not None and s0 is not None and e0 is not None:
        ends = [r.wall_end for r in done]
        out.client_completed = sum(1 for t in ends if s0 < t <= e0)
        out.count_tolerance = sum(
            1 for t in ends if abs(t - s0) <= EDGE_SLACK_S or abs(t - e0) <= EDGE_SLACK_S
        )
    ttfts = [r.token_us[0] / 1e6 for r in measured if r.ok and r.token_us]
    if ttfts:
        out.ttft_mean = sum(ttfts) / len(ttfts)


def columns(s: ServerStep) -> dict[str, float | None]:
    """summary.csv's server columns (seconds for times, fractions for the KV cache)."""
    out: dict[str, float | None] = {
        "server_queue_mean": s.queue_mean,
        "server_queue_max": s.queue_max,
        "server_batch_mean": s.batch_mean,
        "server_batch_max": s.batch_max,
        "server_kv_cache_mean": s.kv_cache_mean,
        "server_kv_cache_max": s.kv_cache_max,
        "server_ok": s.server_ok,
        "server_failed": s.server_failed,
        "server_client_completed": s.client_completed,
        "server_count_mismatch": s.count_mismatch,
        "neuroncore_util_mean": s.neuroncore_util_mean,
        "neuroncore_util_max": s.neuroncore_util_max,
        "neuron_device_memory_mean_bytes": s.device_memory_mean,
        "neuron_device_memory_max_bytes": s.device_memory_max,
        "neuron_errors": s.neuron_errors,
    }
    for figure in ("queue_time", "prefill_time", "inference_time", "time_per_token"):
        t = s.timings.get(figure)
        out[f"server_{figure}_mean_s"] = t.mean if t else None
        out[f"server_{figure}_p50_le_s"] = t.p50_le if t else None
        out[f"server_{figure}_p99_le_s"] = t.p99_le if t else None
    return out
