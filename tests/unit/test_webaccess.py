"""Who may use the web UI (harness.load.webaccess, harness.cli.ui): loopback freely; any other
address only with HARNESS_WEB_AUTH=USER:PASSWORD, whose value is never echoed."""

from __future__ import annotations

import base64

import pytest

from harness.cli import ui
from harness.load.webaccess import AUTH_ENV, authorized, credentials, is_loopback


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def test_loopback_or_not() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "localhost", "::1"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "", "*", "10.0.0.5", "::"))


def test_credentials_from_the_environment_never_echoed() -> None:
    assert credentials({}) is None and credentials({AUTH_ENV: ""}) is None
    assert credentials({AUTH_ENV: "ops:s3cr:et"}) == ("ops", "s3cr:et")
    for bad in ("nocolon-s3cret", ":s3cret", "ops:"):
        with pytest.raises(ValueError, match=AUTH_ENV) as info:
            credentials({AUTH_ENV: bad})
        assert "s3cret" not in str(info.value)


def test_authorized_only_with_exactly_the_credentials() -> None:
    creds = ("ops", "s3cret")
    assert authorized(_basic("ops:s3cret"), creds)
    assert authorized("basic " + _basic("ops:s3cret").split()[1], creds)
    for header in (None, "", _basic("ops:wrong"), _basic("ops:s3cret "), "Bearer s3cret", "Basic !!!",
                   "Basic", _basic("ops")):
        assert not authorized(header, creds), header


def test_off_loopback_needs_the_login_variable() -> None:
    assert ui.web_host_problem("0.0.0.0", [], {AUTH_ENV: "ops:s3cret"}) is None
    assert ui.web_host_problem("127.0.0.1", ["--web-host", "10.1.2.3"], {AUTH_ENV: "ops:s3cret"}) is None
    refused = ui.web_host_problem("0.0.0.0", [], {})
    assert refused and AUTH_ENV in refused and "SSH tunnel" in refused
    malformed = ui.web_host_problem("0.0.0.0", [], {AUTH_ENV: "s3cret"})
    assert malformed and AUTH_ENV in malformed and "s3cret" not in malformed
    assert ui.web_host_problem("127.0.0.1", [], {}) is None
