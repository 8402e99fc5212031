"""Open-loop figures of a `rate = R` step, pure functions of its records (`Record.t_intended`).

Offered rate: arrivals the schedule meant to send inside the window ÷ window; achieved rate:
requests actually sent in it ÷ window. Both come from the same schedule, so a Poisson step's
random count does not read as a client shortfall; the nominal R is beside them. Schedule lag: the
actual send − the intended send, less the wait for a concurrency slot (that wait is the client
queue time, shown on its own). Latency from the intended send (TTFT + lag + queue) shows
coordinated omission instead of hiding it. A step is client-bound when achieved ÷ offered < 0.99
(unless arrivals queued at its max_concurrency: then the cap held the rate back) or the lag p99
exceeds 5 ms (`CLIENT_BOUND_*`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.analysis.attribution import Window
from harness.analysis.metrics import percentile
from harness.records.record import Record

CLIENT_BOUND_RATIO = 0.99  # achieved ÷ offered below this: the client did not keep up
CLIENT_BOUND_LAG_S = 0.005  # schedule lag p99 above this


def intended_wall(r: Record) -> float | None:
    """When the schedule meant the request to be sent, wall clock."""
    return None if r.t_intended is None else r.wall_start - (r.t_send - r.t_intended)


def schedule_lag_s(r: Record) -> float | None:
    """Actual send − intended send, less the wait for a concurrency slot."""
    if r.t_intended is None:
        return None
    return r.t_send - r.t_intended - (r.queued_s or 0.0)


def ttft_from_intended_s(r: Record) -> float | None:
    """TTFT counted from the intended send (what a user arriving on schedule would see)."""
    if r.t_intended is None or not r.token_us:
        return None
    return r.t_send - r.t_intended + r.token_us[0] / 1e6


@dataclass(frozen=True)
class OpenLoop:
    nominal_rps: float
    offered_rps: float
    achieved_rps: float
    lag_p50_s: float
    lag_p99_s: float
    queue_p50_s: float
    queue_p99_s: float
    ttft_intended_p50_s: float
    ttft_intended_p99_s: float

    @property
    def queued(self) -> bool:
        """Arrivals waited for a concurrency slot: the cap, not the client, held the rate back."""
        return not math.isnan(self.queue_p99_s) and self.queue_p99_s > 0

    @property
    def client_bound(self) -> bool:
        short = self.offered_rps > 0 and self.achieved_rps / self.offered_rps < CLIENT_BOUND_RATIO
        late = not math.isnan(self.lag_p99_s) and self.lag_p99_s > CLIENT_BOUND_LAG_S
        return (short and not self.queued) or late


def open_loop(
    step_records: Iterable[Record], counted: Sequence[Record], measured: Sequence[Record],
    window: Window, nominal_rps: float,
) -> OpenLoop:  # fmt: skip
    """The step's open-loop figures. `step_records`: every record the step sent (any phase);
    `counted`: those sent in its window; `measured`: those of them that ended (latency)."""
    d = window.duration or math.nan
    offered = sum(1 for r in step_records if (t := intended_wall(r)) is not None and window.contains(t))
    lags = [v for r in counted if (v := schedule_lag_s(r)) is not None]
    queue = [r.queued_s for r in counted if r.queued_s is not None]
    ttft = [v for r in measured if r.ok and (v := ttft_from_intended_s(r)) is not None]
    return OpenLoop(
        nominal_rps=nominal_rps,
        offered_rps=offered / d,
        achieved_rps=len(counted) / d,
        lag_p50_s=percentile(lags, 50),
        lag_p99_s=percentile(lags, 99),
        queue_p50_s=percentile(queue, 50),
        queue_p99_s=percentile(queue, 99),
        ttft_intended_p50_s=percentile(ttft, 50),
        ttft_intended_p99_s=percentile(ttft, 99),
    )
