"""A small HTTP/1.1 client whose line reader stamps each line with the recv() that completed it.

Why not geventhttpclient or requests: their `read(n)`/`iter_content` loop until n bytes are
buffered, so small SSE events arrive in ~1 KB clumps and TTFT/ITL are distorted. Here every
`recv()` is stamped with `time.perf_counter()` immediately, and the complete lines it finished
are handed out with that stamp, before anyone parses JSON.

Stamps (`--stamps kernel`, the default): on Linux a plain-http socket asks the kernel for receive
timestamps (SO_TIMESTAMPNS) and reads with recvmsg(); a read's stamp is then the moment the kernel
received its last byte, converted to the perf_counter clock by the age it had when we read it. A
client that is momentarily busy (another greenlet, a GC pause, a burst of events) stamps when the
data arrived, not when it got round to it. Without the timestamp (TLS, other systems, `--stamps
recv`) a read is stamped with `perf_counter()` right after recv(). Stamps never go backwards
within a response and never precede the request's send.

Plain `socket`/`ssl`: under Locust, gevent has monkey-patched them, so this is cooperative there
and blocking (with timeouts) in plain Python tests. One `Connection` per user: keep-alive,
`Content-Length`, chunked and read-until-close bodies, http and https.

Under gevent (plain http) the reader skips gevent's socket wrapper: it waits on the socket's read
watcher first and then recv()s the raw non-blocking socket, because at 20 ms between tokens a
recv() tried first almost always fails with EAGAIN (a wasted syscall and exception per token), and
it enforces the request deadline with one loop timer per request instead of a gevent Timeout per
recv(). Chunked SSE bodies are decoded and split into lines in one generator (no nested ones).
"""

from __future__ import annotations

import platform
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

_RECV = 65536
_MAX_HEAD = 65536
_perf = time.perf_counter
_time_ns = time.time_ns
# 35 on x86 and the asm-generic architectures (arm, arm64, riscv, ...); not on sparc, parisc, alpha, mips
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", None)
if _SO_TIMESTAMPNS is None and sys.platform.startswith("linux") and platform.machine() in (
    "x86_64", "i386", "i686", "aarch64", "arm64", "armv7l", "armv6l", "riscv64", "ppc64le", "s390x",
):  # fmt: skip
    _SO_TIMESTAMPNS = 35
_ANC = 64  # room for one SCM_TIMESTAMPNS control message
_SOL_SOCKET = socket.SOL_SOCKET
_ORDER = sys.byteorder
_MAX_AGE_S = 60.0  # an older kernel stamp is not believed (clock stepped): use the read time


def _stamp(anc: list, now: float, floor: float) -> float:
    """The kernel receive time of a recvmsg() as a perf_counter value (else `now`), ≥ `floor`."""
    if anc:
        level, kind, cd = anc[0]
        if level == _SOL_SOCKET and kind == _SO_TIMESTAMPNS:
            half = len(cd) // 2  # struct timespec: two longs (8 bytes each on 64-bit, 4 on 32-bit)
            if half in (4, 8):
                ns = int.from_bytes(cd[:half], _ORDER, signed=True) * 1_000_000_000 + int.from_bytes(
                    cd[half:], _ORDER, signed=True)
                age = (_time_ns() - ns) * 1e-9
                if 0.0 <= age < _MAX_AGE_S:
                    now -= age
    return now if now > floor else floor


def set_header(headers: dict[str, str], name: str, value: str) -> None:
    """Set a header, replacing any of the same name in another case (names are case-insensitive)."""
    for same in [k for k in headers if k.lower() == name.lower()]:
        del headers[same]
    headers[name] = value


def stamp_source(option: str, url: str | None) -> str:
    """Which stamps a connection to `url` gets under `--stamps option`: kernel receive timestamps
    need Linux (a known SO_TIMESTAMPNS) and plain http; everything else is stamped at the read."""
    if option != "kernel" or _SO_TIMESTAMPNS is None or (url or "").lower().startswith("https:"):
        return "recv"
    return "kernel"


def enable_kernel_stamps(sock: socket.socket) -> bool:
    """Ask for SO_TIMESTAMPNS receive timestamps on a plain TCP socket (Linux); False if refused."""
    if _SO_TIMESTAMPNS is None or not hasattr(sock, "recvmsg"):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True

try:  # under gevent, greenlet.getcurrent names the greenlet to throw a deadline into
    from greenlet import getcurrent as _getcurrent
