"""Bytes on the wire, exactly as TGI's router (axum + serde_json) writes them, built cheaply.

Field order follows the Rust structs' declaration order (serde serialises in that order):
  StreamResponse  index, token{id,text,logprob,special}, [top_tokens], generated_text, details
  StreamDetails   finish_reason, generated_tokens, seed, input_length
  chat chunk      object, id, created, model, system_fingerprint, choices[{index, delta{role,
                  content}, logprobs, finish_reason}], usage
  completion      Chunk: object, id, created, choices[{index,text,logprobs,finish_reason}], model,
                  system_fingerprint; CompletionFinal: object, id, created, model,
                  system_fingerprint, choices, usage
SSE events are `data:<json>\\n\\n` (axum writes no space); each event is one HTTP/1.1 chunk.
Per-token JSON fragments are cached so a token event costs a few bytes concatenations.
"""

from __future__ import annotations

import json
import time
from email.utils import formatdate

CHUNK_END = b"0\r\n\r\n"
KEEPALIVE = b":\n\n"
DONE = b"data:[DONE]\n\n"

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    424: "Failed Dependency",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def dumps(obj: object) -> bytes:
    """serde_json style: compact, UTF-8 (no \\u escapes for non-ASCII)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def jstr(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False).encode()


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunked-transfer frame."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def sse_chunk(payload: bytes) -> bytes:
    """An SSE `data:` event framed as one chunk (what hyper writes per axum Event)."""
    return b"%x\r\ndata:%b\n\n\r\n" % (len(payload) + 7, payload)


_date_cache: list = [0, b""]


def http_date() -> bytes:
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = formatdate(now, usegmt=True).encode()
    return _date_cache[1]


_CORS = (
    b"access-control-allow-origin: *\r\n"
    b"vary: origin, access-control-request-method, access-control-request-headers\r\n"
)


def head(status: int, headers: list[tuple[str, str]], *, length: int | None, keep_alive: bool) -> bytes:
    """Status line + headers. length=None → chunked (a streamed body)."""
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, "Unknown").encode())]
    for k, v in headers:
        lines.append(f"{k}: {v}\r\n".encode())
    lines.append(_CORS)
    if length is None:
        lines.append(b"transfer-encoding: chunked\r\n")
    else:
        lines.append(b"content-length: %d\r\n" % length)
    if not keep_alive:
        lines.append(b"connection: close\r\n")
    lines.append(b"date: %b\r\n\r\n" % http_date())
    return b"".join(lines)


def sse_head(compute_type: str, keep_alive: bool = True) -> bytes:
    return head(
        200,
        [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
            ("x-compute-type", compute_type),
            ("x-accel-buffering", "no"),
        ],
        length=None,
        keep_alive=keep_alive,
    )


def json_response(status: int, body: bytes, extra: list[tuple[str, str]] | None = None,
                  keep_alive: bool = True) -> bytes:
    hdrs = [("content-type", "application/json")] + (extra or [])
    return head(status, hdrs, length=len(body), keep_alive=keep_alive) + body


def error_body(message: str, error_type: str) -> bytes:
    return dumps({"error": message, "error_type": error_type})


def chat_error_body(message: str, status: int = 422) -> bytes:
    """Chat/completions stream error event payload (TGI hard-codes 422 here)."""
    return dumps({"error": {"message": message, "http_status_code": status}})


_GEN_TEMPLATE = b'%x\r\ndata:{"index":%d,"token":%b,"generated_text":null,"details":null}\n\n\r\n'
_GEN_CONST = len(b'data:{"index":') + len(b',"token":') + len(b',"generated_text":null,"details":null}\n\n')
_DIGITS = [len(str(k)) for k in range(10000)]
# A non-final /generate_stream chunk is three cached pieces joined (~100 ns; the % template is ~275):
#   b'<chunk size hex>\r\ndata:{"index":'  b'<index>'  b',"token":<token json>,...}\n\n\r\n'
_GEN_HEAD = [b'%x\r\ndata:{"index":' % k for k in range(4096)]
_INDEX = [b"%d" % k for k in range(10000)]
_GEN_TAIL = b',"generated_text":null,"details":null}\n\n\r\n'


class TokenTable:
    """Cached per-token byte fragments: TGI Token JSON, JSON-escaped text, raw text."""

    def __init__(self, tokenizer) -> None:  # noqa: ANN001 - harness.workload.tokenizer.Tokenizer
        self.tok = tokenizer
        self._special = set(tokenizer.special_ids)
        self._frag: dict[int, bytes] = {}
        self._text: dict[int, bytes] = {}
        self._content: dict[int, bytes] = {}
        self._gen: dict[int, tuple[int, bytes, bytes]] = {}

    def is_special(self, tid: int) -> bool:
        return tid in self._special

    def piece(self, tid: int) -> str:
        return self.tok.piece(tid)

    def token_json(self, tid: int) -> bytes:
        frag = self._frag.get(tid)
        if frag is None:
            special = tid in self._special
            logprob = 0.0 if special else -round(((tid * 2654435761) % 4093) / 1000.0 + 0.01, 4)
            frag = b'{"id":%d,"text":%b,"logprob":%s,"special":%s}' % (
                tid,
                jstr(self.piece(tid)),
                repr(logprob).encode(),
                b"true" if special else b"false",
            )
            self._frag[tid] = frag
        return frag

    def generate_chunk(self, i: int, tid: int) -> bytes:
        """A whole non-final /generate_stream event, framed as one chunk (the hot path)."""
        entry = self._gen.get(tid)
        if entry is None:
            frag = self.token_json(tid)
            entry = self._gen[tid] = (len(frag) + _GEN_CONST, b',"token":' + frag + _GEN_TAIL, frag)
        n, tail, frag = entry
        if i < 10000:
            size = n + _DIGITS[i]
            if size < 4096:
                return b"".join((_GEN_HEAD[size], _INDEX[i], tail))
        return _GEN_TEMPLATE % (n + len(str(i)), i, frag)

    def token_dict(self, tid: int) -> dict:
        return json.loads(self.token_json(tid))

    def text_json(self, tid: int) -> bytes:
        """JSON string of the token's text (completions `text`)."""
        t = self._text.get(tid)
        if t is None:
            t = self._text[tid] = jstr(self.piece(tid))
        return t

    def content_json(self, tid: int) -> bytes:
        """JSON string of the chat delta content: special tokens stream as ""."""
        t = self._content.get(tid)
        if t is None:
            t = self._content[tid] = b'""' if tid in self._special else jstr(self.piece(tid))
        return t

    def generated_text(self, ids: list[int]) -> str:
        """Concatenated streamed texts, special tokens skipped (TGI decodes with skip_special)."""
        sp = self._special
        return "".join(self.piece(t) for t in ids if t not in sp)


