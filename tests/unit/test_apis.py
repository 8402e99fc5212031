"""Stream interpretation (pure) and run_request's one-record-per-request contract (raw server)."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest
from support.http_script import CHUNKED_HEAD, ScriptServer, chunk

from harness.client import apis
from harness.client.transport import Connection
from harness.load import runstate

SNAPSHOTS = Path("/work/shared/reference/tgi/snapshots")


def native_event(i: int, n: int, input_length: int = 12) -> bytes:
    final = i == n
    details = (
        b'{"finish_reason":"length","generated_tokens":%d,"seed":null,"input_length":%d}' % (n, input_length)
        if final
        else b"null"
    )
    gen = b'"ab cd"' if final else b"null"
    return (
        b'data:{"index":%d,"token":{"id":42,"text":"ab","logprob":-0.5,"special":false},'
        b'"generated_text":%b,"details":%b}\n\n' % (i, gen, details)
    )


def chat_events(n: int, space: bool = False) -> list[bytes]:
    sep = b"data: " if space else b"data:"
    out = []
    for i in range(n):
        fin = b'"length"' if i == n - 1 else b"null"
        out.append(
            sep
            + b'{"object":"chat.completion.chunk","id":"","created":1,"model":"m","system_fingerprint":"x",'
            b'"choices":[{"index":0,"delta":{"role":"assistant","content":"t"},"logprobs":null,'
            b'"finish_reason":%b}],"usage":null}\n\n' % fin
        )
    out.append(
        sep + b'{"object":"chat.completion.chunk","id":"","created":1,"model":"m","choices":[],'
        b'"usage":{"prompt_tokens":7,"completion_tokens":%d,"total_tokens":%d}}\n\n' % (n, n + 7)
    )
    out.append(sep + b"[DONE]\n\n")
    return out


def feed_all(stream: apis.Stream, events: list[bytes]) -> None:
    for k, ev in enumerate(events):
        stream.feed(stream.t_send + 0.01 * (k + 1), ev.split(b"\n"))


# -- pure stream interpretation -----------------------------------------------------------------
def test_generate_stream_counts_and_details():
    s = apis.GenerateStreamStream(100.0)
    feed_all(s, [native_event(i, 5) for i in range(1, 6)] + [b":\n\n"])
    out = s.finish(True)
    assert out.error_type is None
    assert s.token_us == [10000, 20000, 30000, 40000, 50000]
    assert (out.server_output_tokens, out.server_input_tokens, out.finish_reason) == (5, 12, "length")


@pytest.mark.parametrize("space", [False, True])
def test_chat_stream_with_usage_and_done(space):
    s = apis.OpenAIStream(0.0)
    feed_all(s, chat_events(4, space) + [b": ping\n\n"])
    out = s.finish(True)
    assert out.error_type is None and s.done
    assert len(s.token_us) == 4 == out.server_output_tokens
    assert (out.server_input_tokens, out.finish_reason) == (7, "length")


# llama.cpp's llama-server (b1-0c1e570, from llama-cpp-python 0.3.36), captured: a role-only first
# chunk, content chunks, a finish-only chunk with an empty delta, then usage and [DONE].
LLAMACPP_CHAT = [
    b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],'
    b'"created":1,"id":"c","model":"m","system_fingerprint":"b1-0c1e570","object":"chat.completion.chunk"}',
    *[b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":"%b"}}],"created":1,"id":"c",'
      b'"model":"m","system_fingerprint":"b1-0c1e570","object":"chat.completion.chunk"}' % t
      for t in (b"Hello", b"!", b" How")],
    b'data: {"choices":[{"finish_reason":"length","index":0,"delta":{}}],"created":1,"id":"c","model":"m",'
    b'"system_fingerprint":"b1-0c1e570","object":"chat.completion.chunk"}',
    b'data: {"choices":[],"created":1,"id":"c","model":"m","system_fingerprint":"b1-0c1e570",'
    b'"object":"chat.completion.chunk","usage":{"completion_tokens":3,"prompt_tokens":31,"total_tokens":34}}',
    b"data: [DONE]",
]


def test_llamacpp_finish_only_chunk_is_not_a_token():
    s = apis.OpenAIStream(0.0)
    feed_all(s, [ev + b"\n\n" for ev in LLAMACPP_CHAT])
    out = s.finish(True)
    assert out.error_type is None and s.done
    assert len(s.token_us) == 4  # the role chunk (the vLLM convention) and 3 contents; not the finish
    assert (out.server_output_tokens, out.server_input_tokens, out.finish_reason) == (3, 31, "length")


@pytest.mark.parametrize(
    "name",
    [
        "test_chat_openai_usage.json",
        "test_chat_hfhub_usage.json",
        "test_flash_llama_completion_stream_usage.json",
    ],
)
def test_real_tgi_chat_snapshots(name):
    chunks = json.loads((SNAPSHOTS / name).read_text())
    events = [b"data:" + json.dumps(c, separators=(",", ":")).encode() + b"\n\n" for c in chunks]
    s = apis.OpenAIStream(0.0)
    feed_all(s, events + [b"data:[DONE]\n\n"])
    out = s.finish(True)
    usage = chunks[-1]["usage"]
    assert out.error_type is None
    assert len(s.token_us) == usage["completion_tokens"] == out.server_output_tokens  # "" tokens count
    assert out.server_input_tokens == usage["prompt_tokens"]


def test_real_tgi_completions_snapshot():
    chunks = json.loads((SNAPSHOTS / "test_flash_llama_completion_many_prompts_stream.json").read_text())
    events = [b"data:" + json.dumps(c).encode() + b"\n\n" for c in chunks]  # with spaces after ':'
    s = apis.OpenAIStream(0.0)
    feed_all(s, events + [b"data: [DONE]\n\n"])
    out = s.finish(True)
    assert out.error_type is None
    assert len(s.token_us) == sum(1 for c in chunks if c["choices"])


def test_native_error_event():
    s = apis.GenerateStreamStream(0.0)
    feed_all(
        s,
        [native_event(1, 9), native_event(2, 9), b'data:{"error":"CUDA OOM","error_type":"generation"}\n\n'],
    )
    out = s.finish(True)
    assert (out.error_type, out.error) == ("generation", "CUDA OOM")
    assert len(s.token_us) == 2


def test_openai_error_event_then_done():
    s = apis.OpenAIStream(0.0)
    ev = b'data: {"error":{"message":"Input validation error","http_status_code":422}}\n\ndata: [DONE]\n\n'
    feed_all(s, chat_events(2)[:1] + [ev])
    out = s.finish(True)
    assert out.error_type == "stream_error" and "validation" in out.error
    assert len(s.token_us) == 1


@pytest.mark.parametrize("complete", [True, False])
def test_missing_final_event_is_truncated(complete):
    s = apis.GenerateStreamStream(0.0)
    feed_all(s, [native_event(i, 9) for i in range(1, 4)])
    out = s.finish(complete)
    assert out.error_type == "truncated" and len(s.token_us) == 3
    c = apis.OpenAIStream(0.0)
    feed_all(c, chat_events(3)[:2])
    assert c.finish(complete).error_type == "truncated"


def test_malformed_event():
    s = apis.GenerateStreamStream(0.0)
    bad = native_event(2, 3)[:40] + b"\n\n"
    feed_all(s, [native_event(1, 3), bad, native_event(3, 3)])
    out = s.finish(True)
    assert out.error_type == "malformed" and len(s.token_us) == 3


def test_http_error_bodies():
    assert apis.http_error(429, b'{"error":"Model is overloaded","error_type":"overloaded"}') == (
        "overloaded", "HTTP 429: Model is overloaded")  # fmt: skip
    assert apis.http_error(500, b"<html>boom</html>")[0] == "http_500"
    assert apis.http_error(400, b'{"error":{"message":"bad","type":"invalid_request_error"}}')[0] == (
        "invalid_request_error")  # fmt: skip


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

    class ExplodingStream(apis.GenerateStreamStream):
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
