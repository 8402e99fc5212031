"""HTTP/1.1 on a raw asyncio.Protocol (uvloop when available): one `Conn` per client connection.

Only what TGI's clients send is parsed: a request line, headers, a Content-Length body (chunked
request bodies are refused with 411, as the emulator never needs them). Keep-alive, one request
at a time; pipelined requests wait in the buffer until the response is done. What a request
means is routes.py's business; the stream's bytes are stream.py's.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any

from harness.emulator import wire
from harness.emulator.routes import route

if TYPE_CHECKING:
    from harness.emulator.app import App
    from harness.emulator.stream import Gen

MAX_HEADER = 65536
MAX_BODY = 64 * 1024 * 1024


class Conn(asyncio.Protocol):
    """One client connection: HTTP/1.1 keep-alive, one request at a time (pipelined ones wait)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.keep_alive = True
        self.gen: Gen | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self.app.conns.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.app.conns.discard(self)
        if self.gen is not None:
            self.gen.close()
            self.gen = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self.process()

    def response_done(self) -> None:
        """The response is complete: close, or go on with a pipelined request already buffered."""
        self.busy = False
        self.gen = None
        if self.closed:
            return
        if not self.keep_alive:
            self.transport.close()
            return
        if self.buf:
            self.app.loop.call_soon(self.process)

    def send(self, data: bytes) -> None:
        """Write a whole response at once and finish it."""
        self.busy = True
        self.transport.write(data)
        self.response_done()

    def send_json(self, status: int, obj: Any, extra: list[tuple[str, str]] | None = None) -> None:
        self.send(wire.json_response(status, wire.dumps(obj), extra, keep_alive=self.keep_alive))

    def process(self) -> None:
        """Parse one complete request from the buffer (if there is one) and route it."""
        if self.busy or self.closed:
            return
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEADER:
                self.keep_alive = False
                self.send(wire.head(431, [], length=0, keep_alive=False))
            return
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            self.keep_alive = False
            self.send(wire.head(400, [], length=0, keep_alive=False))
            return
        headers: dict[str, str] = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        conn_hdr = headers.get("connection", "").lower()
        self.keep_alive = ("close" not in conn_hdr) if version == "HTTP/1.1" else ("keep-alive" in conn_hdr)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.keep_alive = False
            self.send(wire.head(411, [], length=0, keep_alive=False))
            return
        try:
            length = int(headers.get("content-length", "0") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.keep_alive = False
            self.send(wire.head(413 if length > 0 else 400, [], length=0, keep_alive=False))
            return
        if len(buf) < end + 4 + length:
            return
        body = bytes(buf[end + 4 : end + 4 + length])
        del buf[: end + 4 + length]
        self.busy = True
        path = target.split("?", 1)[0]
        try:
            route(self, method, path, headers, body)
        except Exception as exc:  # noqa: BLE001 - never kill the server on one bad request
            if self.gen is None and self.busy:
                self.send_json(500, {"error": f"emulator error: {exc!r}", "error_type": "emulator"})
            else:
                raise
