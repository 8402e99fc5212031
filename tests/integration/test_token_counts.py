"""Tokens versus token events against the emulator's exact profile with the `tokens_per_event` fault
(one SSE event per 3 tokens, as speculative or multi-step decoding servers send), and the
connection facts each record keeps."""

from __future__ import annotations

import pytest

from harness.analysis import metrics
from harness.analysis.attribution import Window
from harness.client import apis
from harness.client.transport import Connection
from harness.config.model import Flags
from harness.report.flags import step_flags
from harness.report.inputs import StepInfo

pytestmark = pytest.mark.integration
FAULT = {"X-Emulator-Fault": "tokens_per_event=3"}


@pytest.mark.parametrize("api_cls", [apis.GenerateStream, apis.ChatCompletions, apis.Completions])
def test_server_count_is_the_token_count_and_events_stay_beside_it(exact_emulator, api_cls) -> None:
    records: list = []
    with Connection(exact_emulator.url, timeout=10.0) as conn:
        api = api_cls(headers=FAULT)
        rec, _ = apis.run_request(conn, api, api.body("Hello", 12), records.append, "t", None, 12)
    assert rec.ok, rec.error
    assert rec.server_output_tokens == 12
    assert rec.output_tokens == 4  # events after tokens 3, 6, 9 and the final one (12)
    assert metrics.output_tokens(rec) == 12 and metrics.token_count_differs(rec)
    # per-token figures divide by tokens, not events
    assert metrics.e2e_per_token_s(rec) == pytest.approx(metrics.e2e_s(rec) / 12)
    assert metrics.itl_s(rec) == pytest.approx((rec.token_us[-1] - rec.token_us[0]) / 1e6 / 11)
    m = metrics.step_metrics(0, 1, [rec], [rec], Window(rec.wall_start, rec.wall_end + 1), None)
    assert m.mean_output_tokens == 12 and m.mean_output_events == 4 and m.token_count_differs == 1
    flags = step_flags(StepInfo(step=0, users=1, window=Window(0, 1)), m, Flags(min_samples=0))
    assert any(f.startswith("tokens ≠ events") for f in flags), flags


def test_a_plain_stream_has_as_many_events_as_tokens(exact_emulator) -> None:
    records: list = []
    with Connection(exact_emulator.url, timeout=10.0) as conn:
        api = apis.GenerateStream()
        first, _ = apis.run_request(conn, api, api.body("Hello", 6), records.append, "t", None, 6)
        second, _ = apis.run_request(conn, api, api.body("Hello", 6), records.append, "t", None, 6)
    assert first.output_tokens == first.server_output_tokens == 6 and not metrics.token_count_differs(first)
    # the connection facts: the first request connected, the second reused the kept-alive socket
    assert first.reused is False and first.connect_s is not None and first.connect_s > 0
    assert second.reused is True and second.connect_s == 0.0
    for rec in (first, second):
        # TGI-like servers send the head before the first token: headers → first token is queue + prefill
        assert rec.headers_us is not None and 0 <= rec.headers_us <= rec.token_us[0]
        # wall_start is the send instant: a second request starts after the first one ended
    assert second.wall_start >= first.wall_end - 1e-3
