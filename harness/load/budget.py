"""`--stop-after-requests N`: exactly N requests sent, then the test stops once none is in flight.

Why a budget of sends rather than a count of records: a test stopped by time (`--run-time`, the
STOP button) kills the users mid-request, and those requests end as `cancelled` records that count
in no figure. With a budget, each user takes one unit before it sends; when none is left it sends
nothing more, and the process says it is done only when the last request in flight has ended (by
its own timeout at worst) — so the test stops with no request cancelled.

Distributed, the master splits N across its workers (`split`) and each worker runs its own budget;
the master stops the test when every worker with a share has said it is done. Pure (no gevent):
the Locust rim (harness.load.locust.stopafter) wires it to users and runners.
"""

from __future__ import annotations

from collections.abc import Callable


def split(total: int, parts: int) -> list[int]:
    """`total` as `parts` shares differing by at most one, largest first (sum == total)."""
    if parts <= 0:
        return []
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class RequestBudget:
    """How many requests this process may still send, and how many are in flight.

    `limit` None: no budget (every `take` succeeds, `on_done` never fires)."""

    def __init__(self, limit: int | None = None, on_done: Callable[[], None] | None = None) -> None:
        self.limit = limit
        self.sent = 0
        self.in_flight = 0
        self.on_done = on_done
        self._done_fired = False

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.sent >= self.limit

    def take(self) -> bool:
        """One request may be sent (counted as sent and in flight), or False: none is left."""
        if self.exhausted:
            self._check_done()
            return False
        self.sent += 1
        self.in_flight += 1
        return True

    def finish(self) -> None:
        """A request taken with `take` has ended (whatever its outcome)."""
        self.in_flight = max(self.in_flight - 1, 0)
        self._check_done()

    def _check_done(self) -> None:
        if self.exhausted and self.in_flight == 0 and not self._done_fired:
            self._done_fired = True
            if self.on_done is not None:
                self.on_done()
