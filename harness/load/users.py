"""Abstract Locust users that stream from TGI (native or OpenAI-compatible) and record every request.

The Locust rim over plain modules: `harness.client.apis.run_request` does the request and yields one
`Record`; this module turns it into the live view and hands it to the process's RecordWriter.

Live view: each request is one Locust request ("POST", route), with the end-to-end time, so the
Aggregated row and RPS count requests once. TTFT, ITL and TOKENS/s (per request, logged once each)
are written straight into `environment.stats.entries` under their own request_type, NOT through
events.request: `RequestStats.log_request` would also feed `stats.total` (the Aggregated row).
Entries are serialized to the master with the others, so this works distributed too. "Response
time" columns of those rows are ms for TTFT/ITL and tokens/s for TOKENS/s.

Importing this module registers the options and listeners on `locust.events`: a library runner
must create its Environment with `events=locust.events`.
"""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path
from typing import Any, ClassVar

from locust import User, constant, events, task
from locust.runners import MasterRunner

from harness.client import apis
from harness.client.transport import Connection
from harness.load import options
from harness.records.record import Record, RecordWriter, worker_id
from harness.workload.prompts import PromptBuilder, PromptPool
from harness.workload.tokenizer import load_tokenizer

log = logging.getLogger(__name__)

class Shared:
    """Per-process state built outside the hot path: options, prompt pools, the record writer."""

    def __init__(self) -> None:
        self.opts = options.HarnessOptions()
        self.worker = worker_id()
        self.writer: RecordWriter | None = None
        self.records_path: Path | None = None
        self.pools: dict[tuple, PromptPool] = {}
        self.start_offset = 0
        self.preparing: Any = None  # greenlet started at init

    def configure(self, environment: Any) -> None:
        self.opts = options.HarnessOptions.from_namespace(getattr(environment, "parsed_options", None))
        pid_changed = self.worker != worker_id()  # forked by --processes after import
        self.worker = worker_id()
        if pid_changed and self.writer is not None:
            self.writer = None  # the parent's file handle: never flush it from here
        runner = getattr(environment, "runner", None)
        self.start_offset = 97 * int(getattr(runner, "worker_index", 0) or 0)

    def open_writer(self) -> RecordWriter:
        path = Path(self.opts.records_dir) / f"records-{self.worker.replace(':', '-')}.jsonl"
        if self.writer is not None and (path != self.records_path or self.writer.closed):
            self.writer.close()
            self.writer = None
        if self.writer is None:
            self.writer = RecordWriter(path).start()
            self.records_path = path
        return self.writer

    def pool(self, chat: bool) -> PromptPool:
        """The prompt pool for this counting mode, built once per (tokenizer, spec)."""
        spec = self.opts.prompt_spec()
        key = (self.opts.tokenizer, chat, spec)
        pool = self.pools.get(key)
        if pool is None:
            tok = load_tokenizer(self.opts.tokenizer)
            prompts = PromptBuilder(tok, chat).build(spec)
            pool = self.pools[key] = PromptPool(prompts, start=self.start_offset)
            kind = "chat" if chat else "text"
            log.info("built %d %s prompts (%s)", len(prompts), kind, self.opts.tokenizer)
        return pool

    def sink(self, record: Record) -> None:
        writer = self.writer or self.open_writer()
        writer.append(record)  # after close() (quitting): written at once, not dropped

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


shared = Shared()


def off_loop(fn: Any, *args: Any) -> Any:
    """Run CPU-heavy setup (tokenizer load, prompt pool) in a real thread of gevent's pool.

    The calling greenlet waits, but the hub keeps running: a worker that tokenized for seconds
    in its event loop would miss its heartbeats and the master would drop it.
    """
    from gevent import get_hub, monkey

    if monkey.is_module_patched("threading"):
        return get_hub().threadpool.apply(fn, args)
    return fn(*args)


def _our_classes(environment: Any) -> list[type[StreamingUser]]:
    return [c for c in getattr(environment, "user_classes", None) or [] if issubclass(c, StreamingUser)]


@events.init_command_line_parser.add_listener
def _add_options(parser: Any, **_kw: Any) -> None:
    options.add_arguments(parser)


def _prepare(environment: Any) -> None:
    shared.configure(environment)
    for cls in _our_classes(environment):
        off_loop(shared.pool, cls.api_for(shared.opts).chat)


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    """Start building the pools for the start-up options at once, so test_start rarely waits."""
    import gevent

    if not isinstance(environment.runner, MasterRunner):
        shared.preparing = gevent.spawn(_prepare, environment)


