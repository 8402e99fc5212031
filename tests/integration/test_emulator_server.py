"""The emulator over HTTP: TGI's bytes on the wire, schemas, validation, overload, faults, stats."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from harness.targets.emulator_process import EmulatorProcess

REF = Path("/work/shared/reference/tgi")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def emu():
    env = {
        "MAX_INPUT_TOKENS": "100",
        "MAX_TOTAL_TOKENS": "200",
        "MAX_CONCURRENT_REQUESTS": "4",
        "MODEL_ID": "test/model",
    }
    with EmulatorProcess(profile="fast", env=env, args=["--sse-keepalive-s", "0.4"]) as e:
        yield e


# -- a raw HTTP/1.1 client: we want the bytes exactly as sent ---------------------------------


def raw_request(
    url: str,
    method: str,
    path: str,
    body: dict | None = None,
    headers: dict | None = None,
    timeout: float = 20.0,
) -> tuple[int, dict, bytes]:
    """Send one request with `connection: close`; return status, headers, raw (still chunked) body."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    data = json.dumps(body).encode() if body is not None else b""
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    req = (
        f"{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\ncontent-type: application/json\r\n"
        f"content-length: {len(data)}\r\n{extra}\r\n"
    ).encode() + data
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(req)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    raw = b"".join(chunks)
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, hdrs, rest


def dechunk(body: bytes) -> list[bytes]:
    """Split a chunked body into its frames; asserts the framing is valid and terminated."""
    frames, i = [], 0
    while True:
        j = body.index(b"\r\n", i)
        size = int(body[i:j], 16)
        if size == 0:
            assert body[j + 2 :] == b"\r\n"
            return frames
        frames.append(body[j + 2 : j + 2 + size])
        assert body[j + 2 + size : j + 4 + size] == b"\r\n"
        i = j + 4 + size


def events(frames: list[bytes]) -> list[bytes]:
    out = []
    for f in frames:
        assert f.endswith(b"\n\n")
        if f.startswith(b"data:"):
            out.append(f[5:-2])
    return out


# -- a tiny OpenAPI schema checker (type, nullable, required, properties, items, $ref, allOf, oneOf) --

SPEC = json.loads((REF / "openapi.json").read_text())


def check(value, schema: dict, path: str = "$") -> None:
    if "$ref" in schema:
        return check(value, SPEC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]], path)
    if value is None:
        assert schema.get("nullable"), f"{path}: null not allowed"
        return
    if "allOf" in schema:
        for sub in schema["allOf"]:
            check(value, sub, path)
        return
    if "oneOf" in schema:
        errors = []
        for sub in schema["oneOf"]:
            try:
                check(value, sub, path)
                return
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(f"{path}: matches no oneOf: {errors}")
    t = schema.get("type")
    types = {
        "object": dict,
        "array": list,
        "string": str,
        "boolean": bool,
        "integer": int,
        "number": (int, float),
    }
    if t:
        assert isinstance(value, types[t]) and not (t in ("integer", "number") and isinstance(value, bool)), (
            f"{path}: {value!r} is not {t}"
        )
    if t == "integer" and "minimum" in schema:
        assert value >= schema["minimum"], path
    if t == "object":
        for key in schema.get("required", []):
            assert key in value, f"{path}: missing {key}"
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                check(value[key], sub, f"{path}.{key}")
    if t == "array" and "items" in schema:
        for i, item in enumerate(value):
            check(item, schema["items"], f"{path}[{i}]")


