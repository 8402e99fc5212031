"""Servers that misbehave below the level of events, met by the client alone (a scripted socket
server): a response far larger than any event stream, one byte per second, a stall longer than
the request's timeout, a stream cut mid-event, garbage instead of HTTP. Each is one failed record
with a type, within the request's timeout, and the next request on the same user works."""

from __future__ import annotations

import socket
import time

import pytest
from support.http_script import ScriptServer

from harness.client import apis
from harness.client.transport import Connection

pytestmark = pytest.mark.integration
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
FINAL = (b'data:{"index":1,"token":{"id":1,"text":" x","logprob":0,"special":false},"generated_text":" x",'
         b'"details":{"finish_reason":"length","generated_tokens":1,"input_length":3}}\n\n')


def _ok(sock: socket.socket) -> bool:
    sock.sendall(HEAD + FINAL)
    return False


def huge(sock: socket.socket, n: int, head: bytes, body: bytes) -> bool:
    if n == 0 and b"second" not in body:
        sock.sendall(HEAD)
        try:
            for _ in range(200):  # 12.5 MB on one line
                sock.sendall(b"x" * 65536)
        except OSError:
            pass
        return False
    return _ok(sock)


def trickle(sock: socket.socket, n: int, head: bytes, body: bytes) -> bool:
    if b"second" in body:
        return _ok(sock)
    sock.sendall(HEAD)
    try:
        for byte in b'data:{"token":{"id":1,"text":"x"}}\n\n' * 100:
            sock.sendall(bytes([byte]))
            time.sleep(0.25)
    except OSError:
        pass
    return False


def stall(sock: socket.socket, n: int, head: bytes, body: bytes) -> bool:
    if b"second" in body:
        return _ok(sock)
    sock.sendall(HEAD + FINAL[:40])
    time.sleep(6)
    return False


def cut(sock: socket.socket, n: int, head: bytes, body: bytes) -> bool:
    """A close-delimited body ending inside an event: the torn event is "malformed"."""
    if b"second" in body:
        return _ok(sock)
    sock.sendall(HEAD + FINAL[:40])
    return False  # closed mid-event


def garbage(sock: socket.socket, n: int, head: bytes, body: bytes) -> bool:
    if b"second" in body:
        return _ok(sock)
    sock.sendall(b"\x00\x01 this is not HTTP\r\n\r\n")
    return False


@pytest.mark.parametrize("handler,error_type", [
    (huge, "protocol"), (trickle, "timeout"), (stall, "timeout"), (cut, "malformed"), (garbage, "protocol"),
])
def test_each_fault_is_one_typed_record_within_the_timeout(handler, error_type: str) -> None:
    srv = ScriptServer(handler)
    conn = Connection(srv.url, timeout=2.0, kernel_stamps=False)
    api = apis.GenerateStream()
    records: list = []
    t0 = time.perf_counter()
    rec, _ = apis.run_request(conn, api, api.body("first", 5), records.append, "w")
    took = time.perf_counter() - t0
    assert records == [rec] and not rec.ok and rec.error_type == error_type, rec
    assert took < 2.0 + 1.0  # the request's timeout bounds it, whatever the server does
    again, _ = apis.run_request(conn, api, api.body("second", 5), records.append, "w")
    assert again.ok, again  # the user goes on: a fresh connection
    conn.close()
