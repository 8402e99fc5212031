"""Extra request headers and the bearer token: validated with the configuration, read from the
environment only when sending."""

from __future__ import annotations

import pytest

from harness.config.layers import ConfigError, validate
from harness.config.model import Request
from harness.load.headers import request_headers


def test_request_headers() -> None:
    req = Request(headers=["X-A: 1", "X-B:two words "], bearer_token_env="TOK")
    expected = {"X-A": "1", "X-B": "two words", "Authorization": "Bearer abc"}
    assert request_headers(req, {"TOK": "abc"}) == expected
    with pytest.raises(ValueError, match="TOK"):
        request_headers(req, {})  # named but unset: fail, never send an empty token
    assert request_headers(Request(), {"TOK": "abc"}) == {}
    # names are case-insensitive: the last one given wins, and the token replaces any Authorization
    req = Request(headers=["x-a: 1", "X-A: 2", "authorization: Basic x"], bearer_token_env="T")
    assert request_headers(req, {"T": "t"}) == {"X-A": "2", "Authorization": "Bearer t"}


@pytest.mark.parametrize("bad", ["no colon", ": empty name", "X-C: a\r\nX-D: b", "Bad Name: x",
                                 "Content-Length: 5", "transfer-encoding: chunked", "X-E: \u20ac"])
def test_bad_headers_are_configuration_errors(bad: str) -> None:
    with pytest.raises(ConfigError, match="request.headers"):
        validate({"request": {"headers": [bad]}})
