"""The streaming users against the TGI emulator's exact profile: timing truth, counts, faults (the
same users under Locust: test_users_locust.py).

Tolerances are loose upper bounds on lateness (the machine is shared), never speed assertions.
"""

from __future__ import annotations

import statistics

import pytest
from support.http_script import assert_unclumped, gaps_ms, stamps_1k_reader, stamps_line_reader

from harness.client import apis
from harness.client.transport import Connection
from harness.workload.prompts import PromptBuilder, PromptSpec
from harness.workload.tokenizer import load_tokenizer

pytestmark = pytest.mark.integration
TTFT_MS, ITL_MS = 50.0, 20.0


@pytest.fixture(scope="module")
def emu(exact_emulator):
    """The session's exact-profile emulator (tests/integration/conftest.py), its paths warmed."""
    assert exact_emulator.args == ["--ttft-ms", str(TTFT_MS), "--itl-ms", str(ITL_MS)]
    for api in (apis.GenerateStream(), apis.ChatCompletions(), apis.Completions()):
        send(exact_emulator.url, api, max_new_tokens=2)  # warm the emulator's code paths
    return exact_emulator


def late_ms(emu) -> float:
    """The emulator's worst lateness (token written after its deadline) since the last reset:
    the truth our stamps are compared with is the configured time plus that."""
    return max(0.0, emu.stats()["lateness_ms"]["max"])


@pytest.fixture(scope="module")
def prompts():
    tok = load_tokenizer()
    spec = PromptSpec(input_mean=120, input_stddev=40, output_mean=12, output_stddev=0, size=4, seed=5)
    return {chat: PromptBuilder(tok, chat).build(spec) for chat in (False, True)}


def send(url: str, api: apis.Api, text: str = "Hello", max_new_tokens: int = 12, timeout: float = 10.0,
         input_tokens: int | None = None):  # fmt: skip
    records = []
    with Connection(url, timeout=timeout) as conn:
        body = api.body(text, max_new_tokens)
        rec, _ = apis.run_request(conn, api, body, records.append, "t", input_tokens, max_new_tokens)
    assert records == [rec]  # exactly one record per request
    return rec


@pytest.mark.parametrize("api_cls", [apis.GenerateStream, apis.ChatCompletions, apis.Completions])
def test_ttft_and_itl_match_the_configured_truth(emu, prompts, api_cls):
    emu.reset()
    recs = [send(emu.url, api_cls(), p.text, p.max_new_tokens) for p in prompts[api_cls.chat][:3]]
    slack = 5 + late_ms(emu)  # a few ms, plus whatever the shared machine made the emulator late by
    for rec in recs:
        assert rec.ok, rec.error
        ttft = rec.token_us[0] / 1000
        gaps = [(b - a) / 1000 for a, b in zip(rec.token_us, rec.token_us[1:], strict=False)]
        assert TTFT_MS - 1 <= ttft <= TTFT_MS + slack, (ttft, slack)
        assert statistics.median(gaps) == pytest.approx(ITL_MS, abs=3), gaps
        itl = (rec.token_us[-1] - rec.token_us[0]) / 1000 / (len(rec.token_us) - 1)
        assert itl == pytest.approx(ITL_MS, abs=3 + slack / (len(gaps))), (itl, slack)


@pytest.mark.parametrize("reader", ["line", "iter_content_1k"])
def test_few_byte_tokens_20ms_apart(emu, reader):
    """Tokens of a few bytes, 20 ms apart: a 1 KB-buffering reader clumps them, ours does not."""
    n = 40
    body = apis.GenerateStream().body("Hello", n)
    headers = {"Content-Type": "application/json", "X-Emulator-Timing": f"ttft_ms={TTFT_MS};itl_ms={ITL_MS}"}
    if reader == "line":
        emu.reset()
        stamps = stamps_line_reader(emu.url, body, headers)
        assert_unclumped(stamps, ITL_MS, n)
        assert TTFT_MS - 1 <= stamps[0] * 1000 <= TTFT_MS + 5 + late_ms(emu)
    else:
        stamps = stamps_1k_reader(emu.url, body, headers)
        with pytest.raises(AssertionError):
            assert_unclumped(stamps, ITL_MS, n)
        assert sum(g < 2 for g in gaps_ms(stamps)) > n / 2


@pytest.mark.parametrize("api_cls", [apis.GenerateStream, apis.ChatCompletions, apis.Completions])
def test_token_counts_equal_the_servers(emu, prompts, api_cls):
    for p in prompts[api_cls.chat]:
        rec = send(emu.url, api_cls(), p.text, p.max_new_tokens, input_tokens=p.input_tokens)
        assert rec.ok, rec.error
        assert rec.output_tokens == rec.server_output_tokens == p.max_new_tokens
        assert rec.input_tokens == rec.server_input_tokens  # same tokenizer on both sides
        assert rec.finish_reason == "length"


@pytest.mark.parametrize(
    "fault, error_type, tokens",
    [
        ("error=generation;after=3", "generation", 3),
        ("error=overloaded", "overloaded", 0),
        ("error=validation", "validation", 0),
        ("disconnect=5", "truncated", 5),
        ("stall_ms=3000;after=2", "timeout", 2),
        ("malformed=3", "malformed", 12),
    ],
)
def test_each_fault_yields_one_failed_record(emu, fault, error_type, tokens):
    rec = send(emu.url, apis.GenerateStream(headers={"X-Emulator-Fault": fault}), timeout=1.0)
    assert (rec.error_type, rec.output_tokens, rec.status) == (error_type, tokens, 200)
    assert rec.error


@pytest.mark.parametrize("api_cls", [apis.ChatCompletions, apis.Completions])
def test_openai_error_event_and_disconnect(emu, api_cls):
    rec = send(emu.url, api_cls(headers={"X-Emulator-Fault": "error=generation;after=2"}))
    assert (rec.error_type, rec.output_tokens) == ("stream_error", 2)
    rec = send(emu.url, api_cls(headers={"X-Emulator-Fault": "disconnect=4"}))
    assert (rec.error_type, rec.output_tokens) == ("truncated", 4)
    rec = send(emu.url, api_cls(headers={"X-Emulator-Fault": "malformed=3"}))
    assert rec.error_type == "malformed" and b'"choices":' in rec.error.encode()  # cut in its own shape
