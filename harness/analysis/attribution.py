"""Which requests a step counts: the attribution rule, stated once, next to the code that applies it.

A step's latency and error figures, its throughput and its requests per minute each select records
differently; the selection lives here, so every report output, doc and docstring can point at
`ATTRIBUTION_RULE` instead of restating it (restated copies drifted before). If the rule changes,
change the functions and the text together: `tests/unit/test_attribution.py` pins one to the other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from harness.records.record import Record

CANCELLED = "cancelled"  # error_type of a request abandoned by the client (see harness.client.apis)
MEASURED_PHASES = ("warmup", "measure")  # sent after the step's ramp

# The rule as every output states it (summary.md, report.html, docs/metrics.md). The code below is the
# truth; this text must say what it does.
ATTRIBUTION_RULE = (
    "A request belongs to the step in which it was sent. It counts in that step's latency and error rows "
    "if it was sent after the step's ramp and completed inside the step's measurement window, so its "
    "whole life ran at that user count; requests still in flight when a window closes count in no "
    "step's latency. Throughput (and cost) count token events of successful requests that arrived "
    "inside the window, and those of requests the client cancelled when it stopped its users "
    "(served correctly up to then); failed requests never add tokens."
)
# What the paragraph above leaves implicit; shown where there is room (report.html, docs/metrics.md).
ATTRIBUTION_DETAIL = (
    "Requests the client cancelled count in no latency or error row. Requests per minute and "
    "completed-request throughput count successful requests by when they completed inside the window, "
    "whichever step sent them."
)


@dataclass(frozen=True, slots=True)
class Window:
    """A measurement window in wall-clock seconds (time.time()), [start, end)."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return max(self.end - self.start, 0.0)

    def contains(self, t: float) -> bool:
        return self.start <= t < self.end


def measured_records(records: Iterable[Record], step: int, window: Window) -> list[Record]:
    """The requests a step's latency and error rows use (see `ATTRIBUTION_RULE`).

    Sent in that step after its ramp (warm-up or measurement phase) and completed inside its
    measurement window, so each one ran its whole life at the step's user count. Requests in flight
    when the window closes straddle a load change, so they count in no step's latency. Requests the
    client itself abandoned (`cancelled`: Locust stopped the user) are neither successes nor server
    errors, so they count in no latency or error row (their tokens still count in throughput, see
    `counts_tokens`).
    """
    return [
        r
        for r in records
        if r.step == step
        and r.phase in MEASURED_PHASES
        and r.error_type != CANCELLED
        and window.contains(r.wall_end)
    ]


def counts_tokens(r: Record) -> bool:
    """Whether a request's token events count in throughput: successful, or cancelled by the client.

    A cancelled request was served correctly up to the moment the client stopped its user; a failed
    one counts as an error, never as tokens (the seed's c=16 throughput counted them).
    """
    return r.ok or r.error_type == CANCELLED


def completed_in(records: Iterable[Record], window: Window) -> list[Record]:
    """Records whose request *completed* inside the window, whichever step or phase sent it."""
    return [r for r in records if window.contains(r.wall_end)]


def tokens_in(r: Record, window: Window) -> int:
    """How many of the request's token events arrived inside the window (wall clock)."""
    if r.wall_start >= window.end or r.wall_end < window.start:
        return 0
    lo, hi = (window.start - r.wall_start) * 1e6, (window.end - r.wall_start) * 1e6
    return sum(1 for t in r.token_us if lo <= t < hi)
