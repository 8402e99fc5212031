"""HTTP/1.1 server speaking TGI's API, on a raw asyncio.Protocol (uvloop when available).

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
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import gc
import heapq
import json
import math
import os
import random
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from harness.emulator import wire
from harness.emulator.corpus import Corpus
from harness.emulator.engine import Engine, SimRequest
from harness.emulator.faults import Fault, FaultPolicy, parse_fault, parse_timing
from harness.emulator.metrics import Counters, TgiMetrics
from harness.emulator.profiles import Profile

_monotonic = time.monotonic
_heappush = heapq.heappush

EARLY_S = 0.0003  # a tick releases tokens due up to this much after it (batching: fewer wake-ups)
SPIN_S = 0.0005  # a deadline closer than this: re-poll the loop rather than sleep on the timerfd
TICK_BUDGET_S = 0.002  # longest run of releases before the loop gets a turn
MAX_LANES = 64  # distinct inter-token latencies with a FIFO lane; more go to the heap
KEEPALIVE_S = 15.0  # axum's Sse KeepAlive default
MAX_HEADER = 65536
MAX_BODY = 64 * 1024 * 1024

ERROR_STATUS = {"generation": 424, "incomplete_generation": 500, "overloaded": 429, "validation": 422}
ERROR_MESSAGE = {
    "generation": "Request failed during generation: Server error: emulated fault",
    "incomplete_generation": "Incomplete generation",
    "overloaded": "Model is overloaded",
    "validation": "Input validation error: emulated fault",
}

STREAM_KINDS = ("generate_stream", "chat_stream", "completion_stream")


class ValidationError(Exception):
    pass


@dataclass
class ServerConfig:
    profile: Profile
    host: str = "127.0.0.1"
    port: int = 8080
    tokenizer: str | None = None
    eos_probability: float = 0.0
    startup_delay_s: float = 0.0
    faults: FaultPolicy = field(default_factory=FaultPolicy)
    seed: int = 0
    compute_type: str = "gpu+optimized"
    docker_label: str | None = None
    keepalive_s: float = KEEPALIVE_S
    extra_info: dict[str, Any] = field(default_factory=dict)


class Gen:
    """One generation request in flight: its planned tokens, clock, faults and output encoder."""

    __slots__ = (
        "app", "conn", "kind", "streaming", "tokens", "n", "finish_reason", "input_len", "max_new",
        "seed", "details", "include_usage", "fault", "exact", "t0", "delay", "sent", "closed", "sim",
        "arrival", "validation_s", "prefix", "created", "return_prefix", "last_write", "chars", "fast",
        "encode", "ttft", "itl", "lane", "base", "write",
    )

    def __init__(self, app: App, conn: Conn, kind: str) -> None:
        self.app, self.conn, self.kind = app, conn, kind
        self.streaming = kind in STREAM_KINDS
        self.tokens: list[int] = []
        self.n = 0
        self.finish_reason = "length"
        self.input_len = 0
        self.max_new = 0
        self.seed: int | None = None
        self.details = False
        self.include_usage = False
        self.fault: Fault | None = None
        self.exact: tuple[float, float] | None = None
        self.t0 = 0.0
        self.delay = 0.0
        self.sent = 0
        self.closed = False
        self.sim: SimRequest | None = None
        self.arrival = time.monotonic()
        self.validation_s = 0.0
        self.prefix = b""
        self.created = int(time.time())
        self.return_prefix = ""
        self.last_write = self.arrival
        self.chars = 0
        self.fast = False
        self.encode: Any = None
        self.ttft = self.itl = 0.0
        self.lane: Lane | None = None
        self.base = 0.0  # t0 + ttft: token i (1-based) is due at base + (i - 1) * itl (+ stalls)
        self.write: Any = None

    # -- the hot path ----------------------------------------------------------------------

    def emit(self, deadline: float) -> None:
        """Release the next token (due at `deadline`). Called only from App.tick."""
        i = self.sent + 1
        if self.fast and i < self.n:
            # hot path: a streamed, fault-free, non-final token
            self.sent = i
            data = self.encode(i, self.tokens[i - 1])
            now = _monotonic()
            self.conn.transport.write(data)
            self.last_write = now
            app = self.app
            lat = app.lat
            late = now - deadline
            k = int((late + 0.005) * 100000.0)
            if 0 <= k < 100000:
                lat.bins[k] += 1
                lat.count += 1
                lat.sum_s += late
                if late > lat.max_s:
                    lat.max_s = late
            else:
                lat.add(late)
            if self.exact is not None:
                d = self.t0 + self.ttft + i * self.itl + self.delay
                lane = self.lane
                if lane is not None and (not lane.d or lane.d[-1] <= d):
                    lane.d.append(d)
                    lane.g.append(self)
                else:
                    app.seq += 1
                    _heappush(app.heap, (d, app.seq, self))
            return
        self._emit_slow(deadline, i)

    def _emit_slow(self, deadline: float, i: int) -> None:
        f = self.fault
        if f is not None and f.error is not None and i == f.error_after + 1:
            self.fail(f.error)
            return
        self.sent = i
        last = i >= self.n
        tid = self.tokens[i - 1]
        app = self.app
        now = time.monotonic()
        if self.streaming:
            if f is not None and f.malformed == i:  # an event cut short, in the route's own shape
                if self.kind == "generate_stream":
                    data = wire.chunk(b'data:{"index":%d,"token":{"id":%d,"te\n\n' % (i, tid))
                elif self.kind == "chat_stream":
                    data = wire.chunk(b'data:{"object":"chat.completion.chunk","choices":[{"index":0,'
                                      b'"delta":{"ro\n\n')
                else:
                    data = wire.chunk(b'data:{"object":"text_completion","choices":[{"index":0,"te\n\n')
            elif last:
                data = self._final_stream_bytes()
            else:
                data = self.encode(i, tid)
            self.conn.transport.write(data)
            self.last_write = now
        app.lat.add(now - deadline)
        if last:
            self.finish()
            return
        if f is not None:
            if f.disconnect is not None and f.disconnect == i:
                self.conn.transport.abort()
                self.close()
                return
            if f.stall_ms and i == f.stall_after:
                self.delay += f.stall_ms / 1000.0
        if self.exact is not None:
            app.push(self.t0 + self.ttft + i * self.itl + self.delay, self)

    def ready(self) -> None:
        """Choose the encoder once the request is planned (hot path: no per-event branching)."""
        table = self.app.table
        if self.kind == "generate_stream":
            self.encode = table.generate_chunk
        elif self.kind == "chat_stream":
            prefix = self.prefix

            def encode(i: int, tid: int) -> bytes:
                return wire.sse_chunk(wire.chat_chunk(prefix, table.content_json(tid), None))

            self.encode = encode
        elif self.kind == "completion_stream":
            app = self.app
            created, model, fp = self.created, app.model_id, app.fingerprint

            def encode(i: int, tid: int) -> bytes:
                return wire.sse_chunk(wire.completion_chunk(created, model, fp, table.text_json(tid)))

            self.encode = encode
        self.fast = self.streaming and self.fault is None
        if self.exact is not None:
            self.ttft, self.itl = self.exact
            self.base = self.t0 + self.ttft
            if self.fast:
                self.lane = self.app.lane(self.itl)
                self.write = self.conn.transport.write

    def _final_stream_bytes(self) -> bytes:
        app, table, i = self.app, self.app.table, self.n
        tid = self.tokens[-1]
        if self.kind == "generate_stream":
            text = wire.jstr(self.return_prefix + table.generated_text(self.tokens))
            details = (wire.stream_details(self.finish_reason, self.n, self.seed, self.input_len)
                       if self.details else None)
            event = wire.generate_event(i, table.token_json(tid), text, details)
            return wire.sse_chunk(event) + wire.CHUNK_END
        if self.kind == "chat_stream":
            reason = "length" if self.finish_reason == "length" else "stop"
            out = wire.sse_chunk(wire.chat_chunk(self.prefix, table.content_json(tid), reason))
            if self.include_usage:
                out += wire.sse_chunk(wire.chat_usage_chunk(self.prefix, self.input_len, self.n))
            return out + wire.chunk(wire.DONE) + wire.CHUNK_END
        final = wire.completion_final(self.created, app.model_id, app.fingerprint, table.text_json(tid),
                                      self.finish_reason, self.input_len, self.n)
        return wire.sse_chunk(final) + wire.chunk(wire.DONE) + wire.CHUNK_END

    # -- endings ---------------------------------------------------------------------------

    def finish(self) -> None:
        app = self.app
        end = time.monotonic()
        if not self.streaming:
            self.conn.transport.write(self._final_response(end))
        self.close()
        app.counters.requests_ok += 1
        m = app.metrics
        m.inc("tgi_request_success")
        queue_s = self.queue_s()
        total = end - self.arrival
        inference = max(0.0, total - queue_s - self.validation_s)
        m.observe("tgi_request_duration", total)
        m.observe("tgi_request_validation_duration", self.validation_s)
        m.observe("tgi_request_queue_duration", queue_s)
        m.observe("tgi_request_inference_duration", inference)
        m.observe("tgi_request_mean_time_per_token_duration", inference / max(1, self.n))
        m.observe("tgi_request_generated_tokens", self.n)
        self.conn.response_done()

    def fail(self, error_type: str, message: str | None = None) -> None:
        """End with a TGI error: an event on a stream (HTTP 200), a status code otherwise."""
        app = self.app
        message = message or ERROR_MESSAGE[error_type]
        t = self.conn.transport
        if self.streaming:
            if self.kind == "generate_stream":
                t.write(wire.sse_chunk(wire.error_body(message, error_type)) + wire.CHUNK_END)
            else:
                t.write(wire.sse_chunk(wire.chat_error_body(message)) + wire.chunk(wire.DONE)
                        + wire.CHUNK_END)
        else:
            body = wire.error_body(message, error_type)
            status = ERROR_STATUS.get(error_type, 500)
            t.write(wire.json_response(status, body, keep_alive=self.conn.keep_alive))
        self.close()
        app.counters.requests_failed += 1
        app.metrics.inc("tgi_request_failure", f'err="{error_type}"')
        self.conn.response_done()

    def queue_s(self) -> float:
        sim = self.sim
        return sim.prefill_start - sim.arrival if sim is not None and sim.prefill_start is not None else 0.0

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        app = self.app
        app.active.discard(self)
        if self.sim is not None and not self.sim.done and app.engine is not None:
            app.engine.cancel(self.sim)

    def _final_response(self, end: float) -> bytes:
        app, table = self.app, self.app.table
        text = self.return_prefix + table.generated_text(self.tokens)
        if self.kind == "generate":
            if self.details:
                toks = b",".join(table.token_json(t) for t in self.tokens)
                body = b'{"generated_text":%b,"details":{"finish_reason":"%b","generated_tokens":%d,' \
                    b'"seed":%b,"prefill":[],"tokens":[%b]}}' % (
                        wire.jstr(text), self.finish_reason.encode(), self.n,
                        b"null" if self.seed is None else str(self.seed).encode(), toks)
            else:
                body = b'{"generated_text":%b}' % wire.jstr(text)
            total = end - self.arrival
            queue_s = self.queue_s()
            inference = max(0.0, total - queue_s - self.validation_s)
            headers = [
                ("x-compute-type", app.cfg.compute_type),
                ("x-compute-time", repr(total)),
                ("x-compute-characters", str(self.chars)),
                ("x-total-time", str(int(total * 1000))),
                ("x-validation-time", str(int(self.validation_s * 1000))),
                ("x-queue-time", str(int(queue_s * 1000))),
                ("x-inference-time", str(int(inference * 1000))),
                ("x-time-per-token", str(int(inference * 1000 / max(1, self.n)))),
                ("x-prompt-tokens", str(self.input_len)),
                ("x-generated-tokens", str(self.n)),
            ]
            return wire.json_response(200, body, headers, keep_alive=self.conn.keep_alive)
        usage = wire.usage_json(self.input_len, self.n)
        if self.kind == "chat":
            reason = "length" if self.finish_reason == "length" else "stop"
            body = b'{"object":"chat.completion","id":"","created":%d,"model":%b,"system_fingerprint":%b,' \
                b'"choices":[{"index":0,"message":{"role":"assistant","content":%b},"logprobs":null,' \
                b'"finish_reason":"%b"}],"usage":%b}' % (
                    self.created, wire.jstr(app.model_id), wire.jstr(app.fingerprint), wire.jstr(text),
                    reason.encode(), usage)
        else:
            body = b'{"object":"text_completion","id":"","created":%d,"model":%b,"system_fingerprint":%b,' \
                b'"choices":[{"index":0,"text":%b,"logprobs":null,"finish_reason":"%b"}],"usage":%b}' % (
                    self.created, wire.jstr(app.model_id), wire.jstr(app.fingerprint), wire.jstr(text),
                    self.finish_reason.encode(), usage)
        return wire.json_response(200, body, keep_alive=self.conn.keep_alive)


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


class App:
    """Server state: config, tokenizer tables, the engine model, the release heap and the timer."""

    def __init__(self, cfg: ServerConfig, tokenizer: Any) -> None:  # harness.workload.tokenizer.Tokenizer
        self.cfg = cfg
        self.profile = p = cfg.profile
        self.model_id = p.model_id
        self.fingerprint = f"{p.version}-{cfg.docker_label or 'native'}"
        self.tok = tokenizer
        # Load tests reuse prompts (a pool): counting a repeated one again costs ~0.1-0.3 ms of the
        # core that must also keep 50,000 token deadlines a second. TGI tokenizes every time; the
        # count is what matters here, and it is the same.
        self.count = functools.lru_cache(maxsize=1024)(tokenizer.count)
        self._count_chat = functools.lru_cache(maxsize=1024)(
            lambda key: tokenizer.count_chat(json.loads(key)))
        self.table = wire.TokenTable(tokenizer)
        self.corpus = Corpus(tokenizer)
        self.engine: Engine | None = Engine(p) if p.mode != "exact" else None
        for tid in set(self.corpus.ids):  # warm the per-token byte caches: no decode on the hot path
            self.table.generate_chunk(1, tid)
            self.table.content_json(tid)
            self.table.text_json(tid)
        self.heap: list = []
        self.lanes: dict[float, Lane] = {}
        self.lane_list: list[Lane] = []
        self.seq = 0
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = math.inf
        self.tfd: TimerFd | None = None
        self.tfd_at = math.inf  # when the timerfd is armed to fire
        self.soon = False  # a tick is scheduled with call_soon
        self.active: set[Gen] = set()
        self.conns: set[Conn] = set()
        self.counters = Counters()
        self.lat = self.counters.lateness  # reset in place by Counters.reset
        self.metrics = TgiMetrics(p.max_input_tokens, p.max_total_tokens)
        self.rng = random.Random(cfg.seed)
        self.requests = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._last_prefills = 0
        self.ticking = False

    # -- timer -----------------------------------------------------------------------------

    def push(self, deadline: float, gen: Gen) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (deadline, self.seq, gen))
        if deadline < self.timer_at and not self.ticking:
            self.arm(deadline)

    def lane(self, itl: float) -> Lane | None:
        lane = self.lanes.get(itl)
        if lane is None and len(self.lanes) < MAX_LANES:
            lane = self.lanes[itl] = Lane()
            self.lane_list.append(lane)
        return lane

    def start_timer(self) -> None:
        """Use a timerfd when the platform has one (Linux); else the loop's (1 ms) timers."""
        try:
            self.tfd = TimerFd()
            self.loop.add_reader(self.tfd.fd, self._on_timerfd)
        except (OSError, AttributeError, NotImplementedError):
            if self.tfd is not None:
                self.tfd.close()
            self.tfd = None

    def stop_timer(self) -> None:
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

    def keepalive(self) -> None:
        """Every second: a `:` comment on streams silent for 15 s (as axum's KeepAlive)."""
        now = time.monotonic()
        for g in list(self.active):
            if g.streaming and not g.closed and now - g.last_write >= self.cfg.keepalive_s:
                g.conn.transport.write(wire.chunk(wire.KEEPALIVE))
                g.last_write = now
        self.loop.call_later(min(1.0, self.cfg.keepalive_s / 4), self.keepalive)

    # -- requests --------------------------------------------------------------------------

    def start(self, conn: Conn, kind: str, inputs: str, params: dict, headers: dict,
              chat_messages: list | None = None) -> None:
        """Validate, plan the tokens and hand the request to its clock (engine or exact)."""
        p = self.profile
        self.counters.requests_total += 1
        self.metrics.inc("tgi_request_count")
        gen = Gen(self, conn, kind)
        conn.gen = gen
        if gen.streaming:
            conn.transport.write(wire.sse_head(self.cfg.compute_type, conn.keep_alive))
        self.requests += 1
        rng = random.Random(self.cfg.seed * 1_000_003 + self.requests)
        try:
            fault_hdr = headers.get("x-emulator-fault")
            timing_hdr = headers.get("x-emulator-timing")
            fault = parse_fault(fault_hdr) if fault_hdr else None
            timing = parse_timing(timing_hdr) if timing_hdr else None
        except ValueError as exc:
            gen.fail("validation", f"Input validation error: bad emulator header: {exc}")
            return
        if fault is not None and fault.immediate_error:
            gen.fail(fault.error)
            return
        if len(self.active) >= p.max_concurrent_requests:
            self.counters.rejected_overloaded += 1
            gen.fail("overloaded")
            return
        t_val = time.monotonic()
        try:
            if chat_messages is not None:
                try:
                    # key order kept (no sort_keys): the template sees the messages as sent
                    input_len = self._count_chat(json.dumps(chat_messages))
                except Exception as exc:  # noqa: BLE001 - template errors are the client's
                    raise ValidationError(f"Template error: {exc}") from None
            else:
                if not inputs:
                    raise ValidationError("`inputs` cannot be empty")
                input_len = self.count(inputs)
            max_new = self._validate(params, input_len)
        except ValidationError as exc:
            gen.fail("validation", f"Input validation error: {exc}")
            return
        gen.validation_s = time.monotonic() - t_val
        n, finish = max_new, "length"
        ignore_eos = bool(params.get("ignore_eos"))
        eos_p = self.cfg.eos_probability
        if eos_p > 0 and not ignore_eos and self.tok.eos_token_id is not None:
            k = 1 if eos_p >= 1 else int(math.log(1.0 - rng.random()) / math.log(1.0 - eos_p)) + 1
            if k <= n:
                n, finish = k, "eos_token"
        seed = params.get("seed")
        corpus_seed = seed if isinstance(seed, int) else rng.getrandbits(48)
        tokens = self.corpus.take(corpus_seed, n)
        if finish == "eos_token":
            tokens[-1] = self.tok.eos_token_id
        gen.tokens, gen.n, gen.finish_reason = tokens, n, finish
        gen.input_len, gen.max_new = input_len, max_new
        gen.chars = len(inputs)
        gen.details = bool(params.get("details"))
        if params.get("do_sample"):
            gen.seed = seed if isinstance(seed, int) else rng.getrandbits(63)
        if params.get("return_full_text") and kind in ("generate", "generate_stream"):
            gen.return_prefix = inputs
        if fault is None:
            fault = self.cfg.faults.draw(rng, n)
            if fault is not None and fault.immediate_error:
                gen.fail(fault.error)
                return
        gen.fault = fault
        if kind == "chat_stream":
            gen.prefix = wire.chat_chunk_prefix(gen.created, self.model_id, self.fingerprint)
        self.metrics.observe("tgi_request_input_length", input_len)
        self.metrics.observe("tgi_request_max_new_tokens", max_new)
        self.active.add(gen)
        c = self.counters
        if len(self.active) > c.peak_active_streams:
            c.peak_active_streams = len(self.active)
        now = time.monotonic()
        if timing is None and self.engine is None:
            timing = (p.ttft_ms / 1000.0, p.itl_ms / 1000.0)
        if timing is not None:
            gen.exact = timing
            gen.t0 = now
            gen.ready()
            self.push(now + timing[0], gen)
        else:
            gen.ready()
            gen.sim = SimRequest(input_len, n, tag=gen)
            self.engine.submit(gen.sim, now)
            self.rearm()

    def _validate(self, params: dict, input_len: int) -> int:
        p = self.profile
        temperature = params.get("temperature")
        if temperature is not None and temperature <= 0:
            raise ValidationError("`temperature` must be strictly positive")
        top_p = params.get("top_p")
        if top_p is not None and not (0.0 < top_p < 1.0):
            raise ValidationError("`top_p` must be > 0.0 and < 1.0")
        top_k = params.get("top_k")
        if top_k is not None and top_k <= 0:
            raise ValidationError("`top_k` must be strictly positive")
        stop = params.get("stop") or []
        if len(stop) > 4:
            raise ValidationError(f"`stop` supports up to 4 stop sequences. Given: {len(stop)}")
        max_new = params.get("max_new_tokens")
        if max_new is None:
            max_new = max(0, p.max_total_tokens - input_len)
        if not isinstance(max_new, int) or max_new <= 0:
            raise ValidationError("`max_new_tokens` must be strictly positive")
        if input_len + max_new > p.max_total_tokens:
            raise ValidationError(
                f"`inputs` tokens + `max_new_tokens` must be <= {p.max_total_tokens}. "
                f"Given: {input_len} `inputs` tokens and {max_new} `max_new_tokens`")
        if input_len > p.max_input_tokens:
            raise ValidationError(
                f"`inputs` must have less than {p.max_input_tokens} tokens. Given: {input_len}")
        return max_new

    # -- small routes ----------------------------------------------------------------------

    def info(self) -> dict:
        p = self.profile
        return {
            "model_id": p.model_id,
            "model_sha": None,
            "model_pipeline_tag": "text-generation",
            "max_concurrent_requests": p.max_concurrent_requests,
            "max_best_of": 2,
            "max_stop_sequences": 4,
            "max_input_tokens": p.max_input_tokens,
            "max_total_tokens": p.max_total_tokens,
            "validation_workers": 2,
            "max_client_batch_size": 4,
            "router": "text-generation-router",
            "version": p.version,
            "sha": None,
            "docker_label": self.cfg.docker_label,
        }

    def stats(self) -> dict:
        c = self.counters
        now = time.monotonic()
        eng = self.engine
        return {
            "profile": self.profile.name,
            "mode": self.profile.mode,
            "uptime_s": round(now - c.started, 3),
            "window_s": round(now - c.since, 3),
            "lateness_ms": c.lateness.summary(),
            "token_events": c.token_events,
            "active_streams": len(self.active),
            "peak_active_streams": c.peak_active_streams,
            "connections": len(self.conns),
            "requests_total": c.requests_total,
            "requests_ok": c.requests_ok,
            "requests_failed": c.requests_failed,
            "rejected_overloaded": c.rejected_overloaded,
            "queue_size": eng.queue_size if eng else 0,
            "batch_size": eng.batch_size if eng else 0,
            "engine_prefills": eng.prefills if eng else 0,
            "engine_decodes": eng.decodes if eng else 0,
            # share of the window spent in ticks that released tokens (timer re-polls excluded)
            "busy_fraction": round(c.busy_s / max(1e-9, now - c.since), 3),
        }

    def prometheus(self) -> str:
        eng = self.engine
        gauges = {
            "tgi_queue_size": eng.queue_size if eng else 0,
            "tgi_batch_current_size": eng.batch_size if eng else len(self.active),
            "tgi_batch_current_max_tokens": sum(
                r.input_tokens + r.output_tokens for r in eng.running) if eng else 0,
        }
        return self.metrics.render(gauges)

    def tokenize(self, text: str) -> list[dict]:
        enc = self.tok.hf(text, return_offsets_mapping=True, add_special_tokens=True)
        return [
            {"id": tid, "text": text[a:b], "start": a, "stop": b}
            for tid, (a, b) in zip(enc["input_ids"], enc["offset_mapping"], strict=True)
        ]


