"""A raw-socket HTTP server that writes exactly the bytes a test scripts, and the stamp readers
the client tests compare (ours and a FastHttpUser-like 1 KB reader)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable

import pytest

from harness.client.transport import Connection

Handler = Callable[[socket.socket, int, bytes, bytes], bool]


class ScriptServer:
    """A tiny HTTP/1.1 server on port 0: `handler(sock, n, head, body)` writes the response bytes
    itself and returns whether to keep the connection open (n counts requests per connection)."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self._threads: list[threading.Thread] = []
        self._closed = False
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                sock, _ = self.lsock.accept()
            except OSError:
                return
            self.connections += 1
            t = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            t.start()

    def _serve(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if self.tls:
                sock = self.tls.wrap_socket(sock, server_side=True)
            buf = b""
            n = 0
            while True:
                while b"\r\n\r\n" not in buf:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v)
                while len(buf) < length:
                    buf += sock.recv(65536)
                body, buf = buf[:length], buf[length:]
                self.requests.append((head, body))
                if not self.handler(sock, n, head, body):
                    return
                n += 1
        except OSError:
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        self._closed = True
        self.lsock.close()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def send_slowly(sock: socket.socket, data: bytes, size: int, delay: float = 0.0) -> None:
    for i in range(0, len(data), size):
        sock.sendall(data[i : i + size])
        if delay:
            time.sleep(delay)



def native_event(i: int, n: int, input_length: int = 12) -> bytes:
    """Token event i of n as TGI's /generate_stream sends it (the last one with details)."""
    final = i == n
    details = (
        b'{"finish_reason":"length","generated_tokens":%d,"seed":null,"input_length":%d}' % (n, input_length)
        if final
        else b"null"
    )
    gen = b'"ab cd"' if final else b"null"
    return (
        b'data:{"index":%d,"token":{"id":42,"text":"ab","logprob":-0.5,"special":false},'
        b'"generated_text":%b,"details":%b}\n\n' % (i, gen, details)
    )


TOKEN_EVENT = (
    b'data:{"index":%d,"token":{"id":42,"text":"ab","logprob":-0.5,"special":false},"generated_text":null}\n\n'
)


def small_tokens_every(itl: float, n: int) -> Handler:
    def handler(sock, k, head, body):
        sock.sendall(CHUNKED_HEAD)
        for i in range(1, n + 1):
            time.sleep(itl)
            sock.sendall(chunk(TOKEN_EVENT % i))
        sock.sendall(b"0\r\n\r\n")
        return True

    return handler


def stamps_line_reader(url: str, body: bytes = b"{}", headers: dict[str, str] | None = None) -> list[float]:
    """Our reader: stamp of each data line relative to t_send."""
    with Connection(url, timeout=10) as conn:
        resp = conn.request("POST", "/generate_stream", body, headers)
        return [t - resp.t_send for line, t in resp.iter_lines() if line.startswith(b"data:")]


def stamps_1k_reader(url: str, body: bytes = b"{}", headers: dict[str, str] | None = None) -> list[float]:
    """What FastHttpUser's iter_content(1024)/iter_lines does: geventhttpclient's read(1024)."""
    from geventhttpclient import HTTPClient

    client = HTTPClient.from_url(url, network_timeout=10, connection_timeout=10)
    try:
        t_send = time.perf_counter()
        resp = client.post("/generate_stream", body=body, headers=headers or {})
        buf, stamps = b"", []
        while True:
            data = resp.read(1024)
            t = time.perf_counter()
            if not data:
                return stamps
            lines = (buf + data).split(b"\n")
            buf = lines.pop()
            stamps += [t - t_send for line in lines if line.startswith(b"data:")]
    finally:
        client.close()


def gaps_ms(stamps: list[float]) -> list[float]:
    return [(b - a) * 1000 for a, b in zip(stamps, stamps[1:], strict=False)]


def assert_unclumped(stamps: list[float], itl_ms: float, n: int) -> None:
    """Each token seen on its own: no back-to-back arrivals, the median gap is the server's."""
    gaps = sorted(gaps_ms(stamps))
    assert len(stamps) == n
    assert gaps[len(gaps) // 2] == pytest.approx(itl_ms, abs=5)
    assert sum(g < itl_ms / 4 for g in gaps) <= 2, gaps
