"""One HTTP/1.1 response: stamped reads of its socket, the head, and the body readers.

Every read is stamped (see `harness.client.stamps`) before anything is parsed, and the complete
lines it finished are handed out with that stamp. Two read paths:

- blocking (plain Python, tests): recv() with the time left until the request's deadline as the
  socket timeout, so neither a stalled server nor keep-alive comments can hold a request past it;
- gevent (plain http, under Locust): the reader skips gevent's socket wrapper. It waits on the
  socket's read watcher first and then recv()s the raw non-blocking socket, because at 20 ms
  between tokens a recv() tried first almost always fails with EAGAIN (a wasted syscall and
  exception per token), and it enforces the deadline with one loop timer per request instead of a
  gevent Timeout per recv(). `pump_lines` goes further and reads in the hub (`harness.client.pump`).

All body readers decode through one `harness.client.framing.BodyDecoder`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from harness.client.errors import ProtocolError, ReadTimeout, Stale, Truncated
from harness.client.framing import BodyDecoder
from harness.client.pump import Pump
from harness.client.stamps import ANC_SIZE, RECV_SIZE, kernel_stamp

if TYPE_CHECKING:
    from harness.client.transport import Connection

try:  # under gevent, greenlet.getcurrent names the greenlet to throw a deadline into
    from greenlet import getcurrent as _getcurrent
except ImportError:  # pragma: no cover - plain Python never takes the gevent path
    def _getcurrent() -> Any:
        return None

_MAX_HEAD = 65536
_perf = time.perf_counter


class Response:
    """Status and headers of one response, plus stamped readers for its body.

    Read the body once, with `pump_lines`/`iter_line_batches`/`iter_lines` (streams) or
    `read_all`. Afterwards `complete` says whether the body ended as framed (chunked terminator or
    Content-Length reached); only then is the connection reused.
    """

    __slots__ = (
        "_conn", "_sock", "t_send", "deadline", "method", "status", "reason", "headers",
        "chunked", "length", "keep_alive", "complete", "bytes_received", "t_first_byte",
        "t_last", "_buf", "_gevent", "_timer", "_waiting", "_expired", "_pump", "_kstamp",
        "reused", "connect_s",
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
        self.reused = False  # sent on a kept-alive connection (set by Connection.request)
        self.connect_s = 0.0  # seconds this request spent connecting (0 on a reused connection)
        self._buf = b""  # read past the head (until the body reader takes it), or past the body
        self._gevent = conn.gevent
        self._kstamp = conn.kernel_stamps
        self._timer: Any = None  # gevent: the request's deadline timer, armed at the first recv
        self._waiting: Any = None  # gevent: the greenlet parked on the read watcher
        self._expired = False
        self._pump: Pump | None = None  # gevent: the callback reader, while pump_lines runs

    # -- low level -------------------------------------------------------------------------
    def _read(self, sock: Any) -> bytes:
        """One read of `sock` (blocking or not); stamps `t_last` with the kernel's receive time
        of its last byte when the connection has kernel stamps, else with the read time."""
        if self._kstamp:
            data, anc, _, _ = sock.recvmsg(RECV_SIZE, ANC_SIZE)
            self.t_last = kernel_stamp(anc, _perf(), self.t_last)
        else:
            data = sock.recv(RECV_SIZE)
            self.t_last = _perf()
        return data

    def _recv(self) -> bytes:
        """One read, waiting as the socket needs (a method, not a bound method kept in a slot:
        that made every Response a reference cycle left to the garbage collector)."""
        return self._recv_blocking() if self._gevent is None else self._recv_gevent()

    def _recv_blocking(self) -> bytes:
        """One recv() with the remaining time as timeout; stamps `t_last`."""
        remaining = self.deadline - _perf()
        if remaining <= 0:
            raise ReadTimeout("request deadline passed")
        sock = self._sock
        sock.settimeout(remaining)
        try:
            return self._read(sock)
        except TimeoutError as exc:
            raise ReadTimeout("read timed out") from exc
        except OSError as exc:
            raise Truncated(f"connection error while reading: {exc}") from exc

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
                return self._read(raw)
            except BlockingIOError:
                continue  # spurious wake-up
            except OSError as exc:
                raise Truncated(f"connection error while reading: {exc}") from exc

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
        """Read and parse the status line and headers; what follows them stays in `_buf`.

        Raises Stale for EOF before any byte (a keep-alive connection the server had closed).
        """
        buf = b""
        while True:
            try:
                data = self._recv()
            except Truncated:
                if not buf:
                    raise Stale() from None
                raise
            if not data:
                if not buf:
                    raise Stale()
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

    # -- the body: one decoder, a generator loop and a hub pump around it --------------------
    def _decoder(self) -> BodyDecoder:
        """The body's decoder, holding what was read past the head."""
        dec = BodyDecoder(self._buf, self.chunked, self.length)
        self._buf = b""
        return dec

    def _finish_body(self, dec: BodyDecoder) -> None:
        """The body ended as framed: keep the connection only if nothing followed it."""
        self.bytes_received = dec.received
        self._buf = dec.rest
        self.complete = True
        self._disarm()
        if not self.keep_alive or self._buf:
            self._conn.close()

    def _abandon(self) -> None:
        """The body was not read to its end: the connection cannot be reused."""
        self._disarm()
        if not self.complete:
            self._conn.close()

    def _batches(self, lines: bool) -> Iterator[tuple[float, Any]]:
        """Per recv(): its stamp and `dec.lines(data)` (if `lines`) or `dec.payload(data)`."""
        dec = self._decoder()
        decode = dec.lines if lines else dec.payload
        recv = self._recv
        t = self.t_last
        try:
            out = decode(b"")
            while True:
                if out:
                    yield t, out
                if dec.done:
                    break
                data = recv()
                t = self.t_last
                if not data:
                    dec.eof()  # Truncated, unless the body runs until close
                    break
                out = decode(data)
            self._finish_body(dec)
        finally:
            self.bytes_received = dec.received
            self._abandon()
        if lines:
            tail = dec.tail()
            if tail is not None:
                yield self.t_last, [tail]

    def iter_payload(self) -> Iterator[tuple[float, bytes]]:
        """Decoded body pieces, each with the perf_counter stamp of the recv() that brought it.

        Raises Truncated when the connection closes before the framed end of the body.
        """
        return self._batches(lines=False)

    def iter_line_batches(self) -> Iterator[tuple[float, list[bytes]]]:
        """Complete lines (without the trailing `\\n` or `\\r\\n`) grouped by the recv() that
        completed them, with its perf_counter stamp: one list per recv, no per-line tuples.

        A final line without a newline is returned at the end of the body.
        """
        return self._batches(lines=True)

    def pump_lines(self, feed: Callable[[float, list[bytes]], object]) -> None:
        """Read the body to its end, calling `feed(stamp, lines)` per recv() like
        `iter_line_batches` yields them; raises what iterating would raise.

        Under gevent the body is read by a callback on the socket's read watcher, inside the hub
        (`harness.client.pump`): no greenlet switch or generator per token. Elsewhere it is the
        generator loop. `feed` must be quick and must not block.
        """
        if self._gevent is None:
            for t, lines in self._batches(lines=True):
                feed(t, lines)
            return
        Pump(self, feed).run()

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
