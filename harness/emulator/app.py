"""The emulator as a whole: `ServerConfig`, `App` (config, tokenizer tables, corpus, engine model,
scheduler, live requests) and `serve`, which binds and runs it.

Module map: http.py parses requests (`Conn`), routes.py answers them, App.start plans a
generation, stream.py's `Gen` writes its events, scheduler.py decides when.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

from harness.emulator import wire
from harness.emulator.corpus import Corpus
from harness.emulator.engine import Engine, SimRequest
from harness.emulator.faults import FaultPolicy, ServerFaults, parse_fault, parse_timing
from harness.emulator.http import Conn
from harness.emulator.metrics import Counters, TgiMetrics
from harness.emulator.profiles import Profile
from harness.emulator.routes import ValidationError, validate_params
from harness.emulator.scheduler import Scheduler
from harness.emulator.stream import Gen

KEEPALIVE_S = 15.0  # axum's Sse KeepAlive default


@dataclass
class ServerConfig:
    """What `python -m harness emulate` resolves (cli/emulate.py's make_config); one server's settings."""

    profile: Profile
    host: str = "127.0.0.1"
    port: int = 8080
    tokenizer: str | None = None
    eos_probability: float = 0.0
    startup_delay_s: float = 0.0
    faults: FaultPolicy = field(default_factory=FaultPolicy)
    server_faults: ServerFaults = field(default_factory=ServerFaults)
    seed: int = 0
    compute_type: str = "gpu+optimized"
    docker_label: str | None = None
    keepalive_s: float = KEEPALIVE_S
    extra_info: dict[str, Any] = field(default_factory=dict)


class App:
    """Server state: config, tokenizer tables, the engine model, the scheduler and live requests."""

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
        self.active: set[Gen] = set()
        self.conns: set[Conn] = set()
        self.counters = Counters()
        self.metrics = TgiMetrics(p.max_input_tokens, p.max_total_tokens)
        self.sched = Scheduler(self.engine, self.counters, self.metrics)
        self.requests = 0
        self.generation_requests = 0  # POSTs to generation routes, counted by routes.route
        self.loop: asyncio.AbstractEventLoop | None = None

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
            gen.stamps = bool(headers.get("x-emulator-stamps"))
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
            max_new = validate_params(p, params, input_len)
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
        if fault is None and self.cfg.server_faults.active(self.generation_requests):
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
            self.sched.push(now + timing[0], gen)
        else:
            gen.ready()
            gen.sim = SimRequest(input_len, n, tag=gen)
            self.engine.submit(gen.sim, now)
            self.sched.rearm()


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
    if stop.is_set():  # stopped while the App was being built: never bind, never say READY
        return 0
    server = await loop.create_server(lambda: Conn(app), cfg.host, cfg.port, reuse_address=True, backlog=4096)
    sock = server.sockets[0]
    host, port = sock.getsockname()[:2]
    loop.call_later(min(1.0, cfg.keepalive_s / 4), app.keepalive)
    app.sched.start(loop)
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
    app.sched.stop()
    server.close()
    for conn in list(app.conns):
        if conn.transport is not None:
            conn.transport.abort()
    await server.wait_closed()
    return 0
