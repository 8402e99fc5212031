"""A small HTTP/1.1 client whose line reader stamps each line with the recv() that completed it.

Why not geventhttpclient or requests: their `read(n)`/`iter_content` loop until n bytes are
buffered, so small SSE events arrive in ~1 KB clumps and TTFT/ITL are distorted. Here every
`recv()` is stamped immediately (with the kernel's receive time where it can: `stamps`), and the
complete lines it finished are handed out with that stamp, before anyone parses JSON. Stamps never
go backwards within a response and never precede the request's send.

Plain `socket`/`ssl`: under Locust, gevent has monkey-patched them, so this is cooperative there
and blocking (with timeouts) in plain Python tests. One `Connection` per user: keep-alive,
`Content-Length`, chunked and read-until-close bodies, http and https.

The parts: this module (the connection, sending, header helpers), `response` (stamped reads, the
head, the body readers), `framing` (de-chunking and line splitting), `pump` (the gevent read
callback that `Response.pump_lines` uses), `stamps` (SO_TIMESTAMPNS), `errors`.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from harness.client.errors import ConnectError, HttpError, ProtocolError, ReadTimeout, Stale, Truncated
from harness.client.pump import pace
from harness.client.response import Response
from harness.client.stamps import enable_kernel_stamps, stamp_source

__all__ = [
    "Connection", "ConnectError", "HttpError", "ProtocolError", "ReadTimeout", "Response", "Truncated",
    "set_header", "stamp_source",
]  # fmt: skip

_perf = time.perf_counter


def set_header(headers: dict[str, str], name: str, value: str) -> None:
    """Set a header, replacing any of the same name in another case (names are case-insensitive)."""
    for same in [k for k in headers if k.lower() == name.lower()]:
        del headers[same]
    headers[name] = value


class Connection:
    """One keep-alive HTTP/1.1 connection to `base_url` (reconnects lazily when needed).

    `timeout` bounds connecting and each request as a whole: the socket timeout before every
    recv() is the time left until the request's deadline, so neither a stalled server nor
    keep-alive comments trickling in can hold a request past it.
    """

    def __init__(
        self,
        base_url: str,
        timeout: float = 60.0,
        connect_timeout: float | None = None,
        verify: bool = True,
        kernel_stamps: bool = True,
    ) -> None:
        url = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        if url.scheme not in ("http", "https"):
            raise ValueError(f"unsupported scheme in {base_url!r}")
        self.tls = url.scheme == "https"
        self.host = url.hostname or "localhost"
        self.port = url.port or (443 if self.tls else 80)
        self.prefix = url.path.rstrip("/")
        self.timeout = timeout
        self.connect_timeout = connect_timeout if connect_timeout is not None else min(timeout, 30.0)
        default_port = self.port == (443 if self.tls else 80)
        host_header = self.host if default_port else f"{self.host}:{self.port}"
        if ":" in self.host and not default_port:  # IPv6 literal
            host_header = f"[{self.host}]:{self.port}"
        self.host_header = host_header
        self._ssl_ctx: ssl.SSLContext | None = None
        if self.tls:
            self._ssl_ctx = ssl.create_default_context()
            if not verify:
                self._ssl_ctx.check_hostname = False
                self._ssl_ctx.verify_mode = ssl.CERT_NONE
        self.sock: socket.socket | None = None
        self.gevent: tuple[Any, Any, Any] | None = None  # (raw socket, read watcher, hub) under gevent
        self.want_kernel_stamps = kernel_stamps and not self.tls
        self.kernel_stamps = False  # the current socket delivers kernel receive timestamps
        self.requests_on_socket = 0
        self.connects = 0
        self._last: Response | None = None  # an unfinished previous response poisons the socket

    # -- connection management -------------------------------------------------------------
    def connect(self) -> None:
        """Open a fresh socket (TCP_NODELAY, TLS if https, kernel stamps if wanted and possible)."""
        try:
            sock = _open(self.host, self.port, self.connect_timeout)
        except TimeoutError as exc:
            raise ReadTimeout(f"connect to {self.host}:{self.port} timed out") from exc
        except OSError as exc:
            raise ConnectError(f"connect to {self.host}:{self.port}: {exc}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl_ctx is not None:
                sock = self._ssl_ctx.wrap_socket(sock, server_hostname=self.host)
        except TimeoutError as exc:
            sock.close()
            raise ReadTimeout(f"TLS handshake with {self.host}:{self.port} timed out") from exc
        except OSError as exc:
            sock.close()
            raise ConnectError(f"TLS handshake with {self.host}:{self.port}: {exc}") from exc
        self.sock = sock
        self.kernel_stamps = self.want_kernel_stamps and enable_kernel_stamps(sock)
        self.gevent = None if self.tls else _gevent_parts(sock)
        self.requests_on_socket = 0
        self.connects += 1

    def close(self) -> None:
        """Close the socket (the next request reconnects) and disarm the last response's deadline."""
        sock, self.sock = self.sock, None
        self.gevent = None
        last, self._last = self._last, None  # (the response points back here: no cycle left behind)
        if last is not None:
            last._disarm()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests --------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Send one request and read the response head; the body is read through the Response.

        On a reused connection that turns out to be closed by the server (idle keep-alive
        timeout) before any response byte, the request is retried once on a fresh connection.
        `Response.t_send` is stamped just before the request bytes are written (after connect);
        `Response.reused` / `connect_s` say whether it went on a kept-alive connection and how long
        connecting took.
        """
        deadline_s = self.timeout if timeout is None else timeout
        head = self._head(method, path, body, headers)
        small = len(body) < 16384
        payload, rest = (head + body, b"") if small else (head, body)
        if self._last is not None:
            self._last._disarm()
            if not self._last.complete:
                self.close()
        connect_s = 0.0
        for attempt in (0, 1):
            reused = self.sock is not None
            if not reused:
                t_connect = _perf()
                self.connect()
                connect_s += _perf() - t_connect
                if self.gevent is not None:  # woken with every user that connected at once: take a slice
                    pace(self.gevent[2])
            sock = self.sock
            assert sock is not None
            try:
                t_send = self._send(sock, payload, rest, deadline_s)
                resp = Response(self, sock, t_send, t_send + deadline_s, method)
                resp.reused, resp.connect_s = reused, connect_s
                self._last = resp  # close() disarms its deadline timer
                resp._read_head()
            except Stale:
                self.close()
                if reused and attempt == 0:
                    continue
                raise Truncated("connection closed before the response head") from None
            except TimeoutError as exc:
                self.close()
                raise ReadTimeout(f"no response head within {deadline_s:g} s") from exc
            except HttpError:
                self.close()
                raise
            except OSError as exc:
                self.close()
                if reused and attempt == 0:
                    continue
                raise ConnectError(f"{type(exc).__name__}: {exc}") from exc
            self.requests_on_socket += 1
            self._last = resp
            return resp
        raise AssertionError("unreachable")

    def _send(self, sock: Any, payload: bytes, rest: bytes, deadline_s: float) -> float:
        """Write the request; returns `t_send`, the perf_counter time just before its first byte
        was handed to the kernel.

        Nothing runs between the stamp and the send() that could pause (issue #12): the payload is
        built and the timeout set before the stamp, and under gevent the raw non-blocking socket
        is written directly (gevent's sendall allocates on its way to send(), and an allocation
        can start a garbage collection). Whatever the kernel did not take at once (a full send
        buffer, a large body: `rest`) goes through sendall as before.
        """
        sock.settimeout(deadline_s)
        parts = self.gevent
        sent = 0
        if parts is not None:
            raw = parts[0]
            t_send = _perf()
            try:
                sent = raw.send(payload)
            except BlockingIOError:
                sent = 0
        else:
            t_send = _perf()
        if sent < len(payload):
            sock.sendall(payload[sent:] if sent else payload)
        if rest:
            sock.sendall(rest)
        return t_send

    def _head(self, method: str, path: str, body: bytes, headers: Mapping[str, str] | None) -> bytes:
        lines = [f"{method} {self.prefix}{path} HTTP/1.1"]
        if not headers or not any(k.lower() == "host" for k in headers):  # a given Host replaces ours
            lines.append(f"Host: {self.host_header}")
        lines.append(f"Content-Length: {len(body)}")
        if headers:
            lines.extend(f"{k}: {v}" for k, v in headers.items())
        lines.append("\r\n")
        return "\r\n".join(lines).encode("latin-1")


def _open(host: str, port: int, timeout: float) -> socket.socket:
    """A connected TCP socket. An IP literal is connected to directly: create_connection() asks
    getaddrinfo() first, which gevent hands to its thread pool — hundreds of users connecting at
    once then took the GIL in turns with the loop (issue #12). Names are resolved as usual."""
    literal = host.strip("[]")
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(literal).version == 6 else socket.AF_INET
    except ValueError:
        return socket.create_connection((host, port), timeout=timeout)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((literal, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _gevent_parts(sock: Any) -> tuple[Any, Any, Any] | None:
    """(raw non-blocking socket, read watcher, hub) of a gevent socket; None for anything else
    (blocking stdlib sockets, TLS sockets: those go through their own recv())."""
    if isinstance(sock, ssl.SSLSocket) or not type(sock).__module__.startswith("gevent"):
        return None
    raw = getattr(sock, "_sock", None)
    event = getattr(sock, "_read_event", None)
    hub = getattr(sock, "hub", None)
    if raw is None or event is None or hub is None:
        return None
    return raw, event, hub
