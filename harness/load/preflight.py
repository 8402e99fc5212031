"""Pre-flight: before the first step, is the target usable, and for what?

A load tester is pointed at servers that are down, misconfigured or of another kind than assumed;
the run must then stop before it starts, with one line saying why, instead of hammering the
server for the length of a sweep and writing a report full of n/a. In order:

1. the URL's host resolves and something listens at its port;
2. `/health` answers (200; a 404 means the server has no such route, which is fine; anything else,
   or nothing within the timeout, is "unhealthy");
3. what it is: TGI's `/info` (model id, max input/total tokens, max concurrent requests) or an
   OpenAI-compatible `/v1/models` (model ids, vLLM's `max_model_len`) — asked WITH the configured
   headers, so a server behind a token answers;
4. the API (`request.api`, or when not given: TGI → generate_stream, else chat) and the model name
   to send (the configured one, else the server's);
5. the token budget (input + output) against the server's limits: beyond them on average is bad
   input (exit 2), in the tails a warning;
6. one short request (max 1 new token) on the chosen route with the configured headers succeeds —
   read by the same client and stream parsers as the load, so "succeeds" means the same thing.

Failures raise `PreflightError` with one line and the exit code (harness.exitcodes): 4 when the
target is unusable, 2 when the configuration does not fit it. No locust import: the sweep, the
plain locustfile path (harness.load.locust.listeners) and tests call `check_target` alike.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from harness import exitcodes
from harness.config.model import RunConfig
from harness.load.headers import request_headers
from harness.targets.identity import Identity

PROBE_TEXT = "Say hello."
_HINTS_404 = {
    "generate_stream": "the server has no /generate_stream (not TGI?): use --api chat (or completions)",
    "chat": "the server has no /v1/chat/completions: use --api generate_stream (TGI) or completions",
    "completions": "the server has no /v1/completions: use --api chat or generate_stream (TGI)",
}
_AUTH_HINT = "set --bearer-token-env VAR (Authorization: Bearer $VAR) or --headers 'Name: value'"


class PreflightError(Exception):
    """One line for the user and the exit code it ends the run with."""

    def __init__(self, message: str, code: int = exitcodes.TARGET_UNUSABLE) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Budget:
    """The workload's token budget per request: means and standard deviations."""

    input_mean: int
    input_stddev: int
    output_mean: int
    output_stddev: int
    users: int  # the largest user count of the plan

    @property
    def input_tail(self) -> int:
        return self.input_mean + 3 * self.input_stddev

    @property
    def output_tail(self) -> int:
        return self.output_mean + 3 * self.output_stddev


@dataclass
class Preflight:
    """What the checks found: the server's identity, the API and model name to use, warnings."""

    identity: Identity
    api: str
    model_name: str
    health_status: int | None
    warnings: list[str] = field(default_factory=list)


def _get(url: str, headers: Mapping[str, str], timeout: float) -> tuple[int, bytes]:
    """(status, body) of a GET; raises PreflightError when nothing answers."""
    req = urllib.request.Request(url, headers=dict(headers))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read(1 << 20)
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read(1 << 16)
        except OSError:
            body = b""
        return exc.code, body
    except TimeoutError:
        raise PreflightError(f"no response from {url} in {timeout:g} s (the server accepts "
                             "connections but does not answer)") from None
    except urllib.error.URLError as exc:
        raise PreflightError(_unreachable(url, exc.reason)) from None
    except (OSError, ValueError) as exc:  # reset, protocol garbage
        raise PreflightError(f"{url}: {type(exc).__name__}: {exc}") from None


def _unreachable(url: str, reason: Any) -> str:
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve the host {parts.hostname!r} of {url}: check --url"
    if isinstance(reason, ConnectionRefusedError):
        return f"nothing listens at {where} (connection refused): is the server running? check --url"
    if isinstance(reason, TimeoutError):
        return f"no response from {where} (connect timed out): check --url and the firewall"
    return f"cannot reach {where}: {reason}"


