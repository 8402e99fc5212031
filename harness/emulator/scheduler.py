"""When token events are released: one timer for the whole server, FIFO lanes, a release heap.

Hot path design (one core must carry ~50,000 token events/s):
- ONE timer for the whole server, no call_later per token. Each tick releases everything due
  within EARLY_S, keeps releasing while more is already due (up to TICK_BUDGET_S, then the loop
  gets a turn), and re-arms for the earliest next deadline: if that is < SPIN_S away, by
  re-polling the loop (call_soon); else on a CLOCK_MONOTONIC timerfd (µs resolution; uvloop's
  timers have 1 ms). In this VM programming a timer costs ~10 µs and one already due ~40 µs,
  and waking from idle adds latency: re-polling is cheaper and tighter for short gaps.
- Due tokens come from the engine model (step ends), from FIFO "lanes" (one per inter-token
  latency: a stream's next deadline is its last + itl, so a lane stays sorted and costs an append
  and a popleft per token) and from a heap for the rest (first tokens, stalls, faults). Heap
  entries due before a lane's head are released first, so streams move from the heap to a lane.
- Deadlines are absolute (monotonic clock); lateness = write time − deadline is recorded per event
  (stamped just before the write); token_events is the lateness sample count.
- Token events are cached byte pieces joined and written as one chunked frame each: one
  transport.write, i.e. one send(2), per event. That syscall and the loopback TCP delivery it
  runs (softirq, waking the reader) are most of the cost per event: ~7-8 µs of the ~13 µs at
  1024 streams (see bench/emulator_capacity.py --floor).

Why the lane loop (Scheduler._release_lane) reads and writes Gen's fields itself instead of calling
Gen.emit: a method call per token is a measurable share of the ~13 µs per event at 1024 streams,
so Gen.emit's fast path is inlined there; stream.py's Gen.emit is the same logic for tokens that
come from the heap or the engine. Keep the two in step.
"""

from __future__ import annotations

import asyncio
import ctypes
import heapq
import math
import os
import sys
import time
from collections import deque
from typing import TYPE_CHECKING

from harness.emulator.engine import Engine
from harness.emulator.metrics import Counters, TgiMetrics

if TYPE_CHECKING:
    from harness.emulator.stream import Gen

_monotonic = time.monotonic
_heappush = heapq.heappush

