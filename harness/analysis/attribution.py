"""Which requests a step counts: the attribution rule, stated once, next to the code that applies it.

A step's latency and error figures, its throughput and its requests per minute each select records
differently; the selection lives here, so every report output, doc and docstring can point at
`ATTRIBUTION_RULE` instead of restating it (restated copies drifted before). If the rule changes,
change the functions and the text together: `tests/unit/test_attribution.py` pins one to the other.

Why "sent in the window": counting the requests that *completed* in a window drops the slowest
ones (those still in flight when it closes), which biases every latency percentile low. A request
sent in the window is counted whatever it takes; the plan (harness.load.plan) keeps the load
unchanged after the window (the cool-down) until every such request has ended, so each ran its
whole life at the step's load. One that is still open when the cool-down's hard cap ends the step
is *censored*: reported as such, never silently dropped, and kept out of the distributions (its
latency is only known to exceed the cap).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from harness.records.record import Record

CANCELLED = "cancelled"  # error_type of a request abandoned by the client (see harness.client.apis)
MEASURED_PHASES = ("measure",)  # the tag of requests sent inside a step's measurement window

# The rule as every output states it (summary.md, report.html, docs/metrics.md). The code below is the
# truth; this text must say what it does.
ATTRIBUTION_RULE = (
    "A request counts in the step whose measurement window it was sent in, however long it takes: "
    "after the window closes the load carries on unchanged (a cool-down whose own requests count "
    "nowhere) until every counted request has ended. Each counted request is ok, failed, or censored "
    "(still open when the cool-down's hard cap closed the step, or cancelled by the client); latency "
    "rows use the ok ones, error rows ok and failed. Throughput (and cost) count token events of "
    "successful requests that arrived between the window's opening and the step's close, and those of "
    "requests the client cancelled (served correctly up to then); failed requests never add tokens."
)
# What the paragraph above leaves implicit; shown where there is room (report.html, docs/metrics.md).
ATTRIBUTION_DETAIL = (
    "Requests sent while users were being added (ramp), during the warm-up or during the cool-down "
    "count in no step's latency or error rows. Requests per minute and completed-request throughput "
    "count successful requests by when they completed between the window's opening and the step's "
    "close, whichever step sent them. A step with no measured request shows no throughput or cost."
)


@dataclass(frozen=True, slots=True)
class Window:
    """A span of wall-clock seconds (time.time()), [start, end)."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return max(self.end - self.start, 0.0)

    def contains(self, t: float) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True, slots=True)
class StepRecords:
    """A step's counted requests, split: `measured` (ok and failed) and `censored`."""

    measured: list[Record]
    censored: list[Record]

    @property
    def sent(self) -> int:
        return len(self.measured) + len(self.censored)


def counted_records(records: Iterable[Record], step: int | None) -> list[Record]:
    """The requests a step counts: sent in its measurement window (tag "measure")."""
    return [r for r in records if r.step == step and r.phase in MEASURED_PHASES]


def is_censored(r: Record, close: float) -> bool:
    """Still open when the step closed (ended after `close`), or abandoned by the client."""
    return r.error_type == CANCELLED or r.wall_end > close


def split_step(records: Iterable[Record], step: int | None, close: float) -> StepRecords:
    """The step's counted requests (see `ATTRIBUTION_RULE`), split into measured and censored.

    `close`: when the step ended (its cool-down's end), wall clock. A request the client itself
    abandoned (`cancelled`: Locust stopped the user) is neither a success nor a server error, so it
    is censored too (its tokens still count in throughput, see `counts_tokens`).
    """
    measured: list[Record] = []
    censored: list[Record] = []
    for r in counted_records(records, step):
        (censored if is_censored(r, close) else measured).append(r)
    return StepRecords(measured, censored)


def measured_records(records: Iterable[Record], step: int | None, close: float) -> list[Record]:
    """The requests a step's latency and error rows use: counted and not censored."""
    return split_step(records, step, close).measured


def counts_tokens(r: Record) -> bool:
    """Whether a request's token events count in throughput: successful, or cancelled by the client.

    A cancelled request was served correctly up to the moment the client stopped its user; a failed
    one counts as an error, never as tokens (the seed's c=16 throughput counted them).
    """
    return r.ok or r.error_type == CANCELLED


def completed_in(records: Iterable[Record], window: Window) -> list[Record]:
    """Records whose request *completed* inside the span, whichever step or phase sent it."""
    return [r for r in records if window.contains(r.wall_end)]


def tokens_in(r: Record, window: Window) -> int:
    """How many of the request's token events arrived inside the span (wall clock)."""
    if r.wall_start >= window.end or r.wall_end < window.start:
        return 0
    lo, hi = (window.start - r.wall_start) * 1e6, (window.end - r.wall_start) * 1e6
    return sum(1 for t in r.token_us if lo <= t < hi)
