"""Metric definitions on hand-made records (numbers worked out by hand)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from harness.analysis import attribution, metrics
from harness.analysis.metrics import Window
from harness.records.record import Record


def rec(
    ttft: float = 1.0,
    gap: float = 0.05,
    n: int = 11,
    tail: float = 0.0,
    error: str | None = None,
    wall_start: float = 1000.0,
    step: int | None = 0,
    phase: str = "measure",
    **kw,
) -> Record:
    tokens = tuple(round((ttft + i * gap) * 1e6) for i in range(n)) if error is None else ()
    e2e = (ttft + (n - 1) * gap + tail) if error is None else 0.5
    base = dict(
        request_id="r",
        worker="h:1",
        api="generate_stream",
        step=step,
        users=1,
        wall_start=wall_start,
        t_send=10.0,
        t_end=10.0 + e2e,
        token_us=tokens,
        input_tokens=550,
        server_input_tokens=None,
        output_tokens=len(tokens),
        server_output_tokens=len(tokens) or None,
        max_new_tokens=n,
        finish_reason="length",
        status=200,
        error_type=error,
        phase=phase,
    )
    base.update(kw)
    return Record(**base)


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 99, 99.9, 100])
def test_percentile_matches_numpy_linear(q: float) -> None:
    rng = random.Random(3)
    for n in (1, 2, 3, 10, 101):
        xs = [rng.expovariate(1.0) for _ in range(n)]
        assert metrics.percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)), rel=1e-12)


def test_percentile_empty_is_nan() -> None:
    assert math.isnan(metrics.percentile([], 50))
    with pytest.raises(ValueError):
        metrics.percentile([1.0], 101)


def test_per_request_definitions() -> None:
    r = rec(ttft=1.0, gap=0.05, n=11)  # tokens at 1.0, 1.05, ..., 1.5; E2E 1.5
    assert metrics.ttft_s(r) == pytest.approx(1.0)
    assert metrics.e2e_s(r) == pytest.approx(1.5)
    assert metrics.itl_s(r) == pytest.approx(0.05)  # (1.5 − 1.0) / 10
    assert metrics.e2e_per_token_s(r) == pytest.approx(1.5 / 11)  # llmperf: includes TTFT
    assert metrics.gaps_s(r) == pytest.approx([0.05] * 10)
    assert metrics.max_gap_s(r) == pytest.approx(0.05)
    assert metrics.output_tps(r) == pytest.approx(11 / 1.5)


def test_itl_uses_the_last_token_not_the_end_of_the_body() -> None:
    r = rec(ttft=1.0, gap=0.05, n=11, tail=0.1)  # the body closes 100 ms after the last token
    assert metrics.itl_s(r) == pytest.approx(0.5 / 10)


def test_per_token_figures_use_the_servers_count_when_events_carry_several_tokens() -> None:
    # 4 events (every third token, as a speculative-decoding server sends them); the server says 12
    r = rec(ttft=1.0, gap=0.06, n=4, server_output_tokens=12)
    assert metrics.output_tokens(r) == 12 and r.output_tokens == 4 and metrics.token_count_differs(r)
    assert metrics.itl_s(r) == pytest.approx(0.18 / 11)
    assert metrics.e2e_per_token_s(r) == pytest.approx(1.18 / 12)
    assert metrics.output_tps(r) == pytest.approx(12 / 1.18)
    # throughput: each event weighs 3 tokens
    assert metrics.aggregate_output_tps([r], Window(1000.0, 1010.0)) == pytest.approx(12 / 10)
    # a role-only event (vLLM, llama.cpp) is one more event than tokens: not flagged
    assert not metrics.token_count_differs(rec(n=5, server_output_tokens=4))
    assert metrics.output_tokens(rec(n=5, server_output_tokens=None)) == 5  # no server count: events


def test_coalesced_events_are_those_stamped_with_the_previous_read() -> None:
    r = rec(token_us=(100, 100, 250, 400, 400, 400), n=6)
    assert metrics.coalesced_events(r) == 3


def test_stall_shows_in_max_gap_and_pooled_gaps() -> None:
    r = Record(
        **dict(
            request_id="x",
            worker="h:1",
            api="generate_stream",
            step=0,
            users=1,
            wall_start=0.0,
            t_send=0.0,
            t_end=2.0,
            token_us=(100_000, 150_000, 1_150_000, 1_200_000),
            input_tokens=10,
            server_input_tokens=None,
            output_tokens=4,
            server_output_tokens=4,
            max_new_tokens=4,
            finish_reason="length",
            status=200,
            error_type=None,
        )
    )
    assert metrics.max_gap_s(r) == pytest.approx(1.0)
    s = metrics.latency_samples([r])
    assert sorted(s["gap"]) == pytest.approx([0.05, 0.05, 1.0])


def test_single_token_and_failed_requests() -> None:
    one = rec(n=1)
    assert metrics.itl_s(one) is None and metrics.max_gap_s(one) is None
    bad = rec(error="overloaded")
    assert metrics.ttft_s(bad) is None
    s = metrics.latency_samples([one, bad])
    assert s["ttft"] == [pytest.approx(1.0)] and s["itl"] == [] and len(s["e2e"]) == 1


def test_aggregate_throughput_counts_token_arrivals_of_successes_in_window() -> None:
    w = Window(1000.0, 1010.0)
    inside = rec(n=100, wall_start=1000.0)  # tokens at 1001.0 .. 1005.95: all 100 inside
    late = rec(n=100, wall_start=1008.0)  # tokens from 1009.0: 20 arrive before 1010
    early_sent = rec(n=100, wall_start=995.0, phase="warmup")  # tokens 996.0 .. 1000.95: last 20 inside
    failed = rec(error="overloaded", wall_start=1001.0, output_tokens=80)  # errors never count as tokens
    recs = [inside, late, early_sent, failed]
    assert metrics.tokens_in(late, w) == 20 and metrics.tokens_in(early_sent, w) == 20
    assert metrics.aggregate_output_tps(recs, w) == pytest.approx(140 / 10)
    assert metrics.completed_output_tps(recs, w) == pytest.approx(200 / 10)  # inside + early_sent
    assert metrics.requests_per_minute(recs, w) == pytest.approx(2 * 6)


def test_measured_records_rule() -> None:
    close = 1040.0  # the window closed at 1020; the cool-down ended the step at 1040
    ok = rec(wall_start=1001.0)  # sent in the window, completes inside
    from_warmup = rec(wall_start=999.0, phase="warmup")  # sent before the window: never
    ramp = rec(wall_start=999.5, phase="ramp")  # sent while users were being added: never
    straddles = rec(wall_start=1019.0)  # still in flight when the window closes: counts all the same
    cooldown = rec(wall_start=1021.0, phase="cooldown")  # sent in the cool-down: never
    other_step = rec(wall_start=1001.0, step=1)
    failed = rec(error="timeout", wall_start=1005.0)
    recs = [ok, from_warmup, ramp, straddles, cooldown, other_step, failed]
    assert attribution.measured_records(recs, 0, close) == [ok, straddles, failed]
    late = attribution.split_step(recs, 0, 1019.5)  # a cool-down cut short by its hard cap
    assert late.measured == [ok, failed] and late.censored == [straddles] and late.sent == 3


def test_cost_per_million_matches_seed_formula() -> None:
    # The seed's c=1 cell: $0.76/h at 16.23 tokens/s → $13.01
    assert metrics.cost_per_million(0.76, 16.23) == pytest.approx(13.01, abs=0.01)
    assert math.isnan(metrics.cost_per_million(None, 10.0))
    assert math.isnan(metrics.cost_per_million(0.76, 0.0))


def test_step_metrics() -> None:
    w = Window(1000.0, 1030.0)
    measured = [
        rec(ttft=t, wall_start=1000.0 + i, server_input_tokens=560) for i, t in enumerate((1.0, 2.0, 3.0))
    ]
    measured.append(rec(error="timeout", wall_start=1005.0))
    m = metrics.step_metrics(0, 4, measured, measured, w, 0.76)
    assert (m.requests, m.ok, m.failed, m.censored, m.sent) == (4, 3, 1, 0, 4)
    assert m.samples["ttft"] == 3 and m.samples["gap"] == 30
    assert m.errors == {"timeout": 1}
    assert m.error_rate == pytest.approx(0.25)
    assert m.ttft[50] == pytest.approx(2.0)
    assert m.ttft[90] == pytest.approx(2.8)
    assert m.mean_input_tokens == 560 and m.mean_client_input_tokens == 550
    assert m.mean_output_tokens == 11
    assert m.throughput_tps == pytest.approx(33 / 30)
    assert m.cost_per_million == pytest.approx(0.76 / (33 / 30 * 3600) * 1e6)


def test_a_step_without_a_measured_request_shows_no_throughput_or_cost() -> None:
    """Bug: 0 requests measured at 8 and 16 users printed 1.68 tok/s and $125 per 1M tokens."""
    w = Window(1000.0, 1030.0)
    others = [rec(wall_start=1000.0, step=1)]  # tokens arrived in the window, from another step
    censored = [rec(wall_start=1001.0, ttft=40.0)]
    m = metrics.step_metrics(0, 8, [], others, w, 0.76, censored)
    assert (m.requests, m.ok, m.sent, m.censored) == (0, 0, 1, 1)
    assert math.isnan(m.throughput_tps) and math.isnan(m.cost_per_million) and math.isnan(m.rpm)
    assert math.isnan(m.ttft[50]) and m.samples["ttft"] == 0


def test_at_max_marks_percentiles_with_too_few_samples() -> None:
    # n < 100 / (100 − q): p99 needs 100 samples, p90 needs 10
    assert metrics.at_max(99, 99) and not metrics.at_max(100, 99)
    assert metrics.at_max(9, 90) and not metrics.at_max(10, 90)
    assert metrics.at_max(1, 50) and not metrics.at_max(2, 50)
