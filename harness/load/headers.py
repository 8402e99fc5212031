"""The extra headers every request carries, from the request settings and the environment.

The bearer token is read from the environment variable the configuration *names*, here and only
here, so the token itself is never saved in a configuration, manifest or record.
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.client.transport import set_header
from harness.config.model import Request, header_problem


def request_headers(request: Request, environ: Mapping[str, str]) -> dict[str, str]:
    """Each configured header, then Authorization from the variable named by bearer_token_env.
    Raises ValueError with one line when a header is malformed or the variable is unset."""
    out: dict[str, str] = {}
    for header in request.headers:
        problem = header_problem(header)
        if problem:
            raise ValueError(problem)
        name, _, value = header.partition(":")
        set_header(out, name.strip(), value.strip())
    if request.bearer_token_env:
        var = request.bearer_token_env
        token = environ.get(var, "").strip()
        if not token:
            raise ValueError(f"--bearer-token-env {var}: that environment variable is unset or empty")
        if any(c in token for c in "\r\n") or not token.isascii():
            raise ValueError(f"--bearer-token-env {var}: not a one-line ASCII token")
        set_header(out, "Authorization", f"Bearer {token}")
    return out
