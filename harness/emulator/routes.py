"""What each request means: routing, TGI's parameter validation, and the routes answered at once
(/health, /info, /metrics, /v1/models, /tokenize, /emulator/*). Generation routes are handed to
App.start, which plans the tokens and gives the stream to the scheduler.

Status codes and messages follow TGI's router: a body that is not a JSON object is a plain-text
422 (axum's Json extractor), bad parameters a JSON 422 `{"error", "error_type": "validation"}`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.emulator import wire
from harness.emulator.faults import ServerFaults
from harness.emulator.profiles import Profile

if TYPE_CHECKING:
    from harness.emulator.app import App
    from harness.emulator.http import Conn

KNOWN_PATHS = frozenset({
    "/health", "/info", "/metrics", "/v1/models", "/emulator/stats", "/emulator/config", "/emulator/reset",
    "/emulator/faults",
    "/generate", "/generate_stream", "/", "/v1/chat/completions", "/v1/completions", "/tokenize",
})


class ValidationError(Exception):
    """A request TGI's validation would refuse; the message follows `Input validation error: `."""


def route(conn: Conn, method: str, path: str, headers: dict, body: bytes) -> None:
    """Answer one parsed request on `conn` (404 unknown path, 405 known path with another method)."""
    app = conn.app
    sf = app.cfg.server_faults
    if sf.openai_only and path in _TGI_ONLY:
        return conn.send(wire.head(404, [], length=0, keep_alive=conn.keep_alive))
    if method == "GET":
        if path == "/health" and sf.unhealthy:
            return conn.send_json(503, {"error": "unhealthy", "error_type": "healthcheck"})
        if path == "/health":
            return conn.send(wire.head(200, [], length=0, keep_alive=conn.keep_alive))
        if path == "/info":
            return conn.send_json(200, info(app))
        if path == "/metrics":
            text = prometheus(app).encode()
            return conn.send(wire.head(200, [("content-type", "text/plain; charset=utf-8")],
                                       length=len(text), keep_alive=conn.keep_alive) + text)
        if path == "/v1/models":
            mid = app.model_id
            return conn.send_json(200, {"object": "list", "data": [
                {"id": mid, "object": "model", "created": 0, "owned_by": mid}]})
        if path == "/emulator/stats":
            return conn.send_json(200, stats(app))
        if path == "/emulator/config":
            return conn.send_json(200, {"profile": vars(app.profile), "corpus": app.corpus.source,
                                        "tokenizer": app.tok.name, **app.cfg.extra_info})
    elif method == "POST":
        if path == "/emulator/reset":
            app.counters.reset()
            return conn.send_json(200, stats(app))
        if path == "/emulator/faults":
            return _set_server_faults(conn, body)
        handler = _POST.get(path)
        if handler is not None and handler is not _tokenize:
            app.generation_requests += 1
            if sf.active(app.generation_requests) and _route_fault(conn, sf):
                return None
        if handler is not None:
            try:
                req = json.loads(body) if body else None
                if not isinstance(req, dict):
                    raise ValueError("expected a JSON object")
            except ValueError as exc:
                msg = f"Failed to deserialize the JSON body into the target type: {exc}"
                return conn.send(wire.head(422, [("content-type", "text/plain; charset=utf-8")],
                                           length=len(msg.encode()), keep_alive=conn.keep_alive)
                                 + msg.encode())
            return handler(conn, path, req, headers)
    status = 405 if path in KNOWN_PATHS else 404
    return conn.send(wire.head(status, [], length=0, keep_alive=conn.keep_alive))


_TGI_ONLY = frozenset({"/info", "/generate", "/generate_stream", "/"})
_STATUS_TYPES = {422: "validation", 424: "generation", 429: "overloaded", 500: "generation", 503: "unhealthy"}


