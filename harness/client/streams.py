"""Stream interpretation for TGI's native and OpenAI-compatible routes: what the lines of a response
say (tokens, the final event, error events), and what an HTTP error body says.

Plain Python: the user hands each batch of lines (with the stamp of the recv() that completed
them) to a `Stream`; the hot path only looks at bytes. Per token it does a few `startswith`
checks and appends one int. JSON is parsed only at the end: the first error event, the last
token event (details / finish_reason / usage) and the last non-token event (usage chunk).

What counts as a token (and so as the first token, for TTFT):
- generate_stream: every `data:` event that is not an error event (TGI sends one per generated
  token, special tokens included; the last one also carries `details`).
- chat / completions: every chunk whose `choices` is non-empty. TGI sends one per generated token
  (special tokens as content ""), so this equals usage.completion_tokens. Servers that send a
  role-only priming chunk (vLLM, llama.cpp) get one more, and their TTFT is the priming chunk's
  arrival — the vLLM convention; compare output_tokens with server_output_tokens.
Error events (TGI `{"error": "..", "error_type": ".."}`, OpenAI-style `{"error": {"message": ..}}`)
are never tokens. `data:` is accepted with or without a space; `:` comments, blank lines and
other SSE fields are ignored; a `data:` line is one event (no multi-line events).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(slots=True)
class Outcome:
    """What a finished stream tells the record (besides the token stamps)."""

    server_input_tokens: int | None = None
    server_output_tokens: int | None = None
    finish_reason: str | None = None
    error_type: str | None = None
    error: str | None = None
    server_timings: dict[str, float] | None = None
    server_request_id: str | None = None


class Stream:
    """State of one response stream. `feed` is the hot path; `finish` parses what it kept."""

    __slots__ = (
        "t_send", "token_us", "last_token", "last_other", "last_finish", "error_line", "malformed", "done",
    )  # fmt: skip
    openai: ClassVar[bool] = False

    def __init__(self, t_send: float) -> None:
        self.t_send = t_send
        self.token_us: list[int] = []
        self.last_token: bytes | None = None  # raw payload of the last token event
        self.last_other: bytes | None = None  # raw payload of the last non-token event
        self.last_finish: bytes | None = None  # a chunk with only a finish_reason (OpenAI routes)
        self.error_line: bytes | None = None  # raw payload of the first error event
        self.malformed: bytes | None = None  # first data line that cannot be a JSON object
        self.done = False  # [DONE] seen (OpenAI routes)

    def feed(self, t: float, lines: list[bytes]) -> None:
        """Consume the lines one recv() completed at perf_counter `t`."""
        us = round((t - self.t_send) * 1_000_000)
        toks = self.token_us
        openai = self.openai
        for line in lines:
            if not line or not line.startswith(b"data:"):
                continue  # blank separator, ": keep-alive" comment, event:/id:/retry:
            off = 6 if line.startswith(b" ", 5) else 5
            if line.startswith(b'{"error"', off):
                if self.error_line is None:
                    self.error_line = line[off:]
                continue
            if openai:
                if line.startswith(b"[DONE]", off):
                    self.done = True
                    continue
                i = line.find(b'"choices":', off) + 10  # empty choices: a usage-only chunk
                if i >= 10 and (line.startswith(b"[]", i) or line.startswith(b" []", i)):
                    self.last_other = line
                    continue
                if b'"delta":{}' in line or b'"delta": {}' in line:  # llama.cpp's finish-only chunk:
                    self.last_finish = line  # no role, content or tool call, so no token
                    continue
            if not line.endswith(b"}") and self.malformed is None:
                self.malformed = line[off:]  # still a token event: it arrived, we just can't read it
            toks.append(us)
            self.last_token = line

    def finish(self, body_complete: bool) -> Outcome:
        """Interpret the kept lines once the body ended (`body_complete`) or broke off."""
        out = Outcome()
        if self.error_line is not None:
            self._error_event(out)
            return out
        try:
            final = self._final(out)
        except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
            out.error_type = "malformed"
            out.error = f"unparseable final event: {exc}"
            return out
        if self.malformed is not None:
            out.error_type = "malformed"
            out.error = f"malformed event {self.malformed[:120]!r}"
        elif not final:
            out.error_type = "truncated"
            out.error = (
                "stream ended without a final event" if body_complete else "connection closed mid-stream"
            )
        return out

    def _final(self, out: Outcome) -> bool:
        raise NotImplementedError

    def _error_event(self, out: Outcome) -> None:
        assert self.error_line is not None
        try:
            obj = json.loads(self.error_line)
        except ValueError:
            out.error_type, out.error = "stream_error", self.error_line[:300].decode("utf-8", "replace")
            return
        out.error_type, out.error = error_from_json(obj, "stream_error")


def _payload(line: bytes) -> bytes:
    return line[6:] if line.startswith(b" ", 5) else line[5:]


def error_from_json(obj: Any, default: str) -> tuple[str, str]:
    """(error_type, message) of TGI's `{"error","error_type"}` or OpenAI's `{"error":{...}}`."""
    if isinstance(obj, dict):
        err = obj.get("error")
        if isinstance(err, dict):  # OpenAI style (TGI Messages API, vLLM, llama.cpp)
            etype = err.get("error_type") or err.get("type") or default
            return str(etype), str(err.get("message", err))[:500]
        if err is not None:
            return str(obj.get("error_type") or default), str(err)[:500]
        if "message" in obj:  # bare {"message": ..} (some proxies)
            return str(obj.get("type") or default), str(obj["message"])[:500]
    return default, str(obj)[:500]


class GenerateStreamStream(Stream):
    __slots__ = ()

    def _final(self, out: Outcome) -> bool:
        if self.last_token is None:
            return False
        event = json.loads(_payload(self.last_token))
        details = event.get("details")
        if details:
            out.finish_reason = details.get("finish_reason")
            out.server_output_tokens = details.get("generated_tokens")
            out.server_input_tokens = details.get("input_length")
        return details is not None or event.get("generated_text") is not None


class OpenAIStream(Stream):
    __slots__ = ()
    openai = True

    def _final(self, out: Outcome) -> bool:
        finished = False
        for line in (self.last_token, self.last_finish):
            if line is None:
                continue
            chunk = json.loads(_payload(line))
            choices = chunk.get("choices") or [{}]
            out.finish_reason = choices[-1].get("finish_reason") or out.finish_reason
            finished = out.finish_reason is not None
            _usage(chunk, out)
        if self.last_other is not None:
            _usage(json.loads(_payload(self.last_other)), out)
        return self.done or finished


def _usage(chunk: dict, out: Outcome) -> None:
    usage = chunk.get("usage")
    if usage:
        out.server_input_tokens = usage.get("prompt_tokens")
        out.server_output_tokens = usage.get("completion_tokens")
    timings = chunk.get("timings")  # llama.cpp: its own timings of this request, in the last chunk
    if isinstance(timings, dict):
        out.server_timings = {k: v for k, v in timings.items() if isinstance(v, (int, float))}
    rid = chunk.get("id")
    if isinstance(rid, str) and rid:
        out.server_request_id = rid


def http_error(status: int, body: bytes) -> tuple[str, str]:
    """(error_type, message) for a non-200 response: TGI's error_type when the body has one."""
    text = body[:2000].decode("utf-8", "replace")
    try:
        obj = json.loads(text)
    except ValueError:
        return f"http_{status}", f"HTTP {status}: {text[:300]}".strip()
    etype, msg = error_from_json(obj, f"http_{status}")
    return etype, f"HTTP {status}: {msg}"
