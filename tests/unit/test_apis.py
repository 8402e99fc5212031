"""Request bodies and run_request's one-record-per-request contract (raw server)."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest
from support.http_script import CHUNKED_HEAD, ScriptServer, chunk, native_event

from harness.client import apis
from harness.client.streams import GenerateStreamStream
from harness.client.transport import Connection
from harness.load import runstate


def test_bodies():
    g = json.loads(apis.GenerateStream().body("hi", 7))
    assert g == {
        "inputs": "hi",
        "parameters": {"max_new_tokens": 7, "details": True, "return_full_text": False},
    }
    c = json.loads(apis.ChatCompletions(model="m", ignore_eos=True).body("hi", 7))
    assert c["messages"] == [{"role": "user", "content": "hi"}] and c["stream_options"] == {
        "include_usage": True
    }
    assert c["ignore_eos"] is True and c["max_tokens"] == 7 and c["model"] == "m"
    assert "ignore_eos" not in json.loads(apis.Completions().body("hi", 7))


# -- run_request: one record per request, whatever happens ---------------------------------------
@pytest.fixture
def server():
    made: list[ScriptServer] = []

    def make(handler):
        made.append(ScriptServer(handler))
        return made[-1]

    yield make
    for s in made:
        s.close()


def run(url: str, api: apis.Api | None = None, timeout: float = 5.0, conn: Connection | None = None):
    records = []
    own = conn is None
    conn = conn or Connection(url, timeout=timeout)
    try:
        rec, received = apis.run_request(
            conn, api or apis.GenerateStream(), b"{}", records.append, "w:1", 30, 9
        )
    finally:
        if own:
            conn.close()
    assert records == [rec]
    return rec


def native_handler(
    n: int, ttft: float = 0.0, itl: float = 0.0, tail: bytes = b"0\r\n\r\n", cut: int | None = None
):
    def handler(sock, k, head, body):
        sock.sendall(CHUNKED_HEAD)
        time.sleep(ttft)
        for i in range(1, n + 1):
            if cut is not None and i > cut:
                return False
            if i > 1:
                time.sleep(itl)
            sock.sendall(chunk(native_event(i, n)))
        sock.sendall(tail)
        return True

    return handler


def test_success_record_fields():
    runstate.set_step(3, 16, "warmup")
    try:
        srv = ScriptServer(native_handler(6, ttft=0.05, itl=0.02))
        rec = run(srv.url)
    finally:
        runstate.reset()
        srv.close()
    assert rec.ok and rec.status == 200 and rec.api == "generate_stream"
    assert (rec.step, rec.users, rec.phase, rec.worker) == (3, 16, "warmup", "w:1")
    assert rec.output_tokens == rec.server_output_tokens == 6 and rec.server_input_tokens == 12
    assert (rec.input_tokens, rec.max_new_tokens, rec.finish_reason) == (30, 9, "length")
    assert rec.token_us[0] >= 45_000  # never assert an upper bound on a shared machine
    assert all(b - a >= 15_000 for a, b in zip(rec.token_us, rec.token_us[1:], strict=False))
    assert rec.t_end >= rec.t_send + rec.token_us[-1] / 1e6 - 1e-6


def test_keep_alive_across_records(server):
    srv = server(native_handler(3))
    with Connection(srv.url, timeout=5) as conn:
        for _ in range(3):
            assert run(srv.url, conn=conn).ok
    assert srv.connections == 1


def _http_error(sock, k, head, body):
    payload = b'{"error":"Input validation error: too long","error_type":"validation"}'
    sock.sendall(
        b"HTTP/1.1 422 Unprocessable Entity\r\nContent-Length: %d\r\n\r\n%b" % (len(payload), payload)
    )
    return True


def _error_event(sock, k, head, body):
    sock.sendall(CHUNKED_HEAD + chunk(native_event(1, 5)) + chunk(native_event(2, 5)))
    sock.sendall(
        chunk(b'data:{"error":"Request failed during generation: boom","error_type":"generation"}\n\n')
    )
    sock.sendall(b"0\r\n\r\n")
    return True


def _stall(sock, k, head, body):
    sock.sendall(CHUNKED_HEAD + chunk(native_event(1, 5)))
    time.sleep(1.0)
    return False


@pytest.mark.parametrize(
    "handler, error_type, status, tokens",
    [
        (_http_error, "validation", 422, 0),
        (_error_event, "generation", 200, 2),
        (native_handler(5, cut=3), "truncated", 200, 3),  # connection closed mid-stream
        (native_handler(5, cut=3, tail=b""), "truncated", 200, 3),
        (_stall, "timeout", 200, 1),
    ],
    ids=["http-422", "error-event", "disconnect", "disconnect-no-tail", "timeout"],
)
def test_each_error_path_yields_one_failed_record(server, handler, error_type, status, tokens):
    srv = server(handler)
    rec = run(srv.url, timeout=0.4)
    assert (rec.error_type, rec.status, rec.output_tokens) == (error_type, status, tokens)
    assert not rec.ok and rec.error


def test_ended_without_final_event(server):
    def handler(sock, k, head, body):
        sock.sendall(CHUNKED_HEAD + chunk(native_event(1, 5)) + b"0\r\n\r\n")
        return True

    rec = run(server(handler).url)
    assert rec.error_type == "truncated" and rec.error == "stream ended without a final event"


def test_connection_error_record():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    rec = run(f"http://127.0.0.1:{port}")
    assert (rec.error_type, rec.status, rec.output_tokens) == ("connection", None, 0)


def test_cancelled_request_still_records(server):
    class Cancel(BaseException):
        pass

    class ExplodingStream(GenerateStreamStream):
        __slots__ = ()

        def feed(self, t, lines):
            raise Cancel()  # as gevent's GreenletExit would, when Locust stops a user mid-stream

    class Exploding(apis.GenerateStream):
        stream_class = ExplodingStream

    srv = server(native_handler(3))
    records = []
    with Connection(srv.url, timeout=5) as conn, pytest.raises(Cancel):
        apis.run_request(conn, Exploding(), b"{}", records.append, "w")
    assert len(records) == 1 and records[0].error_type == "cancelled"


def test_extra_headers_reach_the_server(server, monkeypatch):
    """--header and --bearer-token-env end up on the wire (the token comes from the environment)."""
    from harness.config.model import Request
    from harness.load.headers import request_headers

    monkeypatch.setenv("TEST_TOKEN", "hf_secret")
    req = Request(headers=["X-Tenant: blue"], bearer_token_env="TEST_TOKEN")
    srv = server(native_handler(2))
    rec = run(srv.url, api=apis.GenerateStream(headers=request_headers(req, os.environ)))
    assert rec.ok
    lines = srv.requests[0][0].decode().split("\r\n")
    assert "X-Tenant: blue" in lines and "Authorization: Bearer hf_secret" in lines
    assert "Content-Type: application/json" in lines  # the API's own headers stay
    assert sum(ln.lower().startswith("host:") for ln in lines) == 1


def test_given_host_and_accept_replace_ours(server):
    """Behind an ingress: a Host header given by the user replaces the URL's, once; same for Accept."""
    srv = server(native_handler(2))
    api = apis.GenerateStream(headers={"host": "api.example", "accept": "*/*"})
    assert run(srv.url, api=api).ok
    lines = srv.requests[0][0].decode().split("\r\n")
    assert [ln for ln in lines if ln.lower().startswith("host:")] == ["host: api.example"]
    assert [ln for ln in lines if ln.lower().startswith("accept:")] == ["accept: */*"]


def test_server_timing_headers_and_request_id_join_the_outcome():
    """TGI's timing headers (ms) and a request id header; the stream's own timings win a clash."""
    from harness.client.apis import _server_facts
    from harness.client.streams import Outcome

    out = Outcome(server_timings={"prompt_ms": 5.0})
    _server_facts({"x-queue-time": "12", "x-time-per-token": "7", "x-inference-time": "bad",
                   "x-request-id": "abc"}, out)
    assert out.server_timings == {"x-queue-time": 12.0, "x-time-per-token": 7.0, "prompt_ms": 5.0}
    assert out.server_request_id == "abc"
    none = Outcome()
    _server_facts({"x-compute-type": "gpu+optimized"}, none)
    assert (none.server_timings, none.server_request_id) == (None, None)