def _route_fault(conn: Conn, sf: ServerFaults) -> bool:
    """Answer with the server-wide fault, if one applies (True: answered, or never will be)."""
    if sf.hang:
        conn.busy = True  # read, never answered: the connection stays open and silent
        return True
    if sf.http_status is None:
        return False
    extra = [("retry-after", sf.retry_after)] if sf.retry_after else []
    if sf.http_body:
        etype = _STATUS_TYPES.get(sf.http_status, "error")
        conn.send_json(sf.http_status, {"error": f"emulated HTTP {sf.http_status}", "error_type": etype},
                       extra)
    else:
        conn.send(wire.head(sf.http_status, extra, length=0, keep_alive=conn.keep_alive))
    return True


def _set_server_faults(conn: Conn, body: bytes) -> None:
    """POST /emulator/faults: the server-wide faults from now on (ServerFaults.from_json)."""
    app = conn.app
    try:
        app.cfg.server_faults = ServerFaults.from_json(json.loads(body or b"{}"), app.generation_requests)
    except ValueError as exc:
        return _bad(conn, str(exc))
    return conn.send_json(200, vars(app.cfg.server_faults))


def _bad(conn: Conn, msg: str) -> None:
    conn.send_json(422, {"error": msg, "error_type": "validation"})


def _generate(conn: Conn, path: str, req: dict, headers: dict) -> None:
    inputs = req.get("inputs")
    params = req.get("parameters") or {}
    if not isinstance(inputs, str) or not isinstance(params, dict):
        return _bad(conn, "Failed to deserialize the JSON body: `inputs` must be a string")
    if "ignore_eos" in req:
        params = {**params, "ignore_eos": req["ignore_eos"]}
    stream = path == "/generate_stream" or (path == "/" and bool(req.get("stream")))
    conn.app.start(conn, "generate_stream" if stream else "generate", inputs, params, headers)


def _oai_params(req: dict) -> dict:
    """OpenAI request fields as TGI's generate parameters (TGI's own mapping)."""
    max_tokens = req.get("max_tokens", req.get("max_completion_tokens"))
    params = {
        "max_new_tokens": max_tokens,
        "seed": req.get("seed"),
        "temperature": req.get("temperature"),
        "top_p": req.get("top_p"),
        "stop": req.get("stop") if isinstance(req.get("stop"), list) else [],
        "ignore_eos": req.get("ignore_eos"),
        "details": True,
    }
    if params["temperature"] == 0:
        params["temperature"] = None  # TGI maps temperature 0 to greedy
    return params


def _chat(conn: Conn, path: str, req: dict, headers: dict) -> None:
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        return _bad(conn, "Failed to deserialize the JSON body: `messages` must be a non-empty list")
    stream = bool(req.get("stream"))
    params = _oai_params(req)
    opts = req.get("stream_options") or {}
    conn.app.start(conn, "chat_stream" if stream else "chat", "", params, headers, chat_messages=messages)
    g = conn.gen
    if g is not None and not g.closed:
        g.include_usage = bool(isinstance(opts, dict) and opts.get("include_usage"))


def _completions(conn: Conn, path: str, req: dict, headers: dict) -> None:
    prompt = req.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        return _bad(conn, "the emulator supports one string prompt per /v1/completions request")
    stream = bool(req.get("stream"))
    conn.app.start(conn, "completion_stream" if stream else "completion", prompt, _oai_params(req), headers)


def _tokenize(conn: Conn, path: str, req: dict, headers: dict) -> None:
    inputs = req.get("inputs")
    if not isinstance(inputs, str):
        return _bad(conn, "Failed to deserialize the JSON body: `inputs` must be a string")
    conn.send_json(200, tokenize(conn.app, inputs))


_POST: dict[str, Callable[[Conn, str, dict, dict], None]] = {
    "/generate": _generate,
    "/generate_stream": _generate,
    "/": _generate,
    "/v1/chat/completions": _chat,
    "/v1/completions": _completions,
    "/tokenize": _tokenize,
}


