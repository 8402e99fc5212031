"""Abstract Locust users that stream from TGI (native or OpenAI-compatible) and record every request.

The Locust rim over plain modules: `harness.client.apis.run_request` does the request and yields one
`Record`; this module turns it into the live view and hands it to the process's record sink.
Users read the run's `RunConfig` (harness.config.model) from `shared.config`, which the listeners
(harness.load.locust.listeners) resolve once per test, on every worker the same.

Live view: each request is one Locust request ("POST", route), with the end-to-end time, so the
Aggregated row and RPS count requests once. TTFT and ITL (per request, logged once each, ms)
are written straight into `environment.stats.entries` under their own request_type, NOT through
events.request: `RequestStats.log_request` would also feed `stats.total` (the Aggregated row).
Entries are serialized to the master with the others, so this works distributed too. Tokens/s is
not logged there: Locust's table would show it under "(ms)" headers; the web UI's LLM tab
(harness.load.locust.webui) shows it, from the records.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import gevent
from gevent.pool import Group
from locust import User, constant, task
from locust.exception import StopUser

from harness.client import apis
from harness.client.transport import Connection
from harness.config.model import RunConfig, StepSpec
from harness.load import runstate
from harness.load.arrivals import worker_seed
from harness.load.budget import RequestBudget
from harness.load.headers import request_headers
from harness.load.locust.offloop import off_loop
from harness.load.progress import LiveSteps
from harness.load.storm import Backoff
from harness.records.record import Record, RecordWriter, worker_id
from harness.workload.prompts import Prompt, PromptBuilder, PromptPool, PromptSpec, prefix_stats
from harness.workload.tokenizer import load_tokenizer
from harness.workload.trace import load_trace

log = logging.getLogger(__name__)


class Shared:
    """Per-process state built outside the hot path: the config, prompt pools, the record sink.

    `sink(record)` is where every record of this process's run arrives: the users' own (one
    process, or a worker) and, on a master, each record a worker sent (harness.load.locust.shipping).
    It writes one `records-<worker>.jsonl` per worker id and feeds the live view. On a worker,
    `forward` ships the record to the master instead (`keep_local`: a local copy too), after
    `clock_offset_s` put its send time on the master's clock.
    """

    def __init__(self) -> None:
        self.config = RunConfig()
        self.worker = worker_id()
        self.writer: RecordWriter | None = None
        self.records_path: Path | None = None
        self.writers: dict[str, RecordWriter] = {}  # a master's: one per worker that sent records
        self.forward: Callable[[Record], None] | None = None  # a worker's: to the master
        self.keep_local = True
        self.clock_offset_s = 0.0
        self.is_worker = False  # a worker's local copy goes to worker-<id>/ under the run dir ...
        self.local_dir: str | None = None  # ... or here (`sweep --worker --records-dir DIR`)
        self.shipper: Any = None
        self.pools: dict[tuple, PromptPool] = {}
        self.builders: dict[tuple, PromptBuilder] = {}  # (tokenizer, chat): built once per process
        self.traces: dict[tuple, list[Prompt]] = {}  # a trace step's prompts, one per entry
        self.prompt_stats: dict[str, Any] = {}  # for the manifest: seeds and the prefix-sharing statistic
        self.start_offset = 0
        self.live = LiveSteps()  # what the progress line shows, fed here, in memory
        self.subscribers: list[Callable[[Record], None]] = []  # e.g. the web UI's LLM tab
        self.in_flight = 0  # requests sent by this process's users and not finished yet
        self.preparing: Any = None  # greenlet started at init
        self.watch: Any = None  # harness.load.storm.StormWatch while a test runs (guard.start)
        self.budget = RequestBudget()  # --stop-after-requests (harness.load.locust.stopafter)
        self.io_error: str | None = None  # a run file other than the records that could not be written

    def all_writers(self) -> list[RecordWriter | None]:
        """This process's record writers: its own, and a master's one per worker."""
        return [self.writer, *self.writers.values()]

    def write_error(self) -> str | None:
        """The first write to the run directory that failed (a full disk), one line; else None."""
        for writer in self.all_writers():
            if writer is not None and writer.error:
                return writer.error
        return self.io_error

    def open_loop_step(self, step: int | None) -> StepSpec | None:
        """The step's spec when it is an open-loop (`rate`) step, else None."""
        if step is None or not 0 <= step < len(self.steps):
            return None
        spec = self.steps[step]
        return spec if spec.rate is not None else None

    def configure(self, config: RunConfig, worker_index: int = 0) -> None:
        self.config = config
        self.steps = config.plan_steps()
        pid_changed = self.worker != worker_id()  # forked by --processes after import
        self.worker = worker_id()
        if pid_changed and self.writer is not None:
            self.writer = None  # the parent's file handle: never flush it from here
        self.start_offset = 97 * worker_index

    @property
    def records_dir(self) -> Path:
        return run_dir(self.config)

    def open_writer(self) -> RecordWriter:
        name = self.worker.replace(":", "-")
        base = self.records_dir
        if self.is_worker:
            base = Path(self.local_dir) if self.local_dir else base / f"worker-{name}"
        path = base / f"records-{name}.jsonl"
        if self.writer is not None and (path != self.records_path or self.writer.closed):
            self.writer.close()
            self.writer = None
        if self.writer is None:
            self.writer = RecordWriter(path).start()
            self.records_path = path
        return self.writer

    def builder(self, chat: bool) -> PromptBuilder:
        key = (self.config.workload.tokenizer, chat)
        builder = self.builders.get(key)
        if builder is None:
            builder = self.builders[key] = PromptBuilder(load_tokenizer(key[0]), chat)
        return builder

    def trace_prompts(self, step: int, chat: bool) -> list[Prompt]:
        """Step `step`'s prompts, one per trace entry (every process builds all of them, the same:
        a driver sends its share). An entry's own `text` as is (counted exactly); else a prompt of
        `input_tokens` tokens, distinct from every other (harness.workload.prompts), from a seed
        derived from the run's and the step's, so they are not the pool's prompts."""
        spec_ = self.steps[step]
        base = prompt_spec(self.config)
        key = (self.config.workload.tokenizer, chat, step, spec_.trace, base)
        prompts = self.traces.get(key)
        if prompts is None:
            entries = load_trace(spec_.trace or "").entries
            builder = self.builder(chat)
            seed = worker_seed(base.seed, step, -1) % 2**31
            made = iter(builder.build(replace(base, seed=seed), [
                (e.input_tokens, e.output_tokens) for e in entries if e.text is None]))
            prompts = self.traces[key] = [
                next(made) if e.text is None
                else Prompt(e.text, builder.count(e.text), e.output_tokens, e.input_tokens)
                for e in entries]
            log.info("built %d prompts for the trace of step %d", len(prompts), step)
        return prompts

    def built_pool(self, chat: bool) -> PromptPool | None:
        """The pool `pool(chat)` returns, if it is built already (a dict lookup, on the loop)."""
        return self.pools.get(self._pool_key(chat))

    def _pool_key(self, chat: bool) -> tuple:
        return (self.config.workload.tokenizer, chat, prompt_spec(self.config))

    def pool(self, chat: bool) -> PromptPool:
        """The prompt pool for this counting mode, built once per (tokenizer, spec)."""
        key = self._pool_key(chat)
        tokenizer, _, spec = key
        pool = self.pools.get(key)
        if pool is None:
            builder = self.builder(chat)
            prompts = builder.build(spec)
            pool = self.pools[key] = PromptPool(prompts, start=self.start_offset)
            self.prompt_stats = {"seed": spec.seed, "lengths_seed": spec.lengths_seed,
                                 **prefix_stats(builder, prompts)}
            log.info("built %d %s prompts (%s)", len(prompts), "chat" if chat else "text", tokenizer)
        return pool

    def sink(self, record: Record) -> None:
        if record.worker == self.worker:
            if self.clock_offset_s:
                record = replace(record, wall_start=record.wall_start + self.clock_offset_s)
            if self.forward is not None:
                self.forward(record)
            writer = self.writer or self.open_writer() if self.keep_local or self.forward is None else None
        else:  # a worker's record, received by the master
            writer = self.writers.get(record.worker) or self.open_writer_for(record.worker)
        if writer is not None:
            writer.append(record)  # after close() (quitting): written at once, not dropped
        self.live.add(record)
        if self.watch is not None:
            self.watch.add(record)
        for subscriber in self.subscribers:
            subscriber(record)

    def subscribe(self, fn: Callable[[Record], None]) -> None:
        """Also hand every record of this process (a master: every record that reaches it) to `fn`."""
        if fn not in self.subscribers:
            self.subscribers.append(fn)

    def open_writer_for(self, worker: str) -> RecordWriter:
        path = self.records_dir / f"records-{worker.replace(':', '-')}.jsonl"
        writer = self.writers[worker] = RecordWriter(path).start()
        return writer

    def flush(self) -> None:
        for writer in [self.writer, *self.writers.values()]:
            if writer is not None:
                writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        for writer in self.writers.values():
            writer.close()


