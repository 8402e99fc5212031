"""Metrics as pure functions of `Record`s: the single place where each figure is computed.

What each figure means, its unit and what vLLM, GuideLLM, AIPerf and llmperf call it is the
registry in `harness.analysis.definitions` (the report's row texts and docs/metrics.md are generated
from it); which records a step's figures use is the attribution rule in
`harness.analysis.attribution`. Each function here says in one line what it computes, so the
registry's sentence can be checked against the code.

Percentiles are exact (numpy's default "linear" interpolation over the sorted samples), never
Locust's bucketed response times.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.analysis.attribution import Window, completed_in, counts_tokens, tokens_in
from harness.records.record import Record

PERCENTILES = (50, 90, 99)
DISTRIBUTIONS = ("ttft", "itl", "e2e_per_token", "gap", "max_gap", "e2e", "output_tps")


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy default).

    NaN for no values, so a table shows "n/a" instead of a made-up zero.
    """
    data = sorted(values)
    if not data:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    frac = pos - lo
    return data[lo] + (data[hi] - data[lo]) * frac


def at_max(n: int, q: float) -> bool:
    """Whether the q-th percentile of n samples is simply their maximum: n < 100 / (100 − q).

    With fewer samples than that, linear interpolation has no sample above the q-th percentile's
    rank to interpolate with, so "p99" of 50 requests is (nearly) their slowest one.
    """
    return q >= 100 or n < 100.0 / (100.0 - q)


def mean(values: Iterable[float]) -> float:
    data = list(values)
    return sum(data) / len(data) if data else math.nan


# --- per request ----------------------------------------------------------------------------


def output_tokens(r: Record) -> int:
    """Tokens generated: the server's count (details.generated_tokens / usage.completion_tokens) when
    it reported one, else the token events received (a server may pack several tokens in an event,
    or send a role-only event: the event count is kept beside it, `Record.output_tokens`)."""
    return r.server_output_tokens if r.server_output_tokens is not None else r.output_tokens


def token_count_differs(r: Record) -> bool:
    """The server's count and the event count differ by more than 1 (one role-only event is normal)."""
    return r.server_output_tokens is not None and abs(r.server_output_tokens - r.output_tokens) > 1


def coalesced_events(r: Record) -> int:
    """Token events that arrived in the same read as the one before them (same stamp): the zeros
    of the token-gap distribution."""
    t = r.token_us
    return sum(1 for i in range(1, len(t)) if t[i] == t[i - 1])


def ttft_s(r: Record) -> float | None:
    """Seconds from send to the first token event; None when no token arrived."""
    return r.token_us[0] / 1e6 if r.token_us else None


def e2e_s(r: Record) -> float:
    """Seconds from send to the final event (or error/close)."""
    return r.t_end - r.t_send


def itl_s(r: Record) -> float | None:
    """(last token − first token) / (N − 1), N = tokens: decode time per token after the first
    (vLLM TPOT), from the last token's arrival, not the end of the body."""
    n = output_tokens(r)
    t = r.token_us
    if len(t) < 2 or n < 2:
        return None
    return (t[-1] - t[0]) / 1e6 / (n - 1)


def e2e_per_token_s(r: Record) -> float | None:
    """E2E / N, TTFT included (llmperf's "inter-token latency")."""
    n = output_tokens(r)
    return e2e_s(r) / n if n > 0 else None


def gaps_s(r: Record) -> list[float]:
    """Gaps between successive token arrivals, in seconds (N − 1 values)."""
    t = r.token_us
    return [(t[i] - t[i - 1]) / 1e6 for i in range(1, len(t))]


def max_gap_s(r: Record) -> float | None:
    """The request's largest gap between tokens (a stall, e.g. decode paused by a prefill)."""
    g = gaps_s(r)
    return max(g) if g else None


def output_tps(r: Record) -> float | None:
    """Per-request output tokens/s, N / E2E (llmperf request_output_throughput)."""
    e2e, n = e2e_s(r), output_tokens(r)
    return n / e2e if e2e > 0 and n > 0 else None


def input_tokens(r: Record) -> int | None:
    """Measured input tokens: the server's count when it reported one, else the client tokenizer's."""
    return r.server_input_tokens if r.server_input_tokens is not None else r.input_tokens


# --- per step -------------------------------------------------------------------------------


