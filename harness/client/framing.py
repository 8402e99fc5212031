"""Body framing (chunked, Content-Length, read-until-close) and line splitting, fed one recv() at a
time.

One incremental decoder, `BodyDecoder`, serves every body reader: the blocking generators
(`Response.iter_payload`, `Response.iter_line_batches`) and the gevent read callback (`Pump`).
`lines()` is the hot path (one call per token under Locust): its common case, a recv() holding
exactly one whole chunk (TGI writes one SSE event per chunk) with no partial state pending, is
one find, one int(), one slice and one split, inline.
"""

from __future__ import annotations

from harness.client.errors import ProtocolError, Truncated

# No SSE event of an LLM server comes near this (TGI's final event carries the generated text:
# ~100 KB for 32k tokens). A longer unterminated line is a server sending something else (a file,
# garbage): fail the request instead of buffering it, re-joined at every recv().
MAX_LINE = 4 << 20


def dechunk(raw: bytes, state: list) -> tuple[bytes, int, bool]:
    """Decode what `raw` holds of a chunked body: (payload, bytes consumed, body finished).

    `state` = [payload bytes still due in the current chunk, its CRLF still due, in trailers]
    carries over between calls; unconsumed bytes (a partial size line or CRLF) are passed again
    with the next recv()'s data.
    """
    need, crlf, trailers = state
    pos = 0
    n = len(raw)
    out: list[bytes] = []
    done = False
    while pos < n:
        if need:
            take = need if need <= n - pos else n - pos
            out.append(raw[pos : pos + take])
            pos += take
            need -= take
            if not need:
                crlf = True
            continue
        if crlf:
            if n - pos < 2:
                break
            if raw[pos : pos + 2] != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")
            pos += 2
            crlf = False
            continue
        eol = raw.find(b"\r\n", pos)
        if eol < 0:
            if n - pos > 1024:
                raise ProtocolError("chunk size line too long")
            break
        line = raw[pos:eol]
        pos = eol + 2
        if trailers:
            if not line:  # end of trailers: the body is complete
                done = True
                break
            continue
        try:
            size = int(line.split(b";", 1)[0], 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size line {line[:40]!r}") from None
        if size == 0:
            trailers = True
        else:
            need = size
    state[0], state[1], state[2] = need, crlf, trailers
    payload = out[0] if len(out) == 1 else b"".join(out)
    return payload, pos, done


class BodyDecoder:
    """Incremental decoder of one response body.

    `payload(data)` returns the body bytes `data` carried (framing removed); `lines(data)` the
    complete lines they finished (without `\\n`/`\\r\\n`), or None. Use one or the other for a
    body. `done` once the framed end was seen (chunked terminator and trailers, Content-Length
    reached, or `eof()` of a read-until-close body); `rest` is what followed the body, `pending`
    an unterminated last line, `received` the bytes read after the head (framing included).
    """

    __slots__ = ("chunked", "remaining", "raw", "state", "pending", "done", "rest", "received")

    def __init__(self, initial: bytes = b"", chunked: bool = True, length: int | None = None) -> None:
        self.chunked = chunked
        self.remaining = None if chunked else length  # plain body: bytes still due (None: until close)
        self.raw = initial  # bytes not yet decoded (all of them, until the first call)
        self.state = [0, False, False]  # need, crlf, trailers (see dechunk)
        self.pending = b""
        self.done = False
        self.rest = b""
        self.received = len(initial)

    def payload(self, data: bytes) -> bytes:
        """The body bytes `data` (one recv(), or b"" for what came with the head) carried."""
        self.received += len(data)
        raw = self.raw + data if self.raw else data
        return self._decode(raw) if raw or self.remaining == 0 else b""

    def _decode(self, raw: bytes) -> bytes:
        """Remove the framing of `raw` (the undecoded bytes so far), keeping partial framing."""
        if self.chunked:
            payload, pos, done = dechunk(raw, self.state)
            self.raw = raw[pos:] if pos < len(raw) else b""
            if done:
                self.done = True
                self.rest, self.raw = self.raw, b""
            return payload
        self.raw = b""
        remaining = self.remaining
        if remaining is None:  # read-until-close body: everything is payload
            return raw
        if len(raw) >= remaining:
            self.rest = raw[remaining:]
            raw = raw[:remaining]
            self.remaining = 0
            self.done = True
        else:
            self.remaining = remaining - len(raw)
        return raw

    def lines(self, data: bytes) -> list[bytes] | None:
        """The lines `data` completed (see the class); the per-token hot path, hence inline."""
        self.received += len(data)
        raw = self.raw + data if self.raw else data
        n = len(raw)
        payload = None
        if self.chunked:
            state = self.state
            if n and not (state[0] or state[1] or state[2]):  # fast case: exactly one whole chunk
                eol = raw.find(b"\r\n")
                try:
                    size = int(raw[:eol], 16) if eol > 0 else -1
                except ValueError:
                    size = -1
                if size > 0 and eol + size + 4 == n and raw.endswith(b"\r\n"):
                    payload = raw[eol + 2 : n - 2]
                    self.raw = b""
        if payload is None:
            if not n and self.remaining != 0:
                return None
            payload = self._decode(raw)
        if not payload:
            return None
        pending = self.pending
        data = pending + payload if pending else payload
        lines = data.split(b"\n")
        self.pending = lines.pop()
        if len(self.pending) > MAX_LINE:
            raise ProtocolError(f"a line of more than {MAX_LINE >> 20} MiB without an end: "
                                "not an event stream")
        if not lines:
            return None
        if b"\r" in data:
            lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
        return lines

    def eof(self) -> None:
        """The peer closed the connection: the end of a read-until-close body, else Truncated."""
        if self.chunked:
            raise Truncated("connection closed before the end of the chunked body")
        if self.remaining is not None:
            raise Truncated(f"connection closed with {self.remaining} body bytes missing")
        self.done = True

    def tail(self) -> bytes | None:
        """The unterminated last line of a finished body (without a trailing `\\r`), if any."""
        return self.pending.rstrip(b"\r") if self.pending else None
