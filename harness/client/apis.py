"""The APIs a user can drive (request bodies, which Stream reads the response) and `run_request`,
which turns one request, whatever happens to it, into exactly one Record.

How a response stream is interpreted (what counts as a token, errors) is `harness.client.streams`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

from harness.client.streams import GenerateStreamStream, OpenAIStream, Outcome, Stream, http_error
from harness.client.transport import Connection, HttpError, Response, Truncated, set_header
from harness.load import runstate
from harness.records.record import Record

_perf = time.perf_counter

_JSON = {"Content-Type": "application/json", "Accept": "text/event-stream"}


class Api:
    """One route: how to build its body and which Stream interprets its response."""

    name: ClassVar[str]
    route: ClassVar[str]
    chat: ClassVar[bool] = False  # prompts counted with the chat template
    stream_class: ClassVar[type[Stream]]

    def __init__(
        self, model: str = "tgi", ignore_eos: bool = False, headers: dict[str, str] | None = None
    ) -> None:
        self.model = model
        self.ignore_eos = ignore_eos
        self.headers = dict(_JSON)
        for name, value in (headers or {}).items():  # e.g. Authorization, X-Emulator-Fault
            set_header(self.headers, name, value)  # a given one replaces ours, whatever its case

    def body(self, text: str, max_new_tokens: int) -> bytes:
        raise NotImplementedError

    def stream(self, t_send: float) -> Stream:
        return self.stream_class(t_send)


class GenerateStream(Api):
    """TGI native POST /generate_stream (details always requested: they carry the counts)."""

    name = "generate_stream"
    route = "/generate_stream"
    stream_class = GenerateStreamStream

    def body(self, text: str, max_new_tokens: int) -> bytes:
        params = {"max_new_tokens": max_new_tokens, "details": True, "return_full_text": False}
        return json.dumps({"inputs": text, "parameters": params}).encode()


class _OpenAIApi(Api):
    """The OpenAI-compatible routes: one body layout, the prompt under a route-specific key."""

    stream_class = OpenAIStream

    def prompt(self, text: str) -> dict[str, Any]:
        raise NotImplementedError

    def body(self, text: str, max_new_tokens: int) -> bytes:
        req: dict[str, Any] = {
            "model": self.model,
            **self.prompt(text),
            "max_tokens": max_new_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.ignore_eos:
            req["ignore_eos"] = True
        return json.dumps(req).encode()


class ChatCompletions(_OpenAIApi):
    """OpenAI POST /v1/chat/completions, usage requested via stream_options.include_usage."""

    name = "chat"
    route = "/v1/chat/completions"
    chat = True

    def prompt(self, text: str) -> dict[str, Any]:
        return {"messages": [{"role": "user", "content": text}]}


class Completions(_OpenAIApi):
    """OpenAI POST /v1/completions (TGI always sends usage on the last chunk; vLLM needs the option)."""

    name = "completions"
    route = "/v1/completions"

    def prompt(self, text: str) -> dict[str, Any]:
        return {"prompt": text}


APIS: dict[str, type[Api]] = {cls.name: cls for cls in (GenerateStream, ChatCompletions, Completions)}


class RequestFailed(Exception):
    """The exception Locust sees for a failed request: short and stable, so failures group."""

    def __init__(self, error_type: str, message: str | None) -> None:
        super().__init__(f"{error_type}: {(message or '')[:160]}")
        self.error_type = error_type


def run_request(
    conn: Connection,
    api: Api,
    body: bytes,
    sink: Callable[[Record], None],
    worker: str,
    input_tokens: int | None = None,
    max_new_tokens: int | None = None,
    t_intended: float | None = None,
    queued_s: float | None = None,
) -> tuple[Record, int]:
    """Send one streaming request and hand exactly one Record to `sink`; returns it and the bytes read.

    Every outcome yields a record: HTTP errors, error events, truncation, timeouts, connection
    errors, our own bugs ("client"), and cancellation (a killed greenlet: "cancelled", then the
    BaseException propagates). `t_intended` / `queued_s`: an open-loop request's scheduled send time
    (perf clock) and its wait for a concurrency slot, kept on the record.
    """
    tag = runstate.current()
    wall0, perf0 = time.time(), _perf()  # wall_start is derived from the send instant (after connect)
    t_send = perf0
    token_us: list[int] = []
    out = Outcome()
    status: int | None = None
    received = 0
    resp: Response | None = None
    try:
        try:
            resp = conn.request("POST", api.route, body, api.headers)
            t_send = resp.t_send
            status = resp.status
            if status != 200:
                try:
                    data = resp.read_all(1 << 16)
                except HttpError:
                    data = b""
                out.error_type, out.error = http_error(status, data)
            else:
                stream = api.stream(t_send)
                token_us = stream.token_us
                feed = stream.feed
                transport: HttpError | None = None
                try:
                    resp.pump_lines(feed)
                except HttpError as exc:
                    transport = exc
                out = stream.finish(resp.complete)
                # An error event explains a broken stream better than the break; a break after
                # the final event lost nothing.
                if transport is not None and stream.error_line is None:
                    if out.error_type is not None or not isinstance(transport, Truncated):
                        out.error_type, out.error = transport.kind, str(transport)
        except HttpError as exc:
            out.error_type, out.error = exc.kind, str(exc)
        except Exception as exc:  # noqa: BLE001 - a bug of ours is still one failed record
            out.error_type, out.error = "client", f"{type(exc).__name__}: {exc}"
            conn.close()
        t_end = _perf()
    except BaseException:
        conn.close()
        out.error_type, out.error = "cancelled", "request cancelled (user stopped)"
        sink(_record(api, worker, tag, wall0 + (t_send - perf0), t_send, _perf(), token_us, input_tokens,
                     max_new_tokens, status, out, resp).with_schedule(t_intended, queued_s))
        raise
    if resp is not None:
        received = resp.bytes_received
        if out.error_type is None:
            t_end = resp.t_last  # the recv() that ended the body
    if resp is not None:
        _server_facts(resp.headers, out)
    rec = _record(api, worker, tag, wall0 + (t_send - perf0), t_send, t_end, token_us, input_tokens,
                  max_new_tokens, status, out, resp).with_schedule(t_intended, queued_s)
    sink(rec)
    return rec, received


# TGI's per-request timing headers (router/src/server.rs: milliseconds, on non-streamed /generate)
TIMING_HEADERS = ("x-total-time", "x-validation-time", "x-queue-time", "x-inference-time", "x-time-per-token")
REQUEST_ID_HEADERS = ("x-request-id", "request-id")


def _server_facts(headers: dict[str, str], out: Outcome) -> None:
    """The server's timing headers and request id, beside what its stream said (stream wins)."""
    timed = {}
    for name in TIMING_HEADERS:
        value = headers.get(name)
        if value is not None:
            try:
                timed[name] = float(value)
            except ValueError:
                continue
    if timed:
        out.server_timings = {**timed, **(out.server_timings or {})}
    for name in REQUEST_ID_HEADERS:
        if headers.get(name):
            out.server_request_id = headers[name]
            break


def _record(api: Api, worker: str, tag: runstate.StepTag, wall: float, t_send: float, t_end: float,
            token_us: list[int], input_tokens: int | None, max_new_tokens: int | None,
            status: int | None, out: Outcome, resp: Response | None = None) -> Record:  # fmt: skip
    head = None if resp is None or resp.t_first_byte is None else round((resp.t_first_byte - t_send) * 1e6)
    return Record(
        request_id=uuid.uuid4().hex,
        worker=worker,
        api=api.name,
        step=tag.step,
        users=tag.users,
        wall_start=wall,
        t_send=t_send,
        t_end=t_end,
        token_us=tuple(token_us),
        input_tokens=input_tokens,
        server_input_tokens=out.server_input_tokens,
        output_tokens=len(token_us),
        server_output_tokens=out.server_output_tokens,
        max_new_tokens=max_new_tokens,
        finish_reason=out.finish_reason,
        status=status,
        error_type=out.error_type,
        error=out.error,
        phase=tag.phase,
        connect_s=None if resp is None else resp.connect_s,
        reused=None if resp is None else resp.reused,
        headers_us=head,
        server_timings=out.server_timings,
        server_request_id=out.server_request_id,
    )
