"""SLOs and goodput of a step, pure functions of its records and the `[slo]` section.

Two kinds of objective, as DistServe and vLLM `bench serve --goodput` separate them:
- step objectives (`ttft_p99_ms`, `itl_p99_ms`, `e2e_p99_s`, `error_rate`): one figure of the step
  against a limit; the step passes when every objective that is set does. A percentile over no
  request is unknown, and an unknown figure fails (a step that measured nothing meets no SLO). The
  error rate counts censored requests (still open when the step closed) as misses beside the
  failed ones: they are the slowest, and dropping them would flatter the step.
- per-request thresholds (`request_ttft_ms`, `request_itl_ms`, `request_e2e_s`): a request is *good*
  when it succeeded and met every threshold that is set (vLLM's `--goodput ttft:… tpot:… e2el:…`:
  its TPOT is this harness's per-request ITL, (last − first token) ÷ (tokens − 1), and a one-token
  request has none, so it passes that threshold as in vLLM). Goodput is the good requests among
  those sent in the step's window ÷ the window (requests/s), and their output tokens ÷ the window
  (tokens/s); with no threshold set every successful request is good.

A limit is met when the figure is at most the limit (vLLM's `slo >= value`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from harness.analysis import metrics
from harness.config.model import Slo
from harness.records.record import Record

# (objective key of [slo], label, sample key of metrics.latency_samples, scale to the limit's unit)
PERCENTILE_OBJECTIVES = (
    ("ttft_p99_ms", "TTFT p99", "ttft", 1000.0, "ms"),
    ("itl_p99_ms", "ITL p99", "itl", 1000.0, "ms"),
    ("e2e_p99_s", "E2E p99", "e2e", 1.0, "s"),
)


@dataclass(frozen=True)
class Objective:
    """One step objective: its figure (NaN: unknown) against its limit, in the limit's unit."""

    key: str
    label: str
    limit: float
    value: float
    unit: str

    @property
    def passed(self) -> bool:
        return not math.isnan(self.value) and self.value <= self.limit

    def describe(self) -> str:
        v = self.value
        shown = "n/a" if math.isnan(v) else f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
        return f"{self.label} {shown} {'≤' if self.passed else '>'} {self.limit:g} {self.unit}".strip()


@dataclass(frozen=True)
class SloResult:
    objectives: tuple[Objective, ...]
    good: int  # good requests among those sent in the window
    goodput_rps: float
    goodput_tps: float
    cost_per_million_good: float  # $ per 1M output tokens of good requests (NaN without a price)

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.objectives)

    @property
    def missed(self) -> list[Objective]:
        return [o for o in self.objectives if not o.passed]

    def status(self) -> str:
        """"pass", "—" (no objective set) or "MISS: TTFT p99 1,234 > 1000 ms; …"."""
        if not self.objectives:
            return "—"
        return "pass" if self.passed else "MISS: " + "; ".join(o.describe() for o in self.missed)


def good_request(r: Record, slo: Slo) -> bool:
    """A successful request that met every per-request threshold of `slo` that is set."""
    if not r.ok:
        return False
    if slo.request_ttft_ms is not None:
        ttft = metrics.ttft_s(r)
        if ttft is None or ttft * 1000.0 > slo.request_ttft_ms:
            return False
    if slo.request_itl_ms is not None:
        itl = metrics.itl_s(r)
        if itl is not None and itl * 1000.0 > slo.request_itl_ms:
            return False
    return slo.request_e2e_s is None or metrics.e2e_s(r) <= slo.request_e2e_s


def objectives(measured: Sequence[Record], censored: int, slo: Slo) -> tuple[Objective, ...]:
    """The step objectives of `slo` that are set, over the step's measured requests (sent in its
    window and ended before it closed) and its censored count."""
    out = []
    samples = metrics.latency_samples(measured)
    for key, label, sample, scale, unit in PERCENTILE_OBJECTIVES:
        limit = getattr(slo, key)
        if limit is not None:
            out.append(Objective(key, label, limit, metrics.percentile(samples[sample], 99) * scale, unit))
    if slo.error_rate is not None:
        sent = len(measured) + censored
        missed = sum(1 for r in measured if not r.ok) + censored
        rate = missed / sent if sent else math.nan
        out.append(Objective("error_rate", "error rate", slo.error_rate, rate, ""))
    return tuple(out)


def slo_result(
    measured: Sequence[Record], censored: int, window_s: float, slo: Slo, price_per_hour: float | None
) -> SloResult:
    """The step's objectives, goodput and the cost per 1M output tokens at goodput."""
    good = [r for r in measured if good_request(r, slo)]
    ok_window = window_s > 0 and math.isfinite(window_s)
    rps = len(good) / window_s if ok_window and measured else math.nan
    tps = sum(metrics.output_tokens(r) for r in good) / window_s if ok_window and measured else math.nan
    cost = metrics.cost_per_million(price_per_hour, tps) if not math.isnan(tps) else math.nan
    return SloResult(objectives(measured, censored, slo), len(good), rps, tps, cost)
