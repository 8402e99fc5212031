"""One generation request in flight (`Gen`): its planned tokens, clock, faults, and the bytes of its
events in the route's shape (TGI's /generate_stream, OpenAI chat and completions, or one response).

The per-token work is Gen.emit's fast path (a cached encoder, one transport.write, the lateness
bin). Tokens of exact-clocked, fault-free streams skip even that call: scheduler.py's lane loop
inlines the same steps, so a change to the fast path here must be made there too.
"""

from __future__ import annotations

import heapq
import time
from typing import TYPE_CHECKING, Any

from harness.emulator import wire
from harness.emulator.engine import SimRequest
from harness.emulator.faults import Fault

if TYPE_CHECKING:
    from harness.emulator.app import App
    from harness.emulator.http import Conn
    from harness.emulator.scheduler import Lane

_monotonic = time.monotonic
_heappush = heapq.heappush

ERROR_STATUS = {"generation": 424, "incomplete_generation": 500, "overloaded": 429, "validation": 422}
ERROR_MESSAGE = {
    "generation": "Request failed during generation: Server error: emulated fault",
    "incomplete_generation": "Incomplete generation",
    "overloaded": "Model is overloaded",
    "validation": "Input validation error: emulated fault",
}

FAILURE_LABEL = {"incomplete_generation": "incomplete"}  # tgi_request_failure{err=...}
STREAM_KINDS = ("generate_stream", "chat_stream", "completion_stream")


class Gen:
    """One generation request in flight: its planned tokens, clock, faults and output encoder."""

    __slots__ = (
        "app", "sched", "conn", "kind", "streaming", "tokens", "n", "finish_reason", "input_len",
        "max_new", "seed", "details", "include_usage", "fault", "exact", "t0", "delay", "sent", "closed",
        "sim", "arrival", "validation_s", "prefix", "created", "return_prefix", "last_write", "chars",
        "fast", "encode", "ttft", "itl", "lane", "base", "write", "t_first", "stamps",
    )

    def __init__(self, app: App, conn: Conn, kind: str) -> None:
        self.app, self.conn, self.kind = app, conn, kind
        self.sched = app.sched  # emit pushes the next deadline straight onto its heap/lanes
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
        self.t_first = 0.0  # monotonic time the first token was written (0: not yet)
        self.stamps = False  # X-Emulator-Stamps: the final completion chunk carries arrival and t_first

    # -- the hot path ----------------------------------------------------------------------

    def emit(self, deadline: float) -> None:
        """Release the next token (due at `deadline`). Called only from Scheduler.tick."""
        i = self.sent + 1
        if self.fast and i < self.n:
            # hot path: a streamed, fault-free, non-final token
            self.sent = i
            data = self.encode(i, self.tokens[i - 1])
            now = _monotonic()
            self.conn.transport.write(data)
            self.last_write = now
            if i == 1:  # first tokens always come through here (Scheduler.push), never a lane
                self.t_first = now
            sched = self.sched
            lat = sched.lat
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
                    sched.seq += 1
                    _heappush(sched.heap, (d, sched.seq, self))
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
        sched = self.sched
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
            elif f is not None and i % f.tokens_per_event:
                data = b""  # held: the event of a later token stands for it
            else:
                data = self.encode(i, tid)
            if data:
                self.conn.transport.write(data)
                self.last_write = now
                if not self.t_first:
                    self.t_first = now
        sched.lat.add(now - deadline)
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
            sched.push(self.t0 + self.ttft + i * self.itl + self.delay, self)

    def ready(self) -> None:
        """Choose the encoder once the request is planned (hot path: no per-event branching)."""
        table = self.app.table
        if self.kind == "generate_stream":
            self.encode = table.generate_chunk
        elif self.kind == "chat_stream":
            prefix = self.prefix

            content_json = table.content_json

            def encode(i: int, tid: int) -> bytes:
                return wire.sse_chunk(wire.chat_chunk(prefix, content_json(tid), None))

            self.encode = encode
        elif self.kind == "completion_stream":
            app = self.app
            head, tail = wire.completion_parts(self.created, app.model_id, app.fingerprint)
            text_json = table.text_json
            framing = len(head) + len(tail) + 7  # sse_chunk's, inlined: this runs once per token

            def encode(i: int, tid: int) -> bytes:
                text = text_json(tid)
                return b"%x\r\ndata:%b%b%b\n\n\r\n" % (framing + len(text), head, text, tail)

            self.encode = encode
        self.fast = self.streaming and self.fault is None
        if self.exact is not None:
            self.ttft, self.itl = self.exact
            self.base = self.t0 + self.ttft
            if self.fast:
                self.lane = self.sched.lane(self.itl)
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
        if self.stamps:  # the truth per request for the client benchmark (bench/client_tail.py)
            final = final[:-1] + b',"timings":{"emulator_received_s":%b,"emulator_first_token_s":%b}}' % (
                repr(self.arrival).encode(), repr(self.t_first).encode())
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
        # TGI's counter label is not always the response's error_type (router/src/infer/mod.rs)
        app.metrics.inc("tgi_request_failure", f'err="{FAILURE_LABEL.get(error_type, error_type)}"')
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