class Conn(asyncio.Protocol):
    """One client connection: HTTP/1.1 keep-alive, one request at a time (pipelined ones wait)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.keep_alive = True
        self.gen: Gen | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self.app.conns.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.app.conns.discard(self)
        if self.gen is not None:
            self.gen.close()
            self.gen = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self.process()

    def response_done(self) -> None:
        self.busy = False
        self.gen = None
        if self.closed:
            return
        if not self.keep_alive:
            self.transport.close()
            return
        if self.buf:
            self.app.loop.call_soon(self.process)

    def send(self, data: bytes) -> None:
        self.busy = True
        self.transport.write(data)
        self.response_done()

    def send_json(self, status: int, obj: Any, extra: list[tuple[str, str]] | None = None) -> None:
        self.send(wire.json_response(status, wire.dumps(obj), extra, keep_alive=self.keep_alive))

    def process(self) -> None:
        if self.busy or self.closed:
            return
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEADER:
                self.keep_alive = False
                self.send(wire.head(431, [], length=0, keep_alive=False))
            return
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            self.keep_alive = False
            self.send(wire.head(400, [], length=0, keep_alive=False))
            return
        headers: dict[str, str] = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        conn_hdr = headers.get("connection", "").lower()
        self.keep_alive = ("close" not in conn_hdr) if version == "HTTP/1.1" else ("keep-alive" in conn_hdr)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.keep_alive = False
            self.send(wire.head(411, [], length=0, keep_alive=False))
            return
        try:
            length = int(headers.get("content-length", "0") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.keep_alive = False
            self.send(wire.head(413 if length > 0 else 400, [], length=0, keep_alive=False))
            return
        if len(buf) < end + 4 + length:
            return
        body = bytes(buf[end + 4 : end + 4 + length])
        del buf[: end + 4 + length]
        self.busy = True
        path = target.split("?", 1)[0]
        try:
            self.route(method, path, headers, body)
        except Exception as exc:  # noqa: BLE001 - never kill the server on one bad request
            if self.gen is None and self.busy:
                self.send_json(500, {"error": f"emulator error: {exc!r}", "error_type": "emulator"})
            else:
                raise

    def route(self, method: str, path: str, headers: dict, body: bytes) -> None:
        app = self.app
        if method == "GET":
            if path == "/health":
                return self.send(wire.head(200, [], length=0, keep_alive=self.keep_alive))
            if path == "/info":
                return self.send_json(200, app.info())
            if path == "/metrics":
                text = app.prometheus().encode()
                return self.send(wire.head(200, [("content-type", "text/plain; charset=utf-8")],
                                           length=len(text), keep_alive=self.keep_alive) + text)
            if path == "/v1/models":
                mid = app.model_id
                return self.send_json(200, {"object": "list", "data": [
                    {"id": mid, "object": "model", "created": 0, "owned_by": mid}]})
            if path == "/emulator/stats":
                return self.send_json(200, app.stats())
            if path == "/emulator/config":
                return self.send_json(200, {"profile": vars(app.profile), "corpus": app.corpus.source,
                                            "tokenizer": app.tok.name, **app.cfg.extra_info})
        elif method == "POST":
            if path == "/emulator/reset":
                app.counters.reset()
                return self.send_json(200, app.stats())
            handler = {
                "/generate": self.h_generate,
                "/generate_stream": self.h_generate,
                "/": self.h_generate,
                "/v1/chat/completions": self.h_chat,
                "/v1/completions": self.h_completions,
                "/tokenize": self.h_tokenize,
            }.get(path)
            if handler is not None:
                try:
                    req = json.loads(body) if body else None
                    if not isinstance(req, dict):
                        raise ValueError("expected a JSON object")
                except ValueError as exc:
                    msg = f"Failed to deserialize the JSON body into the target type: {exc}"
                    return self.send(wire.head(422, [("content-type", "text/plain; charset=utf-8")],
                                               length=len(msg.encode()), keep_alive=self.keep_alive)
                                     + msg.encode())
                return handler(path, req, headers)
        known = {"/health", "/info", "/metrics", "/v1/models", "/emulator/stats", "/emulator/config",
                 "/emulator/reset", "/generate", "/generate_stream", "/", "/v1/chat/completions",
                 "/v1/completions", "/tokenize"}
        status = 405 if path in known else 404
        return self.send(wire.head(status, [], length=0, keep_alive=self.keep_alive))

    def _bad(self, msg: str) -> None:
        self.send_json(422, {"error": msg, "error_type": "validation"})

    def h_generate(self, path: str, req: dict, headers: dict) -> None:
        inputs = req.get("inputs")
        params = req.get("parameters") or {}
        if not isinstance(inputs, str) or not isinstance(params, dict):
            return self._bad("Failed to deserialize the JSON body: `inputs` must be a string")
        if "ignore_eos" in req:
            params = {**params, "ignore_eos": req["ignore_eos"]}
        stream = path == "/generate_stream" or (path == "/" and bool(req.get("stream")))
        self.app.start(self, "generate_stream" if stream else "generate", inputs, params, headers)

    def _oai_params(self, req: dict) -> dict:
        max_tokens = req.get("max_tokens", req.get("max_completion_tokens"))
        params = {
            "max_new_tokens": max_tokens,
            "seed": req.get("seed"),
            "temperature": req.get("temperature"),
            "top_p": req.get("top_p"),
            "stop": req.get("stop") if isinstance(req.get("stop"), list) else [],
            "ignore_eos": req.get("ignore_eos"),
            "details": True,
        }
        if params["temperature"] == 0:
            params["temperature"] = None  # TGI maps temperature 0 to greedy
        return params

    def h_chat(self, path: str, req: dict, headers: dict) -> None:
        messages = req.get("messages")
        if not isinstance(messages, list) or not messages:
            return self._bad("Failed to deserialize the JSON body: `messages` must be a non-empty list")
        stream = bool(req.get("stream"))
        params = self._oai_params(req)
        opts = req.get("stream_options") or {}
        self.app.start(self, "chat_stream" if stream else "chat", "", params, headers, chat_messages=messages)
        g = self.gen
        if g is not None and not g.closed:
            g.include_usage = bool(isinstance(opts, dict) and opts.get("include_usage"))

    def h_completions(self, path: str, req: dict, headers: dict) -> None:
        prompt = req.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            return self._bad("the emulator supports one string prompt per /v1/completions request")
        stream = bool(req.get("stream"))
        self.app.start(self, "completion_stream" if stream else "completion", prompt,
                       self._oai_params(req), headers)

    def h_tokenize(self, path: str, req: dict, headers: dict) -> None:
        inputs = req.get("inputs")
        if not isinstance(inputs, str):
            return self._bad("Failed to deserialize the JSON body: `inputs` must be a string")
        self.send_json(200, self.app.tokenize(inputs))


async def serve(cfg: ServerConfig, tokenizer: Any, ready: Any = None,
                stop: asyncio.Event | None = None) -> int:
    """Bind (after the start-up delay), call ready(host, port), serve until `stop` is set."""
    loop = asyncio.get_running_loop()
    app = App(cfg, tokenizer)
    app.loop = loop
    stop = stop or asyncio.Event()
    if cfg.startup_delay_s > 0:  # like TGI loading the model: connections refused; SIGTERM still ends it
        try:
            await asyncio.wait_for(stop.wait(), cfg.startup_delay_s)
            return 0
        except TimeoutError:
            pass
    server = await loop.create_server(lambda: Conn(app), cfg.host, cfg.port, reuse_address=True, backlog=4096)
    sock = server.sockets[0]
    host, port = sock.getsockname()[:2]
    loop.call_later(min(1.0, cfg.keepalive_s / 4), app.keepalive)
    app.start_timer()
    # The tokenizer/transformers heap is large and immortal: a full collection of it stalls the loop
    # for ~100+ ms (late tokens). Freeze it out of the GC. The hot path allocates nothing the GC
    # tracks (see Lane); a request leaves ~4 tracked objects for its lifetime, so young collections
    # are rare, and a modest gen-0 threshold keeps each one well under a millisecond.
    gc.collect()
    gc.freeze()
    gc.set_threshold(5000, 10, 1000)
    if ready is not None:
        ready(host, port)
    await stop.wait()
    app.stop_timer()
    server.close()
    for conn in list(app.conns):
        if conn.transport is not None:
            conn.transport.abort()
    await server.wait_closed()
    return 0