def check_url(url: str) -> None:
    """The URL has a scheme, a host and a valid port (raises PreflightError, exit 2)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise PreflightError(f"--url {url!r}: {exc}", exitcodes.BAD_INPUT) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PreflightError(f"--url {url!r}: expected http(s)://host[:port]", exitcodes.BAD_INPUT)
    try:
        socket.getaddrinfo(parts.hostname, port or 80, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise PreflightError(f"cannot resolve the host {parts.hostname!r} of {url}: check --url") from None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _refused(path: str, status: int) -> str:
    return f"{path} answered HTTP {status}: the server refused the request's credentials; {_AUTH_HINT}"


def identify_checked(
    url: str, headers: Mapping[str, str], timeout: float
) -> tuple[Identity, int | None, dict]:
    """/health, /info and /v1/models (with the headers): the identity, /health's status and the
    /v1/models document (for limits such as vLLM's max_model_len)."""
    health, body = _get(url + "/health", headers, timeout)
    if health in (401, 403):
        raise PreflightError(_refused("/health", health))
    if health not in (200, 204, 404):
        text = body[:200].decode("utf-8", "replace").strip()
        raise PreflightError(f"the server is not healthy: /health answered HTTP {health}"
                             + (f" ({text})" if text else "") + "; wait until it has loaded the model")
    status, body = _get(url + "/info", headers, timeout)
    if status in (401, 403):
        raise PreflightError(_refused("/info", status))
    info = _json(body) if status == 200 else None
    status, body = _get(url + "/v1/models", headers, timeout)
    if status in (401, 403):
        raise PreflightError(_refused("/v1/models", status))
    doc = _json(body) if status == 200 else None
    doc = doc if isinstance(doc, dict) else {}
    data = doc.get("data") if isinstance(doc.get("data"), list) else []
    models = [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")]
    return Identity(info=info if isinstance(info, dict) else None, models=models), health, doc


def choose_api(identity: Identity, configured: str | None) -> str:
    """The configured API, else TGI's native route on TGI and chat on anything else."""
    if configured:
        return configured
    return "generate_stream" if identity.is_tgi else "chat"


def limits(identity: Identity, models_doc: dict) -> dict[str, int]:
    """The server's limits we can check against: max_input_tokens, max_total_tokens,
    max_concurrent_requests (TGI's /info) or max_total_tokens from vLLM's max_model_len."""
    out: dict[str, int] = {}
    info = identity.info or {}
    for key, alias in (("max_input_tokens", "max_input_length"), ("max_total_tokens", None),
                       ("max_concurrent_requests", None)):
        value = info.get(key, info.get(alias) if alias else None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            out[key] = value
    for m in models_doc.get("data") or []:
        if isinstance(m, dict) and isinstance(m.get("max_model_len"), int):
            out.setdefault("max_total_tokens", m["max_model_len"])
            break
    return out


def budget_problems(budget: Budget, lim: Mapping[str, int]) -> tuple[list[str], list[str]]:
    """(errors, warnings): the mean budget beyond a limit is an error, the tails a warning."""
    errors: list[str] = []
    warnings: list[str] = []
    max_in, max_total = lim.get("max_input_tokens"), lim.get("max_total_tokens")
    if max_in is not None:
        if budget.input_mean > max_in:
            errors.append(f"input_mean {budget.input_mean} > the server's max_input_tokens {max_in}: "
                          f"lower --input-mean")
        elif budget.input_tail > max_in:
            warnings.append(f"input_mean + 3·input_stddev = {budget.input_tail} > max_input_tokens "
                            f"{max_in}: the longest prompts will be refused (HTTP 422)")
    if max_total is not None:
        total = budget.input_mean + budget.output_mean
        if total > max_total:
            errors.append(f"input_mean + output_mean = {total} > the server's max_total_tokens "
                          f"{max_total}: lower --input-mean or --output-mean")
        elif budget.input_tail + budget.output_tail > max_total:
            warnings.append(f"input + output tails ({budget.input_tail} + {budget.output_tail}) > "
                            f"max_total_tokens {max_total}: some requests will be refused (HTTP 422)")
    max_conc = lim.get("max_concurrent_requests")
    if max_conc is not None and budget.users > max_conc:
        warnings.append(f"{budget.users} users > the server's max_concurrent_requests {max_conc}: "
                        "the extra ones will be refused (HTTP 429, overloaded)")
    return errors, warnings


def probe(url: str, api: str, model_name: str, headers: Mapping[str, str], timeout: float) -> None:
    """One short request on the route, read like the load reads it; raises PreflightError."""
    from harness.client import apis
    from harness.client.transport import Connection

    sent: list[Any] = []
    conn = Connection(url, timeout=timeout, kernel_stamps=False)
    try:
        client = apis.APIS[api](model=model_name, headers=dict(headers))
        rec, _ = apis.run_request(conn, client, client.body(PROBE_TEXT, 1), sent.append, "preflight")
    finally:
        conn.close()
    if rec.ok:
        return
    route = client.route
    if rec.status == 404:
        raise PreflightError(f"POST {route} answered HTTP 404: {_HINTS_404[api]}")
    if rec.status in (401, 403):
        raise PreflightError(_refused(f"POST {route}", rec.status))
    if rec.status == 405:
        raise PreflightError(f"POST {route} answered HTTP 405: {_HINTS_404[api]}")
    if rec.error_type == "timeout":
        raise PreflightError(f"no response from the server in {timeout:g} s to one short request on "
                             f"{route} (a stalled or overloaded server?)")
    hint = ""
    if rec.status in (400, 422) and api != "generate_stream":
        hint = " (a model name the server does not serve? set --model-name)"
    detail = (rec.error or "")[:200]
    raise PreflightError(f"one short request on {route} failed: {rec.error_type}: {detail}{hint}")


def load_tokenizer_checked(spec: str, parse: bool = True) -> Any:
    """Load the workload's tokenizer now (cached for the run): PreflightError (exit 2) naming it
    and the fix when it cannot be loaded. `parse=False`: only find its file (a Locust master,
    which builds no prompts: harness.workload.tokenizer.find_tokenizer)."""
    from harness.workload.tokenizer import find_tokenizer, load_tokenizer

    try:
        return load_tokenizer(spec) if parse else find_tokenizer(spec)
    except RuntimeError as exc:
        if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
            fix = "give a directory holding tokenizer.json, or a tokenizer.json file"
        else:
            fix = ("a Hub id needs the network once (or HF_HUB_OFFLINE=1 with it cached); "
                   "or give a local directory holding tokenizer.json")
        detail = str(exc).removeprefix(f"cannot load tokenizer {spec!r}: ")[:200]
        if "local_files_only" in detail or "local cache" in detail:
            detail = "not in the local Hugging Face cache, and the Hub did not answer"
        raise PreflightError(f"--tokenizer {spec}: cannot load it ({detail}); {fix}",
                             exitcodes.BAD_INPUT) from None


def check_target(
    url: str,
    headers: Mapping[str, str],
    api: str | None,
    model_name: str | None,
    budget: Budget | None = None,
    timeout: float = 10.0,
    probe_timeout: float = 60.0,
    send_probe: bool = True,
) -> Preflight:
    """Every check of the module docstring, in order; raises PreflightError at the first failure."""
    check_url(url)
    identity, health, models_doc = identify_checked(url, headers, timeout)
    chosen = choose_api(identity, api)
    name = identity.model_name_to_send(model_name)
    result = Preflight(identity=identity, api=chosen, model_name=name, health_status=health)
    if budget is not None:
        errors, warnings = budget_problems(budget, limits(identity, models_doc))
        if errors:
            raise PreflightError("; ".join(errors), exitcodes.BAD_INPUT)
        result.warnings += warnings
    if send_probe:
        probe(url, chosen, name, headers, probe_timeout)
    return result


def configure_from_server(
    cfg: RunConfig, url: str, environ: Mapping[str, str], send_probe: bool = True
) -> tuple[RunConfig, Preflight]:
    """`check_target` with this configuration's headers, API, model and token budget; the
    configuration with the API and model name the pre-flight chose. Raises PreflightError
    (a header that cannot be built: exit 2)."""
    try:
        headers = request_headers(cfg.request, environ)
    except ValueError as exc:
        raise PreflightError(str(exc), exitcodes.BAD_INPUT) from None
    w = cfg.workload
    budget = Budget(w.input_mean, w.input_stddev, w.output_mean, w.output_stddev, max(cfg.users))
    pre = check_target(url, headers, cfg.request.api, cfg.request.model_name, budget,
                       probe_timeout=min(cfg.request.timeout_s, 60.0), send_probe=send_probe)
    request = cfg.request.model_copy(update={"api": pre.api, "model_name": pre.model_name})
    return cfg.model_copy(update={"request": request}), pre
