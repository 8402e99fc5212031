"""HTTP basic auth in front of Locust's web UI (harness.load.webaccess says who may use it).

`protect(web_ui)` runs where the web UI is created (harness.load.locust.listeners, at init): with
HARNESS_WEB_AUTH set, every request — Locust's pages and API, the LLM tab — needs those
credentials (401 and a `WWW-Authenticate` challenge otherwise); without it, a UI bound off
loopback answers every request 403 saying how to set them (Locust's own `--web-login`, when given,
is left to do its job). A malformed value locks the UI too (fail closed) and says why once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Response, request

from harness.load.webaccess import AUTH_ENV, REALM, authorized, credentials, is_loopback

_log = logging.getLogger(__name__)


def protect(web_ui: Any, environ: Mapping[str, str] | None = None) -> str:
    """Install the check on `web_ui.app`; returns what was done: "basic", "locked" or "open"."""
    environ = os.environ if environ is None else environ
    host = getattr(web_ui, "host", "") or ""
    try:
        creds = credentials(environ)
    except ValueError as exc:
        _log.error("web UI locked: %s", exc)
        creds, why = None, f"{exc}\n"
    else:
        why = None
    if creds is None and why is None:
        if is_loopback(host) or getattr(web_ui, "web_login", False):
            return "open"
        why = (f"this web UI is bound to {host or 'every interface'} and has no login: set "
               f"{AUTH_ENV}=USER:PASSWORD in its environment (basic auth), or bind 127.0.0.1\n")
        _log.warning("web UI locked: bound off loopback without %s", AUTH_ENV)

    @web_ui.app.before_request
    def require_login() -> Response | None:
        if creds is None:
            return Response(why, status=403, mimetype="text/plain")
        if authorized(request.headers.get("Authorization"), creds):
            return None
        return Response("login required\n", status=401, mimetype="text/plain",
                        headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})

    return "basic" if creds is not None else "locked"
