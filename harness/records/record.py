"""One immutable record of raw facts per request, and the JSON-lines writer that saves them.

Every metric in `harness.analysis.metrics` is a pure function of these records; reports are recomputed
offline from the saved file. Times on the perf clock are seconds from `time.perf_counter()` on
the process that sent the request (comparable within one worker only); `token_us` holds each
token event's arrival as integer microseconds after `t_send`, stamped by the greenlet that read
the line, before JSON parsing.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import IO, Any

SCHEMA_VERSION = 1

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Record:
    request_id: str
    worker: str  # "<hostname>:<pid>" of the process that sent it
    api: str  # "generate_stream" | "chat" | "completions" | ...
    step: int | None  # index of the scenario step when the request was sent (None: no sweep)
    users: int | None  # target user count of that step
    wall_start: float  # time.time() at the send instant (t_send), derived from a clock pair
    t_send: float  # perf_counter() just before the request bytes were written
    t_end: float  # perf_counter() at the final event, error, or close
    token_us: tuple[int, ...]  # arrival of each token event, µs after t_send
    input_tokens: int | None  # our tokenizer's count of what was sent (chat template included)
    server_input_tokens: int | None  # details.input_length / usage.prompt_tokens
    output_tokens: int  # token events received
    server_output_tokens: int | None  # details.generated_tokens / usage.completion_tokens
    max_new_tokens: int | None
    finish_reason: str | None
    status: int | None  # HTTP status (None: no response)
    error_type: str | None  # None when the request succeeded
    error: str | None = None
    phase: str = "measure"  # "ramp" | "warmup" | "measure" | "cooldown": where in its step it was sent
    # Connection facts (None in records written before they were kept):
    connect_s: float | None = None  # seconds spent connecting before the send (0.0: reused connection)
    reused: bool | None = None  # sent on a kept-alive connection
    headers_us: int | None = None  # first byte of the response head, µs after t_send (TGI: before queueing)
    # Open loop (rate steps; None in closed loop): when the schedule meant it to be sent, perf clock,
    # and how long it waited for a slot under max_concurrency
    t_intended: float | None = None
    queued_s: float | None = None
    # What the server said about this request itself, when it says anything (records written
    # before these fields existed load with None): its timings as it named them (llama.cpp's final
    # chunk `timings`: prompt_ms, predicted_per_token_ms, ...; TGI's x-queue-time, x-inference-time,
    # x-time-per-token headers in ms) and its own id for the request (an `x-request-id` header,
    # else the OpenAI chunk `id`), so a record can be joined with the server's logs.
    server_timings: dict[str, float] | None = field(default=None, compare=False)
    server_request_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_type is None

    @property
    def ttft_s(self) -> float | None:
        return self.token_us[0] / 1e6 if self.token_us else None

    @property
    def e2e_s(self) -> float:
        return self.t_end - self.t_send

    @property
    def wall_end(self) -> float:
        return self.wall_start + (self.t_end - self.t_send)

    def with_schedule(self, t_intended: float | None, queued_s: float | None) -> Record:
        """This record with its open-loop schedule facts (itself when there are none)."""
        if t_intended is None and queued_s is None:
            return self
        return replace(self, t_intended=t_intended, queued_s=queued_s)

    def to_json(self) -> str:
        # Not dataclasses.asdict, which deep-copies every token stamp: the same JSON ~10x cheaper,
        # which matters at hundreds of records/s on a client core.
        return json.dumps({name: getattr(self, name) for name in _FIELDS}, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Record:
        return cls.from_dict(json.loads(line))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["token_us"] = tuple(values.get("token_us") or ())
        return cls(**values)


_FIELDS = tuple(f.name for f in fields(Record))
SLICE_S = 0.0003  # under gevent: serialise records for at most this long between two yields


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def read_records(path: str | os.PathLike[str]) -> list[Record]:
    """Read a JSONL file of records; a torn last line (crash mid-write) is skipped."""
    return list(iter_records(path))


def iter_records(path: str | os.PathLike[str]) -> Iterator[Record]:
    """The records of a JSONL file; lines that are not JSON (a write torn by a crash or a kill)
    are skipped with one warning naming the file and how many."""
    torn = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                torn += 1
                continue
            if isinstance(data, dict) and "request_id" in data:
                yield Record.from_dict(data)
    if torn:
        _log.warning("%s: skipped %d torn line(s) (a write cut short by a crash or kill)", path, torn)


class RecordWriter:
    """Append-only JSONL writer that never blocks the greenlets reading sockets.

    `append` only puts the record on a list. A flusher serialises and writes at most
    `interval` seconds later (a crash loses at most that), from a greenlet when gevent is
    running the process, else from a daemon thread; `close` flushes the rest. Under gevent a
    flush serialises records for at most `slice_s` (0.3 ms; one record at least) and yields to the
    hub in between, so it never holds the hub for more than that plus one record's JSON. A record
    that arrives after `close` (a request ending while the process quits) is written at once:
    errors are data, and no flusher would run again.

    A write that fails (the disk is full, the directory went away) never raises into the greenlet
    or Locust event that flushed: `error` says which file and why (one line), the records not
    written are counted in `lost`, and nothing more is written. What was written before the fault
    parses; a line torn by the fault is skipped by `iter_records`. The sweep's guard
    (harness.load.locust.guard) stops the run on `error`.
    """

    def __init__(self, path: str | os.PathLike[str], interval: float = 0.5) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.interval = interval
        self.slice_s = SLICE_S
        self._pending: list[Record] = []
        self._fh: IO[str] | None = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._lock = threading.Lock()
        self._stop = False
        self._flusher: Any = None
        self._pause: Any = None  # between slices of a flush: a short gevent sleep, set by start()
        self.written = 0
        self.lost = 0  # records not written after a write failed
        self.error: str | None = None  # the first failed write, one line
        self.closed = False

    def _failed(self, exc: OSError, unwritten: int) -> None:
        if self.error is None:
            self.error = f"cannot write {self.path}: {exc.strerror or exc}"
        self.lost += unwritten

    def append(self, record: Record) -> None:
        self._pending.append(record)
        if self.closed:
            self._write_late()

    def extend(self, records: Iterable[Record]) -> None:
        self._pending.extend(records)
        if self.closed:
            self._write_late()

    def _write_late(self) -> None:
        batch, self._pending = self._pending, []
        if self.error is not None:
            self.lost += len(batch)
            return
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write("".join(r.to_json() + "\n" for r in batch))
        except OSError as exc:
            self._failed(exc, len(batch))
            return
        self.written += len(batch)

    def flush(self) -> None:
        # The lock is held across the yields (gevent's, under Locust): close() waits for a flush
        # in progress instead of closing the file under it, so no record is dropped.
        with self._lock:
            if self._fh is None:
                return
            batch, self._pending = self._pending, []
            if self.error is not None:
                self.lost += len(batch)
                return
            before = self.written
            try:
                self._write(batch)
            except OSError as exc:  # (some of those counted written may be in the unflushed buffer)
                self._failed(exc, len(batch) - (self.written - before))

    def _write(self, batch: list[Record]) -> None:
        pause = self._pause
        if pause is None:
            self._fh.write("".join(r.to_json() + "\n" for r in batch))
            self.written += len(batch)
            self._fh.flush()
            return
        # Under gevent: slices of at most SLICE_S each (a record's size varies 100-fold with
        # its token count, so a fixed number per slice does not bound the time), with a
        # short sleep between them so the loop polls the sockets (issue #12).
        fh, clock, budget = self._fh, time.perf_counter, self.slice_s
        i, n = 0, len(batch)
        while i < n:
            if i:
                pause()
            part: list[str] = []
            t_end = clock() + budget
            while i < n:
                part.append(batch[i].to_json())
                i += 1
                if clock() >= t_end:
                    break
            part.append("")
            fh.write("\n".join(part))
            self.written += len(part) - 1
        fh.flush()

    def start(self) -> RecordWriter:
        """Start the periodic flusher (idempotent)."""
        if self._flusher is not None:
            return self
        try:
            from gevent import monkey

            use_gevent = monkey.is_module_patched("socket")
        except ImportError:
            use_gevent = False
        if use_gevent:
            import gevent

            # a timer, so the loop polls sockets between slices; gevent's sleep(0) may not
            self._pause = functools.partial(gevent.sleep, 0.0002)
            self._flusher = gevent.spawn(self._loop, gevent.sleep)
        else:
            self._flusher = threading.Thread(target=self._loop, args=(time.sleep,), daemon=True)
            self._flusher.start()
        return self

    def _loop(self, sleep) -> None:  # noqa: ANN001
        while not self._stop:
            sleep(self.interval)
            self.flush()

    def close(self) -> None:
        self._stop = True
        self.flush()
        with self._lock:
            if self._fh is not None:
                try:
                    self._fh.close()
                except OSError as exc:  # the buffer's last bytes after a failed write
                    self._failed(exc, 0)
                self._fh = None
            self.closed = True
        if self._pending:  # appended while the last flush yielded
            self._write_late()
        flusher, self._flusher = self._flusher, None
        if flusher is not None and hasattr(flusher, "kill"):
            flusher.kill(block=False)

    def __enter__(self) -> RecordWriter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