# -- /generate_stream ---------------------------------------------------------------------


def generate_event(index: int, token_json: bytes, generated_text: bytes | None = None,
                   details: bytes | None = None) -> bytes:
    return b'{"index":%d,"token":%b,"generated_text":%b,"details":%b}' % (
        index,
        token_json,
        generated_text if generated_text is not None else b"null",
        details if details is not None else b"null",
    )


def stream_details(finish_reason: str, generated_tokens: int, seed: int | None, input_length: int) -> bytes:
    return b'{"finish_reason":"%b","generated_tokens":%d,"seed":%b,"input_length":%d}' % (
        finish_reason.encode(),
        generated_tokens,
        b"null" if seed is None else str(seed).encode(),
        input_length,
    )


# -- OpenAI-compatible chunks -------------------------------------------------------------


def chat_chunk_prefix(created: int, model: str, fingerprint: str) -> bytes:
    return b'{"object":"chat.completion.chunk","id":"","created":%d,"model":%b,"system_fingerprint":%b,' % (
        created,
        jstr(model),
        jstr(fingerprint),
    )


def chat_chunk(prefix: bytes, content: bytes, finish_reason: str | None) -> bytes:
    fr = b"null" if finish_reason is None else b'"%b"' % finish_reason.encode()
    return prefix + b'"choices":[{"index":0,"delta":{"role":"assistant","content":%b},' \
        b'"logprobs":null,"finish_reason":%b}],"usage":null}' % (content, fr)


def usage_json(prompt: int, completion: int) -> bytes:
    return b'{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}' % (
        prompt, completion, prompt + completion)


def chat_usage_chunk(prefix: bytes, prompt: int, completion: int) -> bytes:
    return prefix + b'"choices":[],"usage":%b}' % usage_json(prompt, completion)


def completion_chunk(created: int, model: str, fingerprint: str, text: bytes) -> bytes:
    return b'{"object":"text_completion","id":"","created":%d,"choices":[{"index":0,"text":%b,' \
        b'"logprobs":null,"finish_reason":""}],"model":%b,"system_fingerprint":%b}' % (
            created, text, jstr(model), jstr(fingerprint))


def completion_parts(created: int, model: str, fingerprint: str) -> tuple[bytes, bytes]:
    """`completion_chunk` around its text, encoded once per request: the stream's hot path joins
    head + text + tail instead of JSON-encoding the model and fingerprint per token."""
    head, tail = completion_chunk(created, model, fingerprint, b"\0").split(b"\0")
    return head, tail


def completion_final(created: int, model: str, fingerprint: str, text: bytes, finish_reason: str,
                     prompt: int, completion: int) -> bytes:
    return b'{"object":"text_completion","id":"","created":%d,"model":%b,"system_fingerprint":%b,' \
        b'"choices":[{"index":0,"text":%b,"logprobs":null,"finish_reason":"%b"}],"usage":%b}' % (
            created, jstr(model), jstr(fingerprint), text, finish_reason.encode(),
            usage_json(prompt, completion))