@events.test_start.add_listener
def _on_test_start(environment: Any, **_kw: Any) -> None:
    """Build the prompt pools (for the options of this run) and open the writer before any user
    runs. Not on a master: it sends no requests."""
    if isinstance(environment.runner, MasterRunner):
        return
    if shared.preparing is not None:
        shared.preparing.join()
        shared.preparing = None
    _prepare(environment)
    try:
        shared.opts.request_headers(os.environ)
    except ValueError as exc:  # every user will fail at on_start: say it once, plainly
        log.error("no request will be sent: %s", exc)
    shared.open_writer()
    # The tokenizer, prompt pools and Locust's own objects live for the whole run: freezing them
    # keeps the collector's full passes (which stop every greenlet) short during the test.
    gc.freeze()
    # Fewer collections: with the default gen-0 threshold (700) a 1024-stream run collected every
    # few ms and its full passes paused every greenlet for up to 8 ms (bench/client_capacity.py);
    # with 20,000 none fell in a 10 s window. Short-lived per-token objects never count towards it.
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, 20_000), gen1, max(gen2, 50))


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_kw: Any) -> None:
    if shared.writer is not None:
        shared.writer.flush()


@events.quitting.add_listener
def _on_quitting(environment: Any, **_kw: Any) -> None:
    shared.close()


class StreamingUser(User):
    """Closed-loop user: one streaming request after another on its own keep-alive connection."""

    abstract = True
    wait_time = constant(0)
    api_class: ClassVar[type[apis.Api] | None] = None  # None: chosen by --api

    @classmethod
    def api_for(cls, opts: options.HarnessOptions) -> type[apis.Api]:
        return cls.api_class or apis.APIS[opts.api]

    def on_start(self) -> None:
        opts = shared.opts
        if not self.host:
            raise ValueError("no --host given (the TGI base URL, e.g. http://127.0.0.1:8080)")
        self.api = self.api_for(opts)(model=opts.model, ignore_eos=opts.ignore_eos,
                                      headers=opts.request_headers(os.environ))
        self.pool = off_loop(shared.pool, self.api.chat)  # built at test_start: a dict lookup
        self.conn = Connection(self.host, timeout=opts.timeout, kernel_stamps=opts.stamps == "kernel")
        self._stats = self.environment.stats
        self._fire = self.environment.events.request.fire

    def on_stop(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None:
            conn.close()

    @task
    def stream(self) -> None:
        prompt = self.pool.next()
        body = self.api.body(prompt.text, prompt.max_new_tokens)
        self.send(body, prompt.input_tokens, prompt.max_new_tokens)

    def send(self, body: bytes, input_tokens: int | None, max_new_tokens: int | None) -> Record:
        """Run one request, record it, and report it to the live view."""
        rec, received = apis.run_request(
            self.conn, self.api, body, shared.sink, shared.worker, input_tokens, max_new_tokens
        )
        self.report(rec, received)
        return rec

    def report(self, rec: Record, received: int) -> None:
        route = self.api.route
        e2e_ms = (rec.t_end - rec.t_send) * 1000.0
        exc = None if rec.ok else apis.RequestFailed(rec.error_type or "error", rec.error)
        self._fire(
            request_type="POST",
            name=route,
            response_time=e2e_ms,
            response_length=received,
            exception=exc,
            context={"request_id": rec.request_id, "api": rec.api},
        )
        tok = rec.token_us
        entries = self._stats.entries
        if tok:
            entries[(route, "TTFT")].log(tok[0] / 1000.0, 0)
            if len(tok) > 1:
                entries[(route, "ITL")].log((tok[-1] - tok[0]) / 1000.0 / (len(tok) - 1), 0)
            if rec.ok and e2e_ms > 0:
                entries[(route, "TOKENS/s")].log(len(tok) * 1000.0 / e2e_ms, 0)


class TgiStreamUser(StreamingUser):
    """TGI native POST /generate_stream."""

    abstract = True
    api_class = apis.GenerateStream


class OpenAIChatUser(StreamingUser):
    """POST /v1/chat/completions (TGI Messages API, vLLM, llama.cpp)."""

    abstract = True
    api_class = apis.ChatCompletions


class OpenAICompletionsUser(StreamingUser):
    """POST /v1/completions (TGI, vLLM, llama.cpp)."""

    abstract = True
    api_class = apis.Completions


class ApiUser(StreamingUser):
    """The route comes from --api: one class for sweeps that switch APIs by option."""

    abstract = True


_BY_API: dict[str, type[StreamingUser]] = {
    "generate_stream": TgiStreamUser,
    "chat": OpenAIChatUser,
    "completions": OpenAICompletionsUser,
}


def user_class(api: str | None = None, **attrs: Any) -> type[StreamingUser]:
    """A concrete (non-abstract) user class for `api` (None: ApiUser, which follows --api), for
    library runs that have no locustfile; `attrs` may set e.g. host or wait_time."""
    base = ApiUser if api is None else _BY_API[api]
    return type(f"{base.__name__}Run", (base,), {"__module__": __name__, **attrs})
