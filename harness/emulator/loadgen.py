"""A minimal closed-loop streaming client (asyncio Protocol, keep-alive), for the emulator's own
calibration test and capacity benchmark. Not the project's load tool: it only stamps send, first
`data:` event and end of each /generate_stream response, cheaply enough to drive 1000+ streams.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field


@dataclass
class Rec:
    user: int
    t_send: float
    t_first: float = 0.0
    t_end: float = 0.0
    events: int = 0
    error: str | None = None

    @property
    def ttft(self) -> float:
        return self.t_first - self.t_send

    @property
    def e2e(self) -> float:
        return self.t_end - self.t_send

    def tpot(self) -> float:
        """(E2E − TTFT) ÷ (N − 1): the seed analysis' honest per-token figure."""
        return (self.t_end - self.t_first) / max(1, self.events - 1)


class _Client(asyncio.Protocol):
    """One keep-alive connection; one streaming request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.rec: Rec | None = None
        self.done: asyncio.Future | None = None
        self.tail = b""
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        rec = self.rec
        if rec is None:
            return
        n = data.count(b"data:")
        if n:
            if not rec.events:
                rec.t_first = time.perf_counter()
            rec.events += n
            if b'"error"' in data:
                rec.error = data[data.find(b"data:") + 5 :].split(b"\n", 1)[0].decode(errors="replace")
        buf = self.tail + data[-8:]
        if buf.endswith(b"0\r\n\r\n"):
            rec.t_end = time.perf_counter()
            self.rec = None
            if self.done is not None and not self.done.done():
                self.done.set_result(rec)
        self.tail = buf[-8:]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            if self.rec is not None:
                self.rec.error = self.rec.error or "connection lost"
                self.rec.t_end = time.perf_counter()
            self.done.set_result(self.rec)
        if not self.lost.done():
            self.lost.set_result(None)

    def request(self, raw: bytes, rec: Rec) -> asyncio.Future:
        self.rec = rec
        self.tail = b""
        self.done = asyncio.get_running_loop().create_future()
        rec.t_send = time.perf_counter()
        self.transport.write(raw)
        return self.done


def stream_request(host: str, port: int, prompt: str, max_new_tokens: int, headers: dict | None = None,
                   path: str = "/generate_stream") -> bytes:
    body = json.dumps({"inputs": prompt, "parameters": {"max_new_tokens": max_new_tokens, "details": True}})
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return (f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n{extra}\r\n{body}").encode()


@dataclass
class ClosedLoop:
    """`users` connections each sending `raw` back to back until `requests_per_user` or `until`."""

    host: str
    port: int
    raw: bytes
    users: int
    requests_per_user: int | None = None
    until: float | None = None  # perf_counter deadline
    start_spacing_s: float = 0.0
    records: list[Rec] = field(default_factory=list)

    async def _user(self, u: int) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(u * self.start_spacing_s)
        _, proto = await loop.create_connection(_Client, self.host, self.port)
        sent = 0
        try:
            while True:
                if self.requests_per_user is not None and sent >= self.requests_per_user:
                    break
                if self.until is not None and time.perf_counter() >= self.until:
                    break
                rec = Rec(u, 0.0)
                sent += 1
                await proto.request(self.raw, rec)
                self.records.append(rec)
                if rec.error or proto.transport.is_closing():
                    break
        finally:
            proto.transport.close()

    async def run(self) -> list[Rec]:
        await asyncio.gather(*(self._user(u) for u in range(self.users)))
        return self.records
