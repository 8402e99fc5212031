"""Body framing and line splitting: the BodyDecoder alone, and the three readers built on it
(iter_payload, iter_line_batches, pump_lines) against a raw-socket server, for every framing."""

from __future__ import annotations

import pytest
from support.http_script import CHUNKED_HEAD, chunk, send_slowly

from harness.client.errors import ProtocolError
from harness.client.framing import BodyDecoder
from harness.client.transport import Connection, Truncated

EVENTS = [b'data:{"i":%d}\n\n' % i for i in range(20)] + [b":\n\n", b"data: [DONE]\r\n\r\n"]
WIRE = b"".join(chunk(e) for e in EVENTS) + b"0\r\n\r\n"
LINES = [b'data:{"i":%d}' % i for i in range(20)] + [b":", b"data: [DONE]"]


def read_lines(resp, reader: str, got: list[bytes]) -> None:
    """Read a response's body with `reader` (pump_lines or iter_line_batches) into `got`."""
    if reader == "pump_lines":
        resp.pump_lines(lambda t, lines: got.extend(lines))
    else:
        for _, lines in resp.iter_line_batches():
            got.extend(lines)


def decode_lines(dec: BodyDecoder, pieces: list[bytes]) -> list[bytes]:
    out = list(dec.lines(b"") or [])
    for piece in pieces:
        out += dec.lines(piece) or []
    return out


# -- the decoder alone ---------------------------------------------------------------------------
@pytest.mark.parametrize("size", [1, 2, 3, 5, 64, len(WIRE)])
def test_decoder_chunked_any_split(size):
    pieces = [WIRE[i : i + size] for i in range(0, len(WIRE), size)]
    dec = BodyDecoder(b"")
    assert [ln for ln in decode_lines(dec, pieces) if ln] == LINES
    assert dec.done and dec.rest == b"" and dec.received == len(WIRE)
    payload = BodyDecoder(pieces[0])
    assert b"".join([payload.payload(b"")] + [payload.payload(p) for p in pieces[1:]]) == b"".join(EVENTS)
    assert payload.done


def test_decoder_chunked_keeps_what_follows_the_body():
    dec = BodyDecoder(b"")
    assert dec.lines(chunk(b"a\nb") + b"0\r\nX-Trailer: 1\r\n\r\nHTTP/1.1") == [b"a"]
    assert dec.done and dec.rest == b"HTTP/1.1" and dec.tail() == b"b"


def test_decoder_content_length():
    dec = BodyDecoder(b"ab\r\n", chunked=False, length=9)
    assert dec.lines(b"") == [b"ab"]
    assert dec.lines(b"cd") is None and not dec.done
    assert dec.lines(b"\nefXYZ") == [b"cd"]
    assert dec.done and dec.rest == b"XYZ" and dec.tail() == b"ef" and dec.received == 12
    empty = BodyDecoder(b"", chunked=False, length=0)
    assert empty.payload(b"") == b"" and empty.done


def test_decoder_read_until_close():
    dec = BodyDecoder(b"", chunked=False, length=None)
    assert dec.payload(b"abc") == b"abc" and not dec.done
    dec.eof()
    assert dec.done


def test_decoder_eof_before_the_framed_end():
    with pytest.raises(Truncated):
        BodyDecoder(chunk(b"x")).eof()
    with pytest.raises(Truncated, match="3 body bytes missing"):
        dec = BodyDecoder(b"", chunked=False, length=5)
        dec.payload(b"ab")
        dec.eof()


@pytest.mark.parametrize("wire", [b"zz\r\nab\r\n", b"2\r\nabXY", b"1" * 1100])
def test_decoder_protocol_errors(wire):
    with pytest.raises(ProtocolError):
        BodyDecoder(b"").lines(wire)


# -- the readers over a socket ------------------------------------------------------------------
@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_chunked_lines_survive_any_split(serve, size):
    events = [b'data:{"i":%d}\n\n' % i for i in range(20)] + [b":\n\n", b"data: [DONE]\r\n\r\n"]
    wire = b"".join(chunk(e) for e in events) + b"0\r\n\r\n"

    def handler(sock, n, head, body):
        sock.sendall(CHUNKED_HEAD)
        send_slowly(sock, wire, size)
        return True

    srv = serve(handler)
    with Connection(srv.url, timeout=5) as conn:
        for _ in range(2):  # and the connection is reusable after a chunked body
            resp = conn.request("POST", "/generate_stream", b"{}")
            lines = [line for line, _ in resp.iter_lines()]
            assert [ln for ln in lines if ln] == [b'data:{"i":%d}' % i for i in range(20)] + [
                b":",
                b"data: [DONE]",
            ]
            assert resp.complete
    assert conn.connects == 1


def test_crlf_lines_and_final_line_without_newline(serve):
    def handler(sock, n, head, body):
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\na\r\nbb\r\n\r\nlast!")
        return True

    srv = serve(handler)
    with Connection(srv.url, timeout=5) as conn:
        lines = [line for line, _ in conn.request("GET", "/").iter_lines()]
    assert lines == [b"a", b"bb", b"", b"last!"]


def test_truncated_chunked_body(serve):
    def handler(sock, n, head, body):
        sock.sendall(CHUNKED_HEAD + chunk(b"data:{}\n\n") + b"20\r\nda")
        return False

    srv = serve(handler)
    with Connection(srv.url, timeout=5) as conn:
        resp = conn.request("POST", "/", b"")
        got = []
        with pytest.raises(Truncated):
            for line, _ in resp.iter_lines():
                got.append(line)
        assert got == [b"data:{}", b""]
        assert not resp.complete and conn.sock is None


BODY = b"data:1\n\ndata:2\r\n\r\nlast"
FRAMINGS = {
    "chunked": (CHUNKED_HEAD, chunk(BODY[:9]) + chunk(BODY[9:]) + b"0\r\n\r\n", True),
    "content-length": (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY), BODY, True),
    "until-close": (b"HTTP/1.1 200 OK\r\n\r\n", BODY, False),
}


@pytest.mark.parametrize("framing", list(FRAMINGS))
@pytest.mark.parametrize("reader", ["iter_line_batches", "pump_lines"])
def test_every_reader_reads_every_framing(serve, framing, reader):
    """pump_lines (the hub callback under gevent) gives what iter_line_batches yields."""
    head, body, keep = FRAMINGS[framing]

    def handler(sock, n, h, b):
        sock.sendall(head)
        send_slowly(sock, body, 5)
        return keep

    srv = serve(handler)
    with Connection(srv.url, timeout=5) as conn:
        for _ in range(2):
            resp = conn.request("POST", "/", b"")
            got: list[bytes] = []
            read_lines(resp, reader, got)
            assert got == [b"data:1", b"", b"data:2", b"", b"last"]
            assert resp.complete and resp.bytes_received == len(body)
    assert srv.connections == (1 if keep else 2)


@pytest.mark.parametrize("reader", ["iter_line_batches", "pump_lines"])
def test_every_reader_sees_a_short_content_length_body(serve, reader):
    def handler(sock, n, head, body):
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\ndata:1\n\ndata:")
        return False

    srv = serve(handler)
    with Connection(srv.url, timeout=5) as conn:
        resp = conn.request("POST", "/", b"")
        got: list[bytes] = []
        with pytest.raises(Truncated, match="body bytes missing"):
            read_lines(resp, reader, got)
        assert got == [b"data:1", b""] and not resp.complete and conn.sock is None
