"""Token stamps: a line is stamped by the recv() that completed it, with the kernel's receive time
(SO_TIMESTAMPNS) where the connection has it, else the read time."""

from __future__ import annotations

import socket
import sys
import time

import pytest
from support.http_script import CHUNKED_HEAD, chunk

from harness.client.stamps import SO_TIMESTAMPNS, kernel_stamp
from harness.client.transport import Connection, stamp_source


def test_line_stamped_by_the_recv_that_completed_it(serve):
    def handler(sock, n, head, body):
        sock.sendall(CHUNKED_HEAD + chunk(b'data:{"a":1}\n\n'))
        time.sleep(0.1)
        sock.sendall(chunk(b'data:{"b"'))  # half a line ...
        time.sleep(0.1)
        sock.sendall(chunk(b":2}\n\n") + b"0\r\n\r\n")  # ... completed 100 ms later
        return True

    srv = serve(handler)
    with Connection(srv.url, timeout=5) as conn:
        resp = conn.request("POST", "/", b"")
        stamps = {line: t for line, t in resp.iter_lines() if line}
    ta, tb = stamps[b'data:{"a":1}'], stamps[b'data:{"b":2}']
    # Never assert speed: only that the stamp follows the completing recv, not the first half.
    assert tb - ta >= 0.19


def _late_reader(serve, kernel_stamps: bool) -> tuple[float, float, float, float]:
    """Lines a (30 ms after the head) and b (50 ms after a), read only 300 ms after the head:
    returns (the request's send stamp, stamp of a, stamp of b, the time the reading began)."""

    def handler(sock, n, head, body):
        sock.sendall(CHUNKED_HEAD)
        time.sleep(0.03)
        sock.sendall(chunk(b'data:{"a":1}\n\n'))
        time.sleep(0.05)
        sock.sendall(chunk(b'data:{"b":2}\n\n') + b"0\r\n\r\n")
        return True

    srv = serve(handler)
    with Connection(srv.url, timeout=5, kernel_stamps=kernel_stamps) as conn:
        resp = conn.request("POST", "/", b"")
        time.sleep(0.3)  # a busy client: both lines wait in the kernel
        t_read = time.perf_counter()
        stamps = {line: t for line, t in resp.iter_lines() if line}
        assert conn.kernel_stamps == (kernel_stamps and sys.platform.startswith("linux"))
    return resp.t_send, stamps[b'data:{"a":1}'], stamps[b'data:{"b":2}'], t_read


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_TIMESTAMPNS on TCP is Linux's")
def test_kernel_stamps_are_arrival_times_not_read_times(serve):
    """A late read is stamped when its last byte arrived (the kernel merges queued segments, so
    lines read together share the latest arrival), not when the busy reader got to it."""
    t_send, ta, tb, t_read = _late_reader(serve, kernel_stamps=True)
    assert t_send < ta <= tb < t_read - 0.15
    assert tb - t_send == pytest.approx(0.08, abs=0.05)


def test_recv_stamps_are_read_times(serve):
    t_send, ta, tb, t_read = _late_reader(serve, kernel_stamps=False)
    assert t_read <= ta <= tb


def test_stamp_conversion():
    if SO_TIMESTAMPNS != 35:
        pytest.skip("SO_TIMESTAMPNS is 35 on x86 and the generic Linux ABI only")

    def anc(ns: int) -> list:
        return [(socket.SOL_SOCKET, 35, (ns // 10**9).to_bytes(8, sys.byteorder)
                 + (ns % 10**9).to_bytes(8, sys.byteorder))]

    now = 1000.0
    assert kernel_stamp([], now, 0.0) == now  # no timestamp: the read time
    assert kernel_stamp(anc(time.time_ns() - 20_000_000), now, 0.0) == pytest.approx(now - 0.02, abs=0.005)
    late = anc(time.time_ns() - 20_000_000)
    assert kernel_stamp(late, now, now - 0.001) == now - 0.001  # never before the floor
    assert kernel_stamp(anc(time.time_ns() + 5 * 10**9), now, 0.0) == now  # from the future: not believed
    assert kernel_stamp(anc(time.time_ns() - 3600 * 10**9), now, 0.0) == now  # an hour old: not believed
    other = [(socket.SOL_SOCKET, 29, anc(time.time_ns() - 20_000_000)[0][2])]
    assert kernel_stamp(other, now, 0.0) == now  # not an SCM_TIMESTAMPNS message: ignored
    ns = time.time_ns() - 20_000_000  # a 32-bit timespec: two 4-byte longs
    sec, nsec = (ns // 10**9).to_bytes(4, sys.byteorder), (ns % 10**9).to_bytes(4, sys.byteorder)
    short = [(socket.SOL_SOCKET, 35, sec + nsec)]
    assert kernel_stamp(short, now, 0.0) == pytest.approx(now - 0.02, abs=0.005)


def test_stamp_source():
    expected = "kernel" if SO_TIMESTAMPNS is not None else "recv"
    assert stamp_source("kernel", "http://127.0.0.1:8080") == expected
    assert stamp_source("kernel", None) == expected  # the emulator or a container: plain http
    assert stamp_source("kernel", "HTTPS://endpoint") == "recv"  # TLS: stamped at the read
    assert stamp_source("recv", "http://x") == "recv"
