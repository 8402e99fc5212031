"""`Response.pump_lines` under gevent: the body is read by a callback on the socket's read watcher,
inside the hub.

Why: at 1024 streams per core the per-token cost is the budget. A greenlet reading a token stream
would switch to the hub and back for every token and resume a generator; here recv(), stamp,
de-frame, split and `feed` run in the watcher's callback, and the caller's greenlet sleeps until the
body ends. Keep `on_readable` free of extra call layers: it is run once per token.

A greenlet whose body ended is not switched to from the read callback but queued on the hub's
`Resumer`, which wakes such greenlets for at most `SLICE_S` of CPU per loop iteration and lets the
loop poll the sockets in between (issue #12). Each woken greenlet records its request, reports it
and sends the next one: ~0.2 ms. Switched to inline, a wave of streams ending together (every user
started at once, as the shipped scenarios do) ran all of that work in one loop iteration — 256
streams ≈ 50 ms — while other streams' first tokens waited unread. A kernel receive stamp hides
a late read only until the stream's next event arrives (TCP merges the two into one segment,
stamped by the later), so a hold longer than the inter-token gap became TTFT error.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from harness.client.errors import ReadTimeout, Truncated

if TYPE_CHECKING:
    from harness.client.response import Response

_perf = time.perf_counter
SLICE_S = 0.001  # the Resumer's CPU per loop iteration before the loop polls the sockets again


class Resumer:
    """Wakes greenlets whose response ended, a slice per loop iteration (see the module's doc).

    One per hub. `wake(waiter)` queues; a zero-delay timer runs `_run` on the loop's next
    iteration, after its poll. `_run` switches to queued greenlets in order (each runs until it
    blocks on its next read and switches back here) until `SLICE_S` has passed, then re-arms the
    timer for what is left, so the sockets are polled at least once per slice.
    """

    __slots__ = ("queue", "timer", "armed")

    def __init__(self, hub: Any) -> None:
        self.queue: deque[Any] = deque()
        self.timer = hub.loop.timer(0.0)  # ref: a waiting greenlet depends on it
        self.armed = False

    def wake(self, waiter: Any) -> None:
        self.queue.append(waiter)
        if not self.armed:
            self.armed = True
            self.timer.start(self._run)

    def _run(self) -> None:
        self.armed = False
        queue = self.queue
        end = _perf() + SLICE_S
        while queue:
            queue.popleft().switch(None)
            if queue and _perf() >= end:
                self.armed = True
                self.timer.start(self._run)
                return


def pace(hub: Any) -> None:
    """Wait for a slice of the hub's Resumer: what this greenlet does next (a new connection's
    first request) runs in a bounded slice, not in the loop iteration that woke it (hundreds of
    users connecting at once are woken together when their connects complete)."""
    from gevent.hub import Waiter

    waiter = Waiter(hub)
    resumer(hub).wake(waiter)
    waiter.get()


def resumer(hub: Any) -> Resumer:
    """The hub's Resumer, made on first use."""
    found = getattr(hub, "_harness_resumer", None)
    if found is None:
        found = Resumer(hub)
        hub._harness_resumer = found
    return found


class Pump:
    """Reads one response body in the hub, calling `feed(stamp, lines)` per recv().

    The waiting greenlet is woken once, at the end of the body, by the deadline, or by an error
    (raised there). `throw` is what gevent calls when another greenlet closes the socket.
    """

    __slots__ = ("resp", "feed", "dec", "waiter", "error", "finished", "raw", "event", "resumer")

    def __init__(self, resp: Response, feed: Callable[[float, list[bytes]], object]) -> None:
        self.resp = resp
        self.feed = feed
        self.dec = resp._decoder()
        self.waiter: Any = None
        self.error: BaseException | None = None
        self.finished = False
        self.raw, self.event, hub = resp._gevent
        self.resumer = resumer(hub)

    def run(self) -> None:
        """Read the body to its end (or error, raised here); the caller's greenlet waits."""
        from gevent.hub import Waiter

        resp, dec = self.resp, self.dec
        raw, event, hub = resp._gevent
        try:
            lines = dec.lines(b"")
            if lines:
                self.feed(resp.t_last, lines)
            if not dec.done:
                remaining = resp.deadline - _perf()
                if remaining <= 0 or resp._expired:
                    raise ReadTimeout("request deadline passed")
                if resp._timer is None:  # normally armed by the head's recv()
                    resp._timer = hub.loop.timer(remaining, ref=False)
                    resp._timer.start(resp._expire)
                self.waiter = Waiter(hub)
                resp._pump = self
                event.start(self.on_readable)
                try:
                    self.waiter.get()
                finally:
                    event.stop()
                    resp._pump = None
                if self.error is not None:
                    raise self.error
            resp._finish_body(dec)
        finally:
            resp.bytes_received = dec.received
            resp._abandon()
        tail = dec.tail()
        if tail is not None:
            self.feed(resp.t_last, [tail])

    def on_readable(self) -> None:
        """The read watcher's callback (in the hub): one recv(), stamped, decoded, fed."""
        if self.finished:
            return
        resp = self.resp
        try:
            data = resp._read(self.raw)
        except BlockingIOError:
            return
        except OSError as exc:
            self._end(Truncated(f"connection error while reading: {exc}"))
            return
        if not data:
            try:
                self.dec.eof()
            except Truncated as exc:
                self._end(exc)
                return
            self._end(None)
            return
        try:
            lines = self.dec.lines(data)
            if lines:
                self.feed(resp.t_last, lines)
        except BaseException as exc:  # noqa: BLE001 - raised in the reading greenlet instead
            self._end(exc)
            return
        if self.dec.done:
            self._end(None)

    def on_deadline(self) -> None:
        """The request's deadline timer fired (in the hub)."""
        self._end(ReadTimeout("read timed out"))

    def throw(self, exc: BaseException, *_args: object) -> None:
        """gevent's cancel_wait: the socket was closed by another greenlet."""
        self._end(Truncated(f"connection closed while reading: {exc}"))

    def _end(self, error: BaseException | None) -> None:
        if self.finished:
            return
        self.finished = True
        self.error = error
        self.event.stop()
        if self.waiter is not None:
            self.resumer.wake(self.waiter)