def schema(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


# -- tests -----------------------------------------------------------------------------------


def test_generate_stream_bytes_exactly_as_tgi(emu):
    status, hdrs, body = raw_request(
        emu.url,
        "POST",
        "/generate_stream",
        {"inputs": "Hello there", "parameters": {"max_new_tokens": 5, "details": True}},
    )
    assert status == 200
    assert hdrs["content-type"] == "text/event-stream"
    assert hdrs["transfer-encoding"] == "chunked"
    assert hdrs["cache-control"] == "no-cache"
    frames = dechunk(body)
    assert all(f.startswith(b"data:{") and f.endswith(b"}\n\n") for f in frames)  # no space after data:
    evs = [json.loads(e) for e in events(frames)]
    assert [e["index"] for e in evs] == [1, 2, 3, 4, 5]
    for e in evs:
        check(e, schema("StreamResponse"))
        assert list(e) == ["index", "token", "generated_text", "details"]  # serde field order
        assert list(e["token"]) == ["id", "text", "logprob", "special"]
    assert all(e["generated_text"] is None and e["details"] is None for e in evs[:-1])
    last = evs[-1]
    assert last["generated_text"] == "".join(e["token"]["text"] for e in evs)
    assert list(last["details"]) == ["finish_reason", "generated_tokens", "seed", "input_length"]
    assert last["details"] == {
        "finish_reason": "length",
        "generated_tokens": 5,
        "seed": None,
        "input_length": 3,
    }
    # the raw bytes of one event, byte for byte
    t = evs[0]["token"]
    expected = (
        b'data:{"index":1,"token":{"id":%d,"text":%s,"logprob":%s,"special":false},'
        b'"generated_text":null,"details":null}\n\n'
    ) % (t["id"], json.dumps(t["text"], ensure_ascii=False).encode(), repr(t["logprob"]).encode())
    assert frames[0] == expected


def test_tokens_are_real_tokenizer_tokens(emu):
    from harness.workload.tokenizer import load_tokenizer

    tok = load_tokenizer()
    _, _, body = raw_request(
        emu.url,
        "POST",
        "/generate_stream",
        {"inputs": "x", "parameters": {"max_new_tokens": 20, "details": True}},
    )
    evs = [json.loads(e) for e in events(dechunk(body))]
    ids = [e["token"]["id"] for e in evs]
    assert [tok.piece(i) for i in ids] == [e["token"]["text"] for e in evs]
    assert evs[-1]["details"]["generated_tokens"] == 20


def test_generate_non_stream_schema_and_timing_headers(emu):
    status, hdrs, body = raw_request(
        emu.url,
        "POST",
        "/generate",
        {"inputs": "Hello", "parameters": {"max_new_tokens": 4, "details": True}},
    )
    assert status == 200
    resp = json.loads(body)
    check(resp, schema("GenerateResponse"))
    assert resp["details"]["generated_tokens"] == 4 and len(resp["details"]["tokens"]) == 4
    for h in (
        "x-compute-time",
        "x-total-time",
        "x-validation-time",
        "x-queue-time",
        "x-inference-time",
        "x-time-per-token",
        "x-prompt-tokens",
        "x-generated-tokens",
        "x-compute-type",
    ):
        assert h in hdrs
    assert hdrs["x-generated-tokens"] == "4" and hdrs["x-prompt-tokens"] == "2"


def test_missing_max_new_tokens_fills_to_max_total(emu):
    status, _, body = raw_request(
        emu.url, "POST", "/generate", {"inputs": "Hello", "parameters": {"details": True}}
    )
    assert status == 200
    assert json.loads(body)["details"]["generated_tokens"] == 200 - 2


def test_info_health_models_tokenize(emu):
    status, _, body = raw_request(emu.url, "GET", "/info")
    info = json.loads(body)
    check(info, schema("Info"))
    assert info["model_id"] == "test/model"
    assert (info["max_input_tokens"], info["max_total_tokens"], info["max_concurrent_requests"]) == (
        100,
        200,
        4,
    )
    assert raw_request(emu.url, "GET", "/health")[0] == 200
    models = json.loads(raw_request(emu.url, "GET", "/v1/models")[2])
    assert models["data"][0]["id"] == "test/model"
    toks = json.loads(raw_request(emu.url, "POST", "/tokenize", {"inputs": "Hello world"})[2])
    assert [t["id"] for t in toks] == [128000, 9906, 1917]
    for t in toks:
        check(t, schema("SimpleToken"))
    assert raw_request(emu.url, "GET", "/nope")[0] == 404


def _snapshot(name: str):
    return json.loads((REF / "snapshots" / name).read_text())


# fields the recorded snapshots carry only because the Python clients that recorded them add them
CLIENT_ADDED = {
    "tool_calls",
    "function_call",
    "refusal",
    "service_tier",
    "completion_tokens_details",
    "prompt_tokens_details",
}


def same_shape(ours, ref, path="$"):
    """Keys and JSON types agree (our keys ⊆ snapshot keys; snapshot extras only client-added nulls)."""
    if isinstance(ref, dict):
        assert isinstance(ours, dict), path
        assert set(ours) <= set(ref), f"{path}: extra keys {set(ours) - set(ref)}"
        assert set(ref) - set(ours) <= CLIENT_ADDED, f"{path}: missing {set(ref) - set(ours)}"
        for k in ours:
            if ref[k] is not None and ours[k] is not None:
                same_shape(ours[k], ref[k], f"{path}.{k}")
    elif isinstance(ref, list):
        assert isinstance(ours, list), path
        if ref and ours:
            same_shape(ours[0], ref[0], f"{path}[0]")
    else:
        assert type(ours) is type(ref) or {type(ours), type(ref)} <= {int, float}, (
            f"{path}: {ours!r} vs {ref!r}"
        )


def test_chat_stream_chunks_match_snapshot_with_usage(emu):
    body = {
        "model": "tgi",
        "messages": [{"role": "user", "content": "Say OK"}],
        "max_tokens": 3,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    status, _, raw = raw_request(emu.url, "POST", "/v1/chat/completions", body)
    assert status == 200
    evs = events(dechunk(raw))
    assert evs[-1] == b"[DONE]"
    chunks = [json.loads(e) for e in evs[:-1]]
    ref = _snapshot("test_chat_hfhub_usage.json")
    assert len(chunks) == len(ref) == 4
    for ours, theirs in zip(chunks, ref, strict=True):
        same_shape(ours, theirs)
        assert list(ours)[0] == "object"
    assert [c["choices"][0]["finish_reason"] for c in chunks[:3]] == [None, None, "length"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3
    from harness.workload.tokenizer import load_tokenizer

    assert chunks[-1]["usage"]["prompt_tokens"] == load_tokenizer().count_chat(body["messages"])
    for c in chunks[:3]:
        check(c, schema("ChatCompletionChunk"))


def test_completions_stream_and_non_stream(emu):
    status, _, raw = raw_request(
        emu.url,
        "POST",
        "/v1/completions",
        {"model": "tgi", "prompt": "Deep learning", "max_tokens": 4, "stream": True},
    )
    evs = events(dechunk(raw))
    assert evs[-1] == b"[DONE]"
    chunks = [json.loads(e) for e in evs[:-1]]
    ref = _snapshot("test_flash_llama_completion_many_prompts_stream.json")
    for c in chunks[:-1]:
        same_shape(c, {k: v for k, v in ref[0].items() if k != "usage"})
        assert c["choices"][0]["finish_reason"] == ""
    same_shape(chunks[-1], ref[-1])
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    status, _, raw = raw_request(
        emu.url, "POST", "/v1/completions", {"model": "tgi", "prompt": "Deep learning", "max_tokens": 4}
    )
    resp = json.loads(raw)
    same_shape(resp, _snapshot("test_flash_llama_completion_single_prompt.json"))
    status, _, raw = raw_request(
        emu.url,
        "POST",
        "/v1/chat/completions",
        {"model": "tgi", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
    )
    resp = json.loads(raw)
    check(resp, schema("ChatCompletion"))
    assert resp["usage"]["completion_tokens"] == 4


def test_validation_errors_like_tgi(emu):
    long_prompt = "word " * 149 + "word"  # BOS + 150 tokens
    status, _, body = raw_request(
        emu.url, "POST", "/generate", {"inputs": long_prompt, "parameters": {"max_new_tokens": 100}}
    )
    assert status == 422
    err = json.loads(body)
    check(err, schema("ErrorResponse"))
    assert err["error_type"] == "validation"
    assert err["error"].startswith(
        "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 200."
    )
    status, _, body = raw_request(
        emu.url, "POST", "/generate", {"inputs": long_prompt, "parameters": {"max_new_tokens": 10}}
    )
    assert json.loads(body)["error"] == (
        "Input validation error: `inputs` must have less than 100 tokens. Given: 151"
    )
    status, _, body = raw_request(
        emu.url, "POST", "/generate", {"inputs": "hi", "parameters": {"max_new_tokens": 199}}
    )
    assert status == 422 and "Given: 2 `inputs` tokens and 199 `max_new_tokens`" in json.loads(body)["error"]
    # on a stream: HTTP 200 and an error event
    status, _, raw = raw_request(
        emu.url, "POST", "/generate_stream", {"inputs": "hi", "parameters": {"max_new_tokens": 199}}
    )
    assert status == 200
    ev = json.loads(events(dechunk(raw))[0])
    assert list(ev) == ["error", "error_type"] and ev["error_type"] == "validation"


def test_overload_beyond_max_concurrent_requests(emu):
    socks = []
    host, port = emu.url.split("//")[1].rsplit(":", 1)
    body = json.dumps({"inputs": "hi", "parameters": {"max_new_tokens": 5}}).encode()
    for _ in range(4):  # MAX_CONCURRENT_REQUESTS=4, each held ~5 s by its own slow clock
        s = socket.create_connection((host, int(port)))
        s.sendall(
            b"POST /generate_stream HTTP/1.1\r\ncontent-length: %d\r\nx-emulator-timing: ttft_ms=5000;"
            b"itl_ms=10\r\n\r\n%b" % (len(body), body)
        )
        socks.append(s)
    deadline = time.time() + 10
    while emu.stats()["active_streams"] < 4 and time.time() < deadline:
        time.sleep(0.05)
    try:
        status, _, raw = raw_request(
            emu.url, "POST", "/generate", {"inputs": "hi", "parameters": {"max_new_tokens": 2}}
        )
        assert status == 429
        assert json.loads(raw) == {"error": "Model is overloaded", "error_type": "overloaded"}
        status, _, raw = raw_request(
            emu.url, "POST", "/generate_stream", {"inputs": "hi", "parameters": {"max_new_tokens": 2}}
        )
        assert status == 200
        assert json.loads(events(dechunk(raw))[0])["error_type"] == "overloaded"
    finally:
        for s in socks:
            s.close()
    deadline = time.time() + 10
    while emu.stats()["active_streams"] > 0 and time.time() < deadline:
        time.sleep(0.05)
    assert emu.stats()["active_streams"] == 0  # client disconnects free their places


def test_fault_headers(emu):
    gen = {"inputs": "hi", "parameters": {"max_new_tokens": 6}}
    _, _, raw = raw_request(
        emu.url, "POST", "/generate_stream", gen, {"X-Emulator-Fault": "error=generation;after=3"}
    )
    evs = events(dechunk(raw))
    assert len(evs) == 4 and json.loads(evs[3])["error_type"] == "generation"
    status, _, raw = raw_request(emu.url, "POST", "/generate", gen, {"X-Emulator-Fault": "error=generation"})
    assert status == 424
    _, _, raw = raw_request(emu.url, "POST", "/generate_stream", gen, {"X-Emulator-Fault": "malformed=2"})
    evs = events(dechunk(raw))
    assert len(evs) == 6
    with pytest.raises(json.JSONDecodeError):
        json.loads(evs[1])
    _, _, raw = raw_request(emu.url, "POST", "/generate_stream", gen, {"X-Emulator-Fault": "disconnect=2"})
    assert not raw.endswith(b"0\r\n\r\n") and raw.count(b"data:") == 2
    t0 = time.perf_counter()
    _, _, raw = raw_request(
        emu.url, "POST", "/generate_stream", gen, {"X-Emulator-Fault": "stall_ms=800;after=2"}
    )
    assert time.perf_counter() - t0 >= 0.8 and raw.count(b"data:") == 6
    status, _, raw = raw_request(emu.url, "POST", "/generate", gen, {"X-Emulator-Fault": "bogus=1"})
    assert status == 422


def test_server_faults_set_at_run_time(emu):
    """POST /emulator/faults: the flags' server-wide faults from now on (`after` counted from now),
    a bad key refused with 422, `{}` all off again."""
    gen = {"inputs": "hi", "parameters": {"max_new_tokens": 2}}
    try:
        status, _, raw = raw_request(emu.url, "POST", "/emulator/faults",
                                     {"http_status": 503, "retry_after": "2", "after": 1})
        assert status == 200 and json.loads(raw)["http_status"] == 503, raw
        assert raw_request(emu.url, "POST", "/generate", gen)[0] == 200  # the one `after` lets pass
        status, headers, raw = raw_request(emu.url, "POST", "/generate", gen)
        assert status == 503 and headers.get("retry-after") == "2", (status, headers)
        assert json.loads(raw)["error_type"] == "unhealthy"
        status, _, raw = raw_request(emu.url, "POST", "/emulator/faults", {"http_stauts": 500})
        assert status == 422 and b"http_stauts" in raw
    finally:
        assert raw_request(emu.url, "POST", "/emulator/faults", {})[0] == 200
    assert raw_request(emu.url, "POST", "/generate", gen)[0] == 200


def test_timing_header_gives_exact_clock(emu):
    t0 = time.perf_counter()
    _, _, raw = raw_request(
        emu.url,
        "POST",
        "/generate_stream",
        {"inputs": "hi", "parameters": {"max_new_tokens": 3}},
        {"X-Emulator-Timing": "ttft_ms=300;itl_ms=100"},
    )
    assert time.perf_counter() - t0 >= 0.5
    assert raw.count(b"data:") == 3


def test_stamps_header_puts_arrival_and_first_token_write_in_the_last_completion_chunk(emu):
    """X-Emulator-Stamps (bench/client_tail.py's per-request truth): when the request was taken and
    its first token written, on the monotonic clock the client's perf_counter reads; without the
    header the chunk is unchanged."""
    body = {"model": "tgi", "prompt": "Deep learning", "max_tokens": 3, "stream": True}
    t_send = time.perf_counter()
    _, _, raw = raw_request(emu.url, "POST", "/v1/completions", body,
                            {"X-Emulator-Stamps": "1", "X-Emulator-Timing": "ttft_ms=40;itl_ms=1"})
    t_done = time.perf_counter()
    last = json.loads(events(dechunk(raw))[-2])
    stamps = last["timings"]
    assert set(stamps) == {"emulator_received_s", "emulator_first_token_s"}
    assert t_send < stamps["emulator_received_s"] < stamps["emulator_first_token_s"] < t_done
    assert stamps["emulator_first_token_s"] - stamps["emulator_received_s"] >= 0.040
    _, _, plain = raw_request(emu.url, "POST", "/v1/completions", body,
                              {"X-Emulator-Timing": "ttft_ms=1;itl_ms=1"})
    assert "timings" not in json.loads(events(dechunk(plain))[-2])


def test_sse_keepalive_comment_after_silence(emu):
    _, _, raw = raw_request(
        emu.url,
        "POST",
        "/generate_stream",
        {"inputs": "hi", "parameters": {"max_new_tokens": 2}},
        {"X-Emulator-Timing": "ttft_ms=1500;itl_ms=10"},
    )
    frames = dechunk(raw)
    assert b":\n\n" in frames  # --sse-keepalive-s 0.4 in this fixture (TGI: 15 s)


def test_stats_metrics_and_reset(emu):
    raw_request(emu.url, "POST", "/generate_stream", {"inputs": "hi", "parameters": {"max_new_tokens": 3}})
    st = emu.stats()
    for key in (
        "lateness_ms",
        "token_events",
        "active_streams",
        "requests_total",
        "requests_failed",
        "queue_size",
        "uptime_s",
    ):
        assert key in st
    assert {"p50", "p99", "max"} <= set(st["lateness_ms"])
    assert st["token_events"] >= 3
    after = emu.reset()
    assert after["token_events"] == 0 and after["requests_total"] == 0
    _, _, text = raw_request(emu.url, "GET", "/metrics")
    text = text.decode()
    for name in (
        "tgi_queue_size",
        "tgi_batch_current_size",
        "tgi_request_duration_bucket",
        "tgi_request_queue_duration_bucket",
        "tgi_request_generated_tokens_bucket",
        "tgi_request_failure",
        "tgi_request_count",
    ):
        assert name in text


def test_keep_alive_connection_serves_several_requests(emu):
    host, port = emu.url.split("//")[1].rsplit(":", 1)
    body = json.dumps({"inputs": "hi", "parameters": {"max_new_tokens": 2}}).encode()
    req = b"POST /generate_stream HTTP/1.1\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        for _ in range(3):
            s.sendall(req)
            buf = b""
            while not buf.endswith(b"0\r\n\r\n"):
                buf += s.recv(65536)
            assert buf.count(b"data:") == 2