shared = Shared()


def run_dir(config: RunConfig) -> Path:
    """Where a run's records go: output.records_dir, else results_dir/run_id (resolved by then)."""
    out = config.output
    if out.records_dir:
        return Path(out.records_dir)
    return Path(out.results_dir) / (out.run_id or "run")


def prompt_spec(config: RunConfig) -> PromptSpec:
    w = config.workload
    return PromptSpec(
        input_mean=w.input_mean,
        input_stddev=w.input_stddev,
        output_mean=w.output_mean,
        output_stddev=w.output_stddev,
        min_input=w.input_min,
        seed=config.with_run_seed().workload.seed or 0,  # resolved per run already (listeners)
        size=w.prompt_pool_size,
        lengths_seed=w.lengths_seed,
        prefix_tokens=w.prefix_tokens,
        prefix_groups=w.prefix_groups,
    )


def our_classes(environment: Any) -> list[type[StreamingUser]]:
    return [c for c in getattr(environment, "user_classes", None) or [] if issubclass(c, StreamingUser)]


class StreamingUser(User):
    """Closed-loop user: one streaming request after another on its own keep-alive connection."""

    abstract = True
    wait_time = constant(0)
    api_class: ClassVar[type[apis.Api] | None] = None  # None: chosen by the config's request.api

    @classmethod
    def api_for(cls, config: RunConfig) -> type[apis.Api]:
        # request.api None ("auto") is resolved by the pre-flight before a test starts; until then
        # (a worker's guess) TGI's route stands in.
        return cls.api_class or apis.APIS[config.request.api or "generate_stream"]

    def on_start(self) -> None:
        cfg = shared.config
        req = cfg.request
        if not self.host:
            raise ValueError("no --host given (the server's base URL, e.g. http://127.0.0.1:8080)")
        self.api = self.api_for(cfg)(model=req.model_name or "tgi", ignore_eos=req.ignore_eos,
                                     headers=request_headers(req, os.environ))
        # built at test_start, normally: then no thread (hundreds of users starting together each
        # handing a dict lookup to gevent's thread pool held the loop ~20 ms on the GIL, issue #12)
        self.pool = shared.built_pool(self.api.chat) or off_loop(shared.pool, self.api.chat)
        self.conn = self.new_connection()
        self._stats = self.environment.stats
        self._fire = self.environment.events.request.fire
        self.arrivals = Group()  # open-loop steps: the requests this user's driver sent
        self.spare_connections: list[Connection] = []
        self._backoff = Backoff()

    def new_connection(self) -> Connection:
        req = shared.config.request
        return Connection(self.host, timeout=req.timeout_s, kernel_stamps=req.stamps == "kernel")

    def on_stop(self) -> None:
        arrivals = getattr(self, "arrivals", None)
        if arrivals is not None:
            arrivals.kill(block=False)  # their requests end as "cancelled" records
        for conn in [getattr(self, "conn", None), *getattr(self, "spare_connections", [])]:
            if conn is not None:
                conn.close()

    @task
    def stream(self) -> None:
        spec = shared.open_loop_step(runstate.current().step)
        if spec is not None:  # a rate step: this user is its arrival driver (harness.load.locust.arrivals)
            from harness.load.locust.arrivals import drive

            drive(self, spec, shared.config.workload.seed or 0)
            return
        budget = shared.budget
        if not budget.take():  # --stop-after-requests: this process has sent its share
            raise StopUser()
        try:
            prompt = self.pool.next()
            body = self.api.body(prompt.text, prompt.max_new_tokens)
            rec = self.send(body, prompt.input_tokens, prompt.max_new_tokens)
        finally:
            budget.finish()
        pause = self._backoff.after(rec)  # a refused-connection loop: fewer requests, none dropped
        if pause:
            gevent.sleep(pause)

    def send(self, body: bytes, input_tokens: int | None, max_new_tokens: int | None,
             conn: Connection | None = None, t_intended: float | None = None,
             queued_s: float | None = None) -> Record:  # fmt: skip
        """Run one request (on `conn`, default the user's own), record it, and report it to the live
        view; `t_intended` / `queued_s`: an open-loop request's schedule (harness.client.apis).

        A request sent inside a step's measurement window is counted as sent and, however it ends
        (even cancelled), as ended: the shape closes the window and the cool-down on these counts.
        """
        tag = runstate.current()
        window = runstate.window_name(tag.step) if tag.phase == "measure" and tag.step is not None else None
        if window is not None:
            self._stats.entries[(window, runstate.WINDOW_SENT)].log(0, 0)
        shared.in_flight += 1
        try:
            rec, received = apis.run_request(
                conn or self.conn, self.api, body, shared.sink, shared.worker, input_tokens, max_new_tokens,
                t_intended, queued_s,
            )
        finally:
            shared.in_flight -= 1
            if window is not None:
                self._stats.entries[(window, runstate.WINDOW_ENDED)].log(0, 0)
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
    """The route comes from the config's request.api: one class for sweeps that switch APIs."""

    abstract = True


_BY_API: dict[str, type[StreamingUser]] = {
    "generate_stream": TgiStreamUser,
    "chat": OpenAIChatUser,
    "completions": OpenAICompletionsUser,
}


def user_class(api: str | None = None, **attrs: Any) -> type[StreamingUser]:
    """A concrete (non-abstract) user class for `api` (None: ApiUser, which follows request.api), for
    library runs that have no locustfile; `attrs` may set e.g. host or wait_time."""
    base = ApiUser if api is None else _BY_API[api]
    return type(f"{base.__name__}Run", (base,), {"__module__": __name__, **attrs})