EARLY_S = 0.0003  # a tick releases tokens due up to this much after it (batching: fewer wake-ups)
SPIN_S = 0.0005  # a deadline closer than this: re-poll the loop rather than sleep on the timerfd
TICK_BUDGET_S = 0.002  # longest run of releases before the loop gets a turn
MAX_LANES = 64  # distinct inter-token latencies with a FIFO lane; more go to the heap


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class TimerFd:
    """A one-shot CLOCK_MONOTONIC timerfd armed at absolute time.monotonic() values (Linux)."""

    def __init__(self) -> None:
        if not sys.platform.startswith("linux"):
            raise OSError("timerfd is Linux-only")
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.timerfd_create(time.CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self.fd = fd
        self._settime = libc.timerfd_settime
        self._spec = _Itimerspec()
        self._value = self._spec.it_value
        self._ref = ctypes.byref(self._spec)

    def set(self, at: float) -> None:
        """Fire at monotonic time `at` (at once if it is past)."""
        sec = int(at)
        v = self._value
        v.tv_sec = sec
        v.tv_nsec = max(1, int((at - sec) * 1e9))  # 0/0 would disarm
        self._settime(self.fd, 1, self._ref, None)  # TFD_TIMER_ABSTIME

    def close(self) -> None:
        os.close(self.fd)


class Lane:
    """Streams sharing one inter-token latency, in deadline order: two parallel deques (floats and
    Gens) rather than (deadline, gen) tuples, so the hot path allocates nothing the GC tracks."""

    __slots__ = ("d", "g")

    def __init__(self) -> None:
        self.d: deque[float] = deque()
        self.g: deque[Gen] = deque()


class Scheduler:
    """The release heap, the lanes and the one timer that drives them; the engine model's step ends.

    Gens push their next deadline here (Gen.emit touches `heap`, `seq` and `lat` directly: no call
    per token)."""

    def __init__(self, engine: Engine | None, counters: Counters, metrics: TgiMetrics) -> None:
        self.engine = engine
        self.counters = counters
        self.lat = counters.lateness  # reset in place by Counters.reset
        self.metrics = metrics
        self.heap: list = []
        self.lanes: dict[float, Lane] = {}
        self.lane_list: list[Lane] = []
        self.seq = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = math.inf
        self.tfd: TimerFd | None = None
        self.tfd_at = math.inf  # when the timerfd is armed to fire
        self.soon = False  # a tick is scheduled with call_soon
        self._last_prefills = 0
        self.ticking = False

    def push(self, deadline: float, gen: Gen) -> None:
        """Release `gen`'s next token at `deadline` (off the hot path: first tokens, stalls, faults)."""
        self.seq += 1
        heapq.heappush(self.heap, (deadline, self.seq, gen))
        if deadline < self.timer_at and not self.ticking:
            self.arm(deadline)

    def lane(self, itl: float) -> Lane | None:
        """The FIFO lane for streams with this inter-token latency (None once MAX_LANES exist)."""
        lane = self.lanes.get(itl)
        if lane is None and len(self.lanes) < MAX_LANES:
            lane = self.lanes[itl] = Lane()
            self.lane_list.append(lane)
        return lane

    # -- timer -----------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Use a timerfd when the platform has one (Linux); else the loop's (1 ms) timers."""
        self.loop = loop
        try:
            self.tfd = TimerFd()
            loop.add_reader(self.tfd.fd, self._on_timerfd)
        except (OSError, AttributeError, NotImplementedError):
            if self.tfd is not None:
                self.tfd.close()
            self.tfd = None

    def stop(self) -> None:
        if self.tfd is not None:
            self.loop.remove_reader(self.tfd.fd)
            self.tfd.close()
            self.tfd = None

    def _on_timerfd(self) -> None:
        try:
            os.read(self.tfd.fd, 8)
        except BlockingIOError:  # re-armed since it became readable
            return
        self.tfd_at = math.inf
        self.tick()

    def _on_soon(self) -> None:
        self.soon = False
        self.tick()

    def arm(self, at: float) -> None:
        """Make sure a tick happens at `at`: a timerfd wake-up, or the next loop iteration if that is
        close (programming a timer costs ~10 µs here, one already due ~40 µs: cheaper to re-poll)."""
        self.timer_at = at
        if self.tfd is not None:
            if at - _monotonic() <= SPIN_S:
                if not self.soon:
                    self.soon = True
                    self.loop.call_soon(self._on_soon)
            elif at != self.tfd_at:
                self.tfd_at = at
                self.tfd.set(at)
            return
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(max(0.0, at - time.monotonic()), self.tick)

    def next_deadline(self) -> float:
        nxt = self.heap[0][0] if self.heap else math.inf
        for lane in self.lane_list:
            if lane.d and lane.d[0] < nxt:
                nxt = lane.d[0]
        eng = self.engine
        if eng is not None and eng.step is not None and eng.step.end < nxt:
            nxt = eng.step.end
        return nxt

    def rearm(self) -> None:
        nxt = self.next_deadline()
        if nxt < self.timer_at:
            self.arm(nxt)

    # -- the hot path ----------------------------------------------------------------------

    def tick(self) -> None:
        t_in = _monotonic()
        lat = self.lat
        before = lat.count
        self.timer = None
        self.timer_at = math.inf
        self.ticking = True
        try:
            # keep releasing while more is already due (a backlog), up to TICK_BUDGET_S: then the
            # loop gets a turn (reads, accepts) before the next tick
            budget_end = _monotonic() + TICK_BUDGET_S
            while True:
                self._release()
                now = _monotonic()
                if now >= budget_end or self.next_deadline() > now + EARLY_S:
                    break
        finally:
            self.ticking = False
        self.rearm()
        if lat.count != before:  # time spent releasing tokens (not re-polling): the real load
            self.counters.busy_s += _monotonic() - t_in

    def _release(self) -> None:
        horizon = time.monotonic() + EARLY_S
        eng = self.engine
        if eng is not None and eng.step is not None and eng.step.end <= horizon:
            for em in eng.advance(horizon):
                g = em.req.tag
                if g.closed:
                    continue
                if g.delay:
                    self.push(em.deadline + g.delay, g)
                else:
                    g.emit(em.deadline)
            self._batch_metrics()
        for lane in self.lane_list:
            if lane.d and lane.d[0] <= horizon:
                self._release_lane(lane, horizon)
        heap = self.heap
        while heap and heap[0][0] <= horizon:
            d, _, g = heapq.heappop(heap)
            if not g.closed:
                g.emit(d)

    def _release_lane(self, lane: Lane, horizon: float) -> None:
        """Gen.emit's fast path, inlined: every stream in a lane is exact-clocked and fault-free.

        Heap entries due before the lane's head go first: releasing in deadline order keeps the
        next deadlines (+itl) appended in order, so streams leave the heap for the lane."""
        ds, gs = lane.d, lane.g
        pop_d, pop_g, add_d, add_g = ds.popleft, gs.popleft, ds.append, gs.append
        heap = self.heap
        lat = self.lat
        bins = lat.bins
        count, total, top = 0, 0.0, lat.max_s
        try:
            while ds:
                d = ds[0]
                if d > horizon:
                    break
                if heap and heap[0][0] < d:
                    hd, _, hg = heapq.heappop(heap)
                    if not hg.closed:
                        hg.emit(hd)
                    continue
                pop_d()
                g = pop_g()
                if g.closed:
                    continue
                i = g.sent + 1
                if i >= g.n:
                    g._emit_slow(d, i)  # the final event
                    continue
                g.sent = i
                data = g.encode(i, g.tokens[i - 1])
                now = _monotonic()
                g.write(data)
                g.last_write = now
                late = now - d
                k = int((late + 0.005) * 100000.0)
                if 0 <= k < 100000:
                    bins[k] += 1
                    count += 1
                    total += late
                    if late > top:
                        top = late
                else:
                    lat.add(late)
                d = g.base + i * g.itl  # == t0 + ttft + i * itl + delay (0: no stalls here)
                if not ds or ds[-1] <= d:
                    add_d(d)
                    add_g(g)
                else:
                    self.seq += 1
                    _heappush(heap, (d, self.seq, g))
        finally:
            lat.count += count
            lat.sum_s += total
            if top > lat.max_s:
                lat.max_s = top

    def _batch_metrics(self) -> None:
        eng = self.engine
        if eng.prefills != self._last_prefills:
            self._last_prefills = eng.prefills
            if eng.step is not None:
                self.metrics.observe("tgi_batch_next_size", len(eng.step.members))
        if eng.completed:
            m = self.metrics
            for kind, _, seconds in eng.completed:  # TGI's backend.rs, per prefill/decode call
                method = f'method="{kind}"'
                m.inc("tgi_batch_inference_count", method)
                m.inc("tgi_batch_inference_success", method)
                m.observe("tgi_batch_forward_duration", seconds, method)
                m.observe("tgi_batch_inference_duration", seconds, method)
            eng.completed.clear()
