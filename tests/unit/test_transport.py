"""harness.client.transport against a raw-socket server that writes exactly the bytes a test scripts."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.http_script import (
    CHUNKED_HEAD,
    assert_unclumped,
    chunk,
    gaps_ms,
    small_tokens_every,
    stamps_1k_reader,
    stamps_line_reader,
)

from harness.client.transport import ConnectError, Connection, ReadTimeout

# The client's test modules: all of them run again under gevent (the last test here).
CLIENT_TESTS = ("test_transport.py", "test_stamps.py", "test_framing.py", "test_apis.py", "test_streams.py")


def test_content_length_and_keep_alive(serve):
    def handler(sock, n, head, body):
        payload = b'{"n":%d,"echo":%d}' % (n, len(body))
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(payload), payload))
        return True

    srv = serve(handler)
    with Connection(srv.url, timeout=5) as conn:
        for i in range(3):
            resp = conn.request("POST", "/x", b"hello")
            assert resp.status == 200
            assert resp.read_all() == b'{"n":%d,"echo":5}' % i
            assert resp.complete
    assert conn.connects == 1 and srv.connections == 1
    assert srv.requests[0][0].startswith(b"POST /x HTTP/1.1\r\nHost: 127.0.0.1:")


def test_a_finished_response_is_freed_without_the_garbage_collector(serve):
    """No reference cycle through a Response (a bound method kept in a slot made one per request:
    every response waited for a GC pass, and the passes stop every greenlet, issue #12)."""
    import gc

    from harness.client.response import Response

    def handler(sock, n, head, body):
        sock.sendall(CHUNKED_HEAD + chunk(b"data: a\n\n") + chunk(b"data: b\n\n") + b"0\r\n\r\n")
        return True

    srv = serve(handler)
    gc.collect()
    gc.disable()
    try:
        conn = Connection(srv.url, timeout=5)
        seen: list[bytes] = []
        for _ in range(3):
            resp = conn.request("POST", "/x", b"{}")
            seen.clear()
            resp.pump_lines(lambda t, lines: seen.extend(lines))
            assert resp.complete and b"data: b" in seen
        conn.close()
        del conn, resp
        assert not [o for o in gc.get_objects() if type(o) is Response]
    finally:
        gc.enable()


def test_read_timeout_is_the_request_deadline(serve):
    def handler(sock, n, head, body):
        sock.sendall(CHUNKED_HEAD)
        for _ in range(20):  # keep-alive comments must not extend the deadline
            sock.sendall(chunk(b":\n\n"))
            time.sleep(0.05)
        return False

    srv = serve(handler)
    with Connection(srv.url, timeout=0.3) as conn:
        t0 = time.perf_counter()
        resp = conn.request("POST", "/", b"")
        with pytest.raises(ReadTimeout):
            for _ in resp.iter_lines():
                pass
        assert time.perf_counter() - t0 < 0.9


def test_no_response_head_times_out(serve):
    srv = serve(lambda sock, n, head, body: time.sleep(1.0) or False)
    with Connection(srv.url, timeout=0.2) as conn, pytest.raises(ReadTimeout):
        conn.request("POST", "/", b"")


def test_connection_refused():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with Connection(f"http://127.0.0.1:{port}", timeout=2) as conn, pytest.raises(ConnectError):
        conn.request("POST", "/", b"")


def test_stale_keep_alive_is_retried_once(serve):
    def handler(sock, n, head, body):
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return False  # server closes the idle connection without saying so

    srv = serve(handler)
    with Connection(srv.url, timeout=5) as conn:
        assert conn.request("GET", "/").read_all() == b"ok"
        time.sleep(0.05)
        assert conn.request("GET", "/").read_all() == b"ok"
    assert srv.connections == 2


def test_connection_close_and_read_until_close(serve):
    def handler(sock, n, head, body):
        sock.sendall(b'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n{"error":"x"}')
        return False

    srv = serve(handler)
    with Connection(srv.url, timeout=5) as conn:
        resp = conn.request("GET", "/health")
        assert resp.status == 503 and not resp.keep_alive
        assert resp.read_all() == b'{"error":"x"}'
        assert conn.sock is None


def test_path_prefix_in_base_url(serve):
    srv = serve(lambda sock, n, head, body: sock.sendall(b"HTTP/1.1 204 No Content\r\n\r\n") or True)
    with Connection(srv.url + "/tgi/", timeout=5) as conn:
        assert conn.request("GET", "/info").read_all() == b""
    assert srv.requests[0][0].startswith(b"GET /tgi/info HTTP/1.1")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI for a test certificate")
def test_https(serve, tmp_path: Path):
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
         "-days", "1", "-subj", "/CN=127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    def handler(sock, n, head, body):
        sock.sendall(CHUNKED_HEAD + chunk(b"data:{}\n\n") + b"0\r\n\r\n")
        return True

    srv = serve(handler, tls=ctx)
    with Connection(srv.url, timeout=5, verify=False) as conn:
        for _ in range(2):
            assert [ln for ln, _ in conn.request("POST", "/", b"{}").iter_lines()] == [b"data:{}", b""]
    assert conn.connects == 1


# -- the ~1 KB clumping case ---------------------------------------------------------------------
@pytest.mark.parametrize("reader", ["line", "iter_content_1k"])
def test_small_tokens_20ms_apart_are_not_clumped(serve, reader):
    """Tokens of ~110 bytes every 20 ms: a 1 KB-buffering reader sees ~9 at once, ours sees each."""
    n, itl = 30, 0.02
    srv = serve(small_tokens_every(itl, n))
    if reader == "line":
        assert_unclumped(stamps_line_reader(srv.url), itl * 1000, n)
    else:
        stamps = stamps_1k_reader(srv.url)
        with pytest.raises(AssertionError):  # the same check fails for iter_content-style reading
            assert_unclumped(stamps, itl * 1000, n)
        assert sum(g < 2 for g in gaps_ms(stamps)) > n / 2  # most tokens arrive "at once"


def test_unread_body_does_not_leak_into_the_next_response(serve):
    def handler(sock, n, head, body):
        sock.sendall(CHUNKED_HEAD + chunk(b"data:{\"n\":%d}\n\n" % n) + b"0\r\n\r\n")
        return True

    srv = serve(handler)
    with Connection(srv.url, timeout=5) as conn:
        conn.request("POST", "/", b"")  # body never read
        lines = [ln for ln, _ in conn.request("POST", "/", b"").iter_lines() if ln]
    assert lines == [b'data:{"n":0}']  # a fresh connection, not the first body's bytes
    assert srv.connections == 2


def test_gevent_path_is_taken_under_gevent(serve):
    """Only meaningful in the gevent re-run below: Locust users read through the raw-socket path."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        pytest.skip("plain Python: the blocking path is tested above")
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    srv = serve(lambda sock, n, head, body: sock.sendall(ok) or True)
    with Connection(srv.url, timeout=5) as conn:
        resp = conn.request("GET", "/")
        assert conn.gevent is not None and resp.read_all() == b"ok"


def test_every_test_here_passes_under_gevent():
    """The reader has a second path under gevent (wait on the watcher, raw recv, one deadline timer
    per request, and pump_lines' read callback in the hub): run every client test module (test_apis
    drives run_request, hence pump_lines) again in a monkey-patched interpreter."""
    import os

    if "gevent.monkey" in sys.modules and sys.modules["gevent.monkey"].is_module_patched("socket"):
        pytest.skip("already the gevent run")
    paths = [str(Path(__file__).with_name(name)) for name in CLIENT_TESTS]
    code = ("from gevent import monkey; monkey.patch_all(); import sys, pytest; "
            f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', *{paths!r}]))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          cwd=str(Path(__file__).parent))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" in proc.stdout, proc.stdout[-500:]


