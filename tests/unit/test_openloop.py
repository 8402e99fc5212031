"""Open-loop figures (harness.analysis.openloop) from made-up records: offered vs achieved rate,
schedule lag, queue time, latency from the intended send, and the client-bound rule."""

from __future__ import annotations

import math

import pytest
from support.records import make_record

from harness.analysis.attribution import Window
from harness.analysis.openloop import open_loop, schedule_lag_s, ttft_from_intended_s


def arrival(i: int, lag: float = 0.001, queued: float | None = None, phase: str = "measure"):
    """Intended at 1000 + i/10 (wall), sent `lag` (+ queue) later; TTFT 0.5 s."""
    intended = 1000.0 + i / 10
    late = lag + (queued or 0.0)
    return make_record(i, wall_start=intended + late, t_send=10.0 + i / 10 + late, t_end=12.0 + i / 10 + late,
                       t_intended=10.0 + i / 10, queued_s=queued, phase=phase)


def test_offered_achieved_and_lag() -> None:
    w = Window(1000.0, 1010.0)
    recs = [arrival(i) for i in range(100)]  # 10 req/s for 10 s
    loop = open_loop(recs, recs, recs, w, 10.0)
    assert loop.offered_rps == pytest.approx(10.0) and loop.achieved_rps == pytest.approx(10.0)
    assert loop.lag_p50_s == pytest.approx(0.001) and not loop.client_bound
    assert math.isnan(loop.queue_p99_s) and not loop.queued
    assert ttft_from_intended_s(recs[0]) == pytest.approx(0.501)


def test_a_late_client_is_client_bound() -> None:
    w = Window(1000.0, 1010.0)
    late = [arrival(i, lag=0.02) for i in range(100)]
    assert open_loop(late, late, late, w, 10.0).client_bound  # lag p99 20 ms > 5 ms
    # requests sent after the window though due inside it: achieved < offered
    sent = [arrival(i) for i in range(90)]
    behind = sent + [arrival(i, phase="cooldown") for i in range(90, 100)]
    loop = open_loop(behind, sent, sent, w, 10.0)
    assert loop.offered_rps == pytest.approx(10.0) and loop.achieved_rps == pytest.approx(9.0)
    assert loop.client_bound


def test_queueing_at_the_cap_is_queue_time_not_lag() -> None:
    w = Window(1000.0, 1010.0)
    sent = [arrival(i, queued=0.3) for i in range(90)]
    waiting = sent + [arrival(i, queued=0.3, phase="cooldown") for i in range(90, 100)]
    loop = open_loop(waiting, sent, sent, w, 10.0)
    assert loop.queued and loop.queue_p99_s == pytest.approx(0.3)
    assert schedule_lag_s(sent[0]) == pytest.approx(0.001)  # the slot wait is not the client's lag
    assert not loop.client_bound  # the cap held the rate back
    assert loop.ttft_intended_p50_s == pytest.approx(0.801)  # coordinated omission shown