def _present(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def latency_samples(records: Sequence[Record]) -> dict[str, list[float]]:
    """The samples of each latency distribution over successful records (seconds)."""
    ok = [r for r in records if r.ok]
    pooled: list[float] = []
    for r in ok:
        pooled.extend(gaps_s(r))
    return {
        "ttft": _present(ttft_s(r) for r in ok),
        "itl": _present(itl_s(r) for r in ok),
        "e2e_per_token": _present(e2e_per_token_s(r) for r in ok),
        "gap": pooled,
        "max_gap": _present(max_gap_s(r) for r in ok),
        "e2e": [e2e_s(r) for r in ok],
        "output_tps": _present(output_tps(r) for r in ok),
    }


def aggregate_output_tps(records: Iterable[Record], window: Window) -> float:
    """Tokens that arrived inside the span ÷ its length, from the requests whose tokens count
    (`attribution.counts_tokens`: successful or client-cancelled, whichever step sent them).

    Exact from `token_us`, so it does not jump when a batch completes as the completed-request
    figure does. Each event weighs its request's tokens per event (the server's count ÷ events), so a
    server that packs several tokens in an event is not under-counted.
    """
    if window.duration <= 0:
        return math.nan
    total = 0.0
    for r in records:
        if counts_tokens(r) and r.token_us:
            k = tokens_in(r, window)
            # an event may carry several tokens: each event weighs the request's tokens per event
            total += k if not k or r.server_output_tokens is None else k * output_tokens(r) / len(r.token_us)
    return total / window.duration


def completed_output_tps(records: Iterable[Record], window: Window) -> float:
    """Output tokens of successful requests *completed* in the window ÷ window (llmperf-like; coarser)."""
    if window.duration <= 0:
        return math.nan
    return sum(output_tokens(r) for r in completed_in(records, window) if r.ok) / window.duration


def requests_per_minute(records: Iterable[Record], window: Window) -> float:
    """Successful requests completed in the window per minute of window."""
    if window.duration <= 0:
        return math.nan
    return sum(1 for r in completed_in(records, window) if r.ok) * 60.0 / window.duration


def cost_per_million(price_per_hour: float | None, tokens_per_s: float) -> float:
    """Instance $/h ÷ (tokens/s × 3600) × 10⁶: dollars per million output tokens at that throughput."""
    if price_per_hour is None or not tokens_per_s or math.isnan(tokens_per_s) or tokens_per_s <= 0:
        return math.nan
    return price_per_hour / (tokens_per_s * 3600.0) * 1e6


def errors_by_type(records: Iterable[Record]) -> dict[str, int]:
    return dict(sorted(Counter(r.error_type for r in records if not r.ok).items()))


@dataclass(frozen=True)
class StepMetrics:
    """Every figure of one step; `measured` are the records sent in its measurement window that
    ended before the step closed (see harness.analysis.attribution)."""

    step: int
    users: int
    window_s: float
    requests: int  # measured: sent in the window and ended (ok + failed)
    ok: int
    failed: int
    errors: dict[str, int]
    error_rate: float
    mean_input_tokens: float
    mean_client_input_tokens: float
    mean_output_tokens: float
    mean_server_output_tokens: float
    ttft: dict[int, float]  # percentile → seconds
    itl: dict[int, float]
    e2e_per_token: dict[int, float]
    gap: dict[int, float]
    max_gap: dict[int, float]
    e2e: dict[int, float]
    output_tps: dict[int, float]
    throughput_tps: float
    completed_throughput_tps: float
    completed_in_window: int
    rpm: float
    cost_per_million: float
    sent: int = 0  # sent in the window: ok + failed + censored
    censored: int = 0  # sent in the window, still open when the step closed (or client-cancelled)
    span_s: float = math.nan  # window opening → step close: the span throughput is measured over
    samples: dict[str, int] | None = None  # distribution → number of samples (n)
    mean_output_events: float = math.nan  # token events per successful request (beside the tokens)
    coalesced_events: int = 0  # token events that arrived in the same read as the previous one
    token_count_differs: int = 0  # successful requests whose server count and event count differ by > 1


def step_metrics(
    step: int,
    users: int,
    measured: Sequence[Record],
    all_records: Sequence[Record],
    window: Window,
    price_per_hour: float | None,
    censored: Sequence[Record] = (),
    span: Window | None = None,
) -> StepMetrics:
    """Compute one step's row.

    Latency distributions and error counts come from `measured`, and `censored` is counted beside
    them (see `harness.analysis.attribution.split_step`); throughput and requests/min from all
    records, by token arrival / completion inside `span` (window opening → step close; default the
    window). A step without a single successful measured request has no throughput, requests/min or
    cost (NaN): a figure over a span nothing was measured in would read as a measurement.
    """
    samples = latency_samples(measured)
    ok = [r for r in measured if r.ok]
    failed = len(measured) - len(ok)
    span = span or window
    nothing = not ok
    tps = math.nan if nothing else aggregate_output_tps(all_records, span)

    def pct(key: str) -> dict[int, float]:
        return {q: percentile(samples[key], q) for q in PERCENTILES}

    return StepMetrics(
        step=step,
        users=users,
        window_s=window.duration,
        requests=len(measured),
        ok=len(ok),
        failed=failed,
        errors=errors_by_type(measured),
        error_rate=failed / len(measured) if measured else math.nan,
        mean_input_tokens=mean(_present(input_tokens(r) for r in ok)),
        mean_client_input_tokens=mean(_present(r.input_tokens for r in ok)),
        mean_output_tokens=mean(output_tokens(r) for r in ok),
        mean_server_output_tokens=mean(_present(r.server_output_tokens for r in ok)),
        ttft=pct("ttft"),
        itl=pct("itl"),
        e2e_per_token=pct("e2e_per_token"),
        gap=pct("gap"),
        max_gap=pct("max_gap"),
        e2e=pct("e2e"),
        output_tps=pct("output_tps"),
        throughput_tps=tps,
        completed_throughput_tps=math.nan if nothing else completed_output_tps(all_records, span),
        completed_in_window=sum(1 for r in completed_in(all_records, span) if r.ok),
        rpm=math.nan if nothing else requests_per_minute(all_records, span),
        cost_per_million=cost_per_million(price_per_hour, tps),
        sent=len(measured) + len(censored),
        censored=len(censored),
        span_s=span.duration,
        samples={key: len(samples[key]) for key in DISTRIBUTIONS},
        mean_output_events=mean(r.output_tokens for r in ok),
        coalesced_events=sum(coalesced_events(r) for r in ok),
        token_count_differs=sum(1 for r in ok if token_count_differs(r)),
    )
