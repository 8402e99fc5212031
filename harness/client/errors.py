"""The transport's exceptions, in a module of their own so that the framing decoder, the pump and
the connection can all raise them without importing each other."""

from __future__ import annotations


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


class Stale(Exception):
    """EOF before any response byte: a keep-alive connection the server had already closed."""
