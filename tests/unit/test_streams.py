"""Stream interpretation (pure): what counts as a token, final events, error events and bodies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.http_script import native_event

from harness.client.streams import GenerateStreamStream, OpenAIStream, Stream, http_error

SNAPSHOTS = Path("/work/shared/reference/tgi/snapshots")


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


def feed_all(stream: Stream, events: list[bytes]) -> None:
    for k, ev in enumerate(events):
        stream.feed(stream.t_send + 0.01 * (k + 1), ev.split(b"\n"))


# -- tokens, final events, error events -----------------------------------------------------------------
def test_generate_stream_counts_and_details():
    s = GenerateStreamStream(100.0)
    feed_all(s, [native_event(i, 5) for i in range(1, 6)] + [b":\n\n"])
    out = s.finish(True)
    assert out.error_type is None
    assert s.token_us == [10000, 20000, 30000, 40000, 50000]
    assert (out.server_output_tokens, out.server_input_tokens, out.finish_reason) == (5, 12, "length")


@pytest.mark.parametrize("space", [False, True])
def test_chat_stream_with_usage_and_done(space):
    s = OpenAIStream(0.0)
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
    s = OpenAIStream(0.0)
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
    s = OpenAIStream(0.0)
    feed_all(s, events + [b"data:[DONE]\n\n"])
    out = s.finish(True)
    usage = chunks[-1]["usage"]
    assert out.error_type is None
    assert len(s.token_us) == usage["completion_tokens"] == out.server_output_tokens  # "" tokens count
    assert out.server_input_tokens == usage["prompt_tokens"]


def test_real_tgi_completions_snapshot():
    chunks = json.loads((SNAPSHOTS / "test_flash_llama_completion_many_prompts_stream.json").read_text())
    events = [b"data:" + json.dumps(c).encode() + b"\n\n" for c in chunks]  # with spaces after ':'
    s = OpenAIStream(0.0)
    feed_all(s, events + [b"data: [DONE]\n\n"])
    out = s.finish(True)
    assert out.error_type is None
    assert len(s.token_us) == sum(1 for c in chunks if c["choices"])


def test_native_error_event():
    s = GenerateStreamStream(0.0)
    feed_all(
        s,
        [native_event(1, 9), native_event(2, 9), b'data:{"error":"CUDA OOM","error_type":"generation"}\n\n'],
    )
    out = s.finish(True)
    assert (out.error_type, out.error) == ("generation", "CUDA OOM")
    assert len(s.token_us) == 2


def test_openai_error_event_then_done():
    s = OpenAIStream(0.0)
    ev = b'data: {"error":{"message":"Input validation error","http_status_code":422}}\n\ndata: [DONE]\n\n'
    feed_all(s, chat_events(2)[:1] + [ev])
    out = s.finish(True)
    assert out.error_type == "stream_error" and "validation" in out.error
    assert len(s.token_us) == 1


@pytest.mark.parametrize("complete", [True, False])
def test_missing_final_event_is_truncated(complete):
    s = GenerateStreamStream(0.0)
    feed_all(s, [native_event(i, 9) for i in range(1, 4)])
    out = s.finish(complete)
    assert out.error_type == "truncated" and len(s.token_us) == 3
    c = OpenAIStream(0.0)
    feed_all(c, chat_events(3)[:2])
    assert c.finish(complete).error_type == "truncated"


def test_malformed_event():
    s = GenerateStreamStream(0.0)
    bad = native_event(2, 3)[:40] + b"\n\n"
    feed_all(s, [native_event(1, 3), bad, native_event(3, 3)])
    out = s.finish(True)
    assert out.error_type == "malformed" and len(s.token_us) == 3


def test_http_error_bodies():
    assert http_error(429, b'{"error":"Model is overloaded","error_type":"overloaded"}') == (
        "overloaded", "HTTP 429: Model is overloaded")  # fmt: skip
    assert http_error(500, b"<html>boom</html>")[0] == "http_500"
    assert http_error(400, b'{"error":{"message":"bad","type":"invalid_request_error"}}')[0] == (
        "invalid_request_error")  # fmt: skip


def test_llamacpp_final_chunk_timings_and_id_reach_the_outcome():
    """llama-server puts its own timings of the request in the chunk that carries finish_reason."""
    final = (
        b'data: {"choices":[{"finish_reason":"length","index":0,"delta":{}}],"created":1,'
        b'"id":"chatcmpl-abc","model":"m","object":"chat.completion.chunk","usage":{"completion_tokens":3,'
        b'"prompt_tokens":9,"total_tokens":12},"timings":{"prompt_n":9,"prompt_ms":12.5,'
        b'"prompt_per_token_ms":1.39,"predicted_n":3,"predicted_ms":30.0,"predicted_per_token_ms":10.0,'
        b'"predicted_per_second":100.0}}\n\n'
    )
    s = OpenAIStream(100.0)
    feed_all(s, chat_events(3)[:-2] + [final, b"data: [DONE]\n\n"])
    out = s.finish(True)
    assert out.error_type is None
    assert out.server_timings["predicted_per_token_ms"] == 10.0 and out.server_timings["prompt_ms"] == 12.5
    assert out.server_request_id == "chatcmpl-abc"
    plain = OpenAIStream(100.0)
    feed_all(plain, chat_events(3))
    out = plain.finish(True)
    assert out.server_timings is None and out.server_request_id is None  # TGI's chat chunks: id ""
