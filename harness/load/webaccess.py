"""Who may use the web UI: anyone on loopback; bound to any other address, only with HTTP basic auth.

The web UI starts load against a server and shows the configuration, so off loopback it needs a
login. Locust 2.47's `--web-login` is a login page whose users and auth providers a locustfile must
supply itself; basic auth needs none of that: the credentials come from one environment variable,
`HARNESS_WEB_AUTH=USER:PASSWORD` — never a flag (the process list would show it), never logged,
not part of the configuration (so never in a manifest). `python -m harness ui` refuses a
non-loopback `--web-host` without it; the Locust process (harness.load.locust.webauth) checks every
request against it, and without it refuses every request when bound off loopback.
Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

AUTH_ENV = "HARNESS_WEB_AUTH"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
REALM = "tgi-loadtest web UI"


def is_loopback(host: str) -> bool:
    """Loopback only ("" and "*" are every interface, "0.0.0.0" too)."""
    return host in LOOPBACK or host.startswith("127.")


def credentials(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(user, password) from HARNESS_WEB_AUTH; None when unset or empty. A malformed value raises
    ValueError with a message that never contains the value."""
    value = environ.get(AUTH_ENV, "")
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError(f"{AUTH_ENV}: expected USER:PASSWORD (both non-empty; the value is not shown)")
    return user, password


def authorized(header: str | None, expected: tuple[str, str]) -> bool:
    """Does an `Authorization: Basic …` header carry exactly these credentials (constant time)?"""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "basic" or not token:
        return False
    try:
        given = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    want = f"{expected[0]}:{expected[1]}".encode()
    return hmac.compare_digest(given, want)