except ImportError:  # pragma: no cover - plain Python never takes the gevent path
    def _getcurrent() -> Any:
        return None


class HttpError(Exception):
    """Base of the transport errors; `kind` is the record's error_type."""

    kind = "connection"


class ConnectError(HttpError):
    kind = "connection"


class ReadTimeout(HttpError):
    kind = "timeout"


class Truncated(HttpError):
    """The peer closed the connection before the body (or the head) was complete."""

    kind = "truncated"


class ProtocolError(HttpError):
    kind = "protocol"


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
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
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
        sock, self.sock = self.sock, None
        self.gevent = None
        last = self._last
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
        `Response.t_send` is stamped just before the request bytes are written (after connect).
        """
        deadline_s = self.timeout if timeout is None else timeout
        head = self._head(method, path, body, headers)
        if self._last is not None:
            self._last._disarm()
            if not self._last.complete:
                self.close()
        for attempt in (0, 1):
            reused = self.sock is not None
            if not reused:
                self.connect()
            sock = self.sock
            assert sock is not None
            t_send = _perf()
            deadline = t_send + deadline_s
            try:
                sock.settimeout(deadline_s)
                if len(body) < 16384:
                    sock.sendall(head + body)
                else:
                    sock.sendall(head)
                    sock.sendall(body)
                resp = Response(self, sock, t_send, deadline, method)
                self._last = resp  # close() disarms its deadline timer
                resp._read_head()
            except _Stale:
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

    def _head(self, method: str, path: str, body: bytes, headers: Mapping[str, str] | None) -> bytes:
        lines = [f"{method} {self.prefix}{path} HTTP/1.1"]
        if not headers or not any(k.lower() == "host" for k in headers):  # a given Host replaces ours
            lines.append(f"Host: {self.host_header}")
        lines.append(f"Content-Length: {len(body)}")
        if headers:
            lines.extend(f"{k}: {v}" for k, v in headers.items())
        lines.append("\r\n")
        return "\r\n".join(lines).encode("latin-1")


class _Stale(Exception):
    """EOF before any response byte: a keep-alive connection the server had already closed."""



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


class Response:
    """Status and headers of one response, plus stamped readers for its body.

    Read the body once, with `iter_line_batches`/`iter_lines` (streams) or `read_all`.
    Afterwards `complete` says whether the body ended as framed (chunked terminator or
    Content-Length reached); only then is the connection reused.
    """

    __slots__ = (
        "_conn", "_sock", "t_send", "deadline", "method", "status", "reason", "headers",
        "chunked", "length", "keep_alive", "complete", "bytes_received", "t_first_byte",
        "t_last", "_buf", "_eof", "_recv", "_gevent", "_timer", "_waiting", "_expired", "_pump", "_kstamp",
    )  # fmt: skip

    def __init__(self, conn: Connection, sock: socket.socket, t_send: float, deadline: float, method: str):
        self._conn = conn
        self._sock = sock
        self.t_send = t_send
        self.deadline = deadline
        self.method = method
        self.status = 0
        self.reason = ""
        self.headers: dict[str, str] = {}
        self.chunked = False
        self.length: int | None = None
        self.keep_alive = True
        self.complete = False
        self.bytes_received = 0  # body bytes on the wire (chunk framing included)
        self.t_first_byte: float | None = None
        self.t_last = t_send  # stamp of the latest recv()
        self._buf = b""
        self._eof = False
        self._gevent = conn.gevent
        self._kstamp = conn.kernel_stamps
        self._recv = self._recv_blocking if self._gevent is None else self._recv_gevent
        self._timer: Any = None  # gevent: the request's deadline timer, armed at the first recv
        self._waiting: Any = None  # gevent: the greenlet parked on the read watcher
        self._expired = False
        self._pump: _Pump | None = None  # gevent: the callback reader, while pump_lines runs

    # -- low level -------------------------------------------------------------------------
    def _read(self, sock: Any) -> bytes:
        """One read of `sock` (blocking or not); stamps `t_last` with the kernel's receive time
        of its last byte when the connection has kernel stamps, else with the read time."""
        if self._kstamp:
            data, anc, _, _ = sock.recvmsg(_RECV, _ANC)
            self.t_last = _stamp(anc, _perf(), self.t_last)
        else:
            data = sock.recv(_RECV)
            self.t_last = _perf()
        return data

    def _recv_blocking(self) -> bytes:
        """One recv() with the remaining time as timeout; stamps `t_last`."""
        remaining = self.deadline - _perf()
        if remaining <= 0:
            raise ReadTimeout("request deadline passed")
        sock = self._sock
        sock.settimeout(remaining)
        try:
            data = self._read(sock)
        except TimeoutError as exc:
            raise ReadTimeout("read timed out") from exc
        except OSError as exc:
            raise Truncated(f"connection error while reading: {exc}") from exc
        if not data:
            self._eof = True
        return data

    def _recv_gevent(self) -> bytes:
        """Park on the read watcher, then one recv() of the raw socket; stamps `t_last`.

        Waiting first is right for a token stream (the data is almost never there yet); if it
        is, the level-triggered watcher fires on the next loop iteration. The deadline timer
        throws ReadTimeout only into a greenlet parked here, never into the parsing code.
        """
        raw, event, hub = self._gevent
        if self._timer is None:
            remaining = self.deadline - _perf()
            if remaining <= 0:
                raise ReadTimeout("request deadline passed")
            self._timer = hub.loop.timer(remaining, ref=False)
            self._timer.start(self._expire)
        while True:
            if self._expired:
                raise ReadTimeout("read timed out")
            self._waiting = _getcurrent()
            try:
                hub.wait(event)
            except ReadTimeout:
                raise
            except OSError as exc:  # the socket was closed under us (cancel_wait)
                raise Truncated(f"connection error while reading: {exc}") from exc
            finally:
                self._waiting = None
            try:
                data = self._read(raw)
            except BlockingIOError:
                continue  # spurious wake-up
            except OSError as exc:
                raise Truncated(f"connection error while reading: {exc}") from exc
            if not data:
                self._eof = True
            return data

    def _expire(self) -> None:
        """Deadline timer callback (in the hub)."""
        self._expired = True
        if self._pump is not None:
            self._pump.on_deadline()
            return
        glet, self._waiting = self._waiting, None
        if glet is not None:
            glet.throw(ReadTimeout("read timed out"))

    def _disarm(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.stop()
            timer.close()

    def _read_head(self) -> None:
        buf = b""
        while True:
            try:
                data = self._recv()
            except Truncated:
                if not buf:
                    raise _Stale() from None
                raise
            if not data:
                if not buf:
                    raise _Stale()
                raise Truncated("connection closed in the response head")
            if self.t_first_byte is None:
                self.t_first_byte = self.t_last
            buf += data
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    raise ProtocolError("response head too large")
                continue
            head, buf = buf[:end], buf[end + 4 :]
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                raise ProtocolError(f"bad status line {lines[0][:80]!r}")
            status = int(parts[1])
            if 100 <= status < 200 and status != 101:
                continue  # 100 Continue and friends: the real head follows
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                key = name.strip().lower()
                value = value.strip()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
            self.status = status
            self.reason = parts[2] if len(parts) > 2 else ""
            self.headers = headers
            te = headers.get("transfer-encoding", "").lower()
            self.chunked = "chunked" in te
            if not self.chunked and "content-length" in headers:
                self.length = int(headers["content-length"])
            conn_hdr = headers.get("connection", "").lower()
            http10 = parts[0] == "HTTP/1.0"
            self.keep_alive = ("close" not in conn_hdr) and (not http10 or "keep-alive" in conn_hdr)
            if not self.chunked and self.length is None:
                self.keep_alive = False  # body runs until close
            if self.method == "HEAD" or status in (204, 304):
                self.length = 0
                self.chunked = False
            self._buf = buf
            return

    def _finish(self) -> None:
        self.complete = True
        self._disarm()
        if not self.keep_alive or self._buf:
            self._conn.close()

    def _abandon(self) -> None:
        """The body was not read to its end: the connection cannot be reused."""
        self._disarm()
        if not self.complete:
            self._conn.close()

    # -- body readers ----------------------------------------------------------------------
    def iter_payload(self) -> Iterator[tuple[float, bytes]]:
        """Decoded body pieces, each with the perf_counter stamp of the recv() that brought it.

        Raises Truncated when the connection closes before the framed end of the body.
        """
        try:
            if self.chunked:
                yield from self._iter_chunked()
            else:
                yield from self._iter_plain()
        finally:
            self._abandon()

    def _iter_plain(self) -> Iterator[tuple[float, bytes]]:
        remaining = self.length
        data, self._buf = self._buf, b""
        t = self.t_last
        while True:
            if data:
                self.bytes_received += len(data)
                if remaining is not None:
                    if len(data) >= remaining:
                        self._buf = data[remaining:]
                        data = data[:remaining]
                        remaining = 0
                    else:
                        remaining -= len(data)
                yield t, data
            if remaining == 0:
                self._finish()
                return
            data = self._recv()
            t = self.t_last
            if not data:
                if remaining is None:  # read-until-close body
                    self.complete = True
                    self._conn.close()
                    return
                raise Truncated(f"connection closed with {remaining} body bytes missing")

    def _iter_chunked(self) -> Iterator[tuple[float, bytes]]:
        """Decoded chunk payload per recv(); the framing state machine is `_dechunk`."""
        raw, self._buf = self._buf, b""
        self.bytes_received += len(raw)
        t = self.t_last
        state = [0, False, False]  # need, crlf, trailers
        while True:
            out, pos, done = _dechunk(raw, state)
            if out:
                yield t, out
            if done:
                self._buf = raw[pos:]
                self._finish()
                return
            raw = raw[pos:]
            data = self._recv()
            t = self.t_last
            if not data:
                raise Truncated("connection closed before the end of the chunked body")
            self.bytes_received += len(data)
            raw = raw + data if raw else data

    def iter_line_batches(self) -> Iterator[tuple[float, list[bytes]]]:
        """Complete lines (without the trailing `\\n` or `\\r\\n`) grouped by the recv() that
        completed them, with its perf_counter stamp: one list per recv, no per-line tuples.

        A final line without a newline is returned at the end of the body.
        """
        if self.chunked:
            return self._chunked_line_batches()
        return self._plain_line_batches()

    def _plain_line_batches(self) -> Iterator[tuple[float, list[bytes]]]:
        pending = b""
        for t, data in self.iter_payload():
            if pending:
                data = pending + data
            lines = data.split(b"\n")
            pending = lines.pop()
            if lines:
                if b"\r" in data:
                    lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
                yield t, lines
        if pending:
            yield self.t_last, [pending.rstrip(b"\r")]

    def _chunked_line_batches(self) -> Iterator[tuple[float, list[bytes]]]:
        """Dechunk and split lines in one generator (no nested ones)."""
        dec = _ChunkedLines(self._buf)
        self._buf = b""
        t = self.t_last
        recv = self._recv
        try:
            lines = dec.push(b"")
            while True:
                if lines:
                    yield t, lines
                if dec.done:
                    self._buf = dec.rest
                    self.bytes_received = dec.received
                    self._finish()
                    break
                data = recv()
                t = self.t_last
                if not data:
                    raise Truncated("connection closed before the end of the chunked body")
                lines = dec.push(data)
        finally:
            self.bytes_received = dec.received
            self._abandon()
        if dec.pending:
            yield self.t_last, [dec.pending.rstrip(b"\r")]

    def pump_lines(self, feed: Callable[[float, list[bytes]], object]) -> None:
        """Read the body to its end, calling `feed(stamp, lines)` per recv() like
        `iter_line_batches` yields them; raises what iterating would raise.

        Under gevent a chunked body is read by a callback on the socket's read watcher, inside
        the hub: recv(), stamp, dechunk, split and `feed` run there, with no greenlet switch or
        generator per token (the caller's greenlet sleeps until the body ends). Elsewhere it is
        the generator loop. `feed` must be quick and must not block.
        """
        if self._gevent is None or not self.chunked:
            for t, lines in self.iter_line_batches():
                feed(t, lines)
            return
        _Pump(self, feed).run()

    def iter_lines(self) -> Iterator[tuple[bytes, float]]:
        """Convenience form of `iter_line_batches`: one (line, stamp) per line."""
        for t, lines in self.iter_line_batches():
            for line in lines:
                yield line, t

    def read_all(self, limit: int = 1 << 20) -> bytes:
        """The whole body (for error responses and non-streaming calls), up to `limit` bytes."""
        parts: list[bytes] = []
        size = 0
        for _, data in self.iter_payload():
            parts.append(data)
            size += len(data)
            if size > limit:
                break
        return b"".join(parts)[:limit]


def _dechunk(raw: bytes, state: list) -> tuple[bytes, int, bool]:
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


class _ChunkedLines:
    """Incremental decoder of a chunked body into lines: `push(data)` returns the lines the data
    completed (without `\n`/`\r\n`). `done` once the terminating chunk and trailers were seen;
    `rest` is what followed the body, `pending` an unterminated last line, `received` the wire bytes.

    Fast case: the data is exactly one whole chunk (TGI writes one SSE event per chunk) and no
    partial state is pending: one find, one int(), one slice.
    """

    __slots__ = ("raw", "state", "pending", "done", "rest", "received")

    def __init__(self, initial: bytes = b"") -> None:
        self.raw = initial
        self.state = [0, False, False]  # need, crlf, trailers (see _dechunk)
        self.pending = b""
        self.done = False
        self.rest = b""
        self.received = len(initial)

    def push(self, data: bytes) -> list[bytes] | None:
        self.received += len(data)
        raw = self.raw + data if self.raw else data
        n = len(raw)
        state = self.state
        payload = None
        if n and not (state[0] or state[1] or state[2]):
            eol = raw.find(b"\r\n")
            try:
                size = int(raw[:eol], 16) if eol > 0 else -1
            except ValueError:
                size = -1
            if size > 0 and eol + size + 4 == n and raw.endswith(b"\r\n"):
                payload = raw[eol + 2 : n - 2]
                self.raw = b""
        if payload is None:
            payload, pos, done = _dechunk(raw, state)
            self.raw = raw[pos:] if pos < n else b""
            if done:
                self.done = True
                self.rest, self.raw = self.raw, b""
        if not payload:
            return None
        pending = self.pending
        data = pending + payload if pending else payload
        lines = data.split(b"\n")
        self.pending = lines.pop()
        if not lines:
            return None
        if b"\r" in data:
            lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
        return lines


class _Pump:
    """`Response.pump_lines` under gevent: a read-watcher callback that runs in the hub.

    The waiting greenlet is woken once, at the end of the body, by the deadline, or by an error
    (raised there). `throw` is what gevent calls when another greenlet closes the socket.
    """

    __slots__ = ("resp", "feed", "dec", "waiter", "error", "finished", "raw", "event")

    def __init__(self, resp: Response, feed: Callable[[float, list[bytes]], object]) -> None:
        self.resp = resp
        self.feed = feed
        self.dec = _ChunkedLines(resp._buf)
        resp._buf = b""
        self.waiter: Any = None
        self.error: BaseException | None = None
        self.finished = False
        self.raw, self.event, _ = resp._gevent

    def run(self) -> None:
        from gevent.hub import Waiter

        resp, dec = self.resp, self.dec
        raw, event, hub = resp._gevent
        try:
            lines = dec.push(b"")
            if lines:
                self.feed(resp.t_last, lines)
            if not dec.done:
                remaining = resp.deadline - _perf()
                if remaining <= 0 or resp._expired:
                    raise ReadTimeout("request deadline passed")
                if resp._timer is None:  # normally armed by the head's recv()
                    resp._timer = hub.loop.timer(remaining, ref=False)
                    resp._timer.start(resp._expire)
                self.waiter = Waiter(hub)
                resp._pump = self
                event.start(self.on_readable)
                try:
                    self.waiter.get()
                finally:
                    event.stop()
                    resp._pump = None
                if self.error is not None:
                    raise self.error
            resp.bytes_received = dec.received
            resp._buf = dec.rest
            resp._finish()
        finally:
            resp.bytes_received = dec.received
            resp._abandon()
        if dec.pending:
            self.feed(resp.t_last, [dec.pending.rstrip(b"\r")])

    def on_readable(self) -> None:
        if self.finished:
            return
        resp = self.resp
        try:
            data = resp._read(self.raw)
        except BlockingIOError:
            return
        except OSError as exc:
            self._end(Truncated(f"connection error while reading: {exc}"))
            return
        t = resp.t_last
        if not data:
            resp._eof = True
            self._end(Truncated("connection closed before the end of the chunked body"))
            return
        try:
            lines = self.dec.push(data)
            if lines:
                self.feed(t, lines)
        except BaseException as exc:  # noqa: BLE001 - raised in the reading greenlet instead
            self._end(exc)
            return
        if self.dec.done:
            self._end(None)

    def on_deadline(self) -> None:
        self._end(ReadTimeout("read timed out"))

    def throw(self, exc: BaseException, *_args: object) -> None:
        """gevent's cancel_wait: the socket was closed by another greenlet."""
        self._end(Truncated(f"connection closed while reading: {exc}"))

    def _end(self, error: BaseException | None) -> None:
        if self.finished:
            return
        self.finished = True
        self.error = error
        self.event.stop()
        if self.waiter is not None:
            self.waiter.switch(None)