def validate_params(p: Profile, params: dict, input_len: int) -> int:
    """TGI's checks, in TGI's order and words; returns max_new_tokens (defaulted to what fits)."""
    temperature = params.get("temperature")
    if temperature is not None and temperature <= 0:
        raise ValidationError("`temperature` must be strictly positive")
    top_p = params.get("top_p")
    if top_p is not None and not (0.0 < top_p < 1.0):
        raise ValidationError("`top_p` must be > 0.0 and < 1.0")
    top_k = params.get("top_k")
    if top_k is not None and top_k <= 0:
        raise ValidationError("`top_k` must be strictly positive")
    stop = params.get("stop") or []
    if len(stop) > 4:
        raise ValidationError(f"`stop` supports up to 4 stop sequences. Given: {len(stop)}")
    max_new = params.get("max_new_tokens")
    if max_new is None:
        max_new = max(0, p.max_total_tokens - input_len)
    if not isinstance(max_new, int) or max_new <= 0:
        raise ValidationError("`max_new_tokens` must be strictly positive")
    if input_len + max_new > p.max_total_tokens:
        raise ValidationError(
            f"`inputs` tokens + `max_new_tokens` must be <= {p.max_total_tokens}. "
            f"Given: {input_len} `inputs` tokens and {max_new} `max_new_tokens`")
    if input_len > p.max_input_tokens:
        raise ValidationError(
            f"`inputs` must have less than {p.max_input_tokens} tokens. Given: {input_len}")
    return max_new


def info(app: App) -> dict:
    """GET /info: TGI's Info struct for this profile."""
    p = app.profile
    return {
        "model_id": p.model_id,
        "model_sha": None,
        "model_pipeline_tag": "text-generation",
        "max_concurrent_requests": p.max_concurrent_requests,
        "max_best_of": 2,
        "max_stop_sequences": 4,
        "max_input_tokens": p.max_input_tokens,
        "max_total_tokens": p.max_total_tokens,
        "validation_workers": 2,
        "max_client_batch_size": 4,
        "router": "text-generation-router",
        "version": p.version,
        "sha": None,
        "docker_label": app.cfg.docker_label,
    }


def stats(app: App) -> dict:
    """GET /emulator/stats: lateness of token writes vs their deadlines, counters, engine state."""
    c = app.counters
    now = time.monotonic()
    eng = app.engine
    return {
        "profile": app.profile.name,
        "mode": app.profile.mode,
        "uptime_s": round(now - c.started, 3),
        "window_s": round(now - c.since, 3),
        "lateness_ms": c.lateness.summary(),
        "token_events": c.token_events,
        "active_streams": len(app.active),
        "peak_active_streams": c.peak_active_streams,
        "connections": len(app.conns),
        "requests_total": c.requests_total,
        "requests_ok": c.requests_ok,
        "requests_failed": c.requests_failed,
        "rejected_overloaded": c.rejected_overloaded,
        "faults_drawn": app.cfg.faults.drawn,  # requests given a `--fault` since start (not reset)
        "queue_size": eng.queue_size if eng else 0,
        "batch_size": eng.batch_size if eng else 0,
        "engine_prefills": eng.prefills if eng else 0,
        "engine_decodes": eng.decodes if eng else 0,
        # share of the window spent in ticks that released tokens (timer re-polls excluded)
        "busy_fraction": round(c.busy_s / max(1e-9, now - c.since), 3),
    }


def prometheus(app: App) -> str:
    """GET /metrics: TGI's metric names, with the gauges read now."""
    eng = app.engine
    gauges = {
        "tgi_queue_size": eng.queue_size if eng else 0,
        "tgi_batch_current_size": eng.batch_size if eng else len(app.active),
        "tgi_batch_current_max_tokens": sum(
            r.input_tokens + r.output_tokens for r in eng.running) if eng else 0,
    }
    return app.metrics.render(gauges)


def tokenize(app: App, text: str) -> list[dict]:
    """POST /tokenize: TGI's SimpleToken list (ids with their character offsets)."""
    enc = app.tok.backend.encode(text, add_special_tokens=True)
    return [
        {"id": tid, "text": text[a:b], "start": a, "stop": b}
        for tid, (a, b) in zip(enc.ids, enc.offsets, strict=True)
    ]
