"""The sweep plan driven without a clock: (elapsed, completed, window counts) → phase, step, users."""

from __future__ import annotations

import math

import pytest

from harness.config.model import PhaseRule, StepSpec
from harness.load.plan import SweepPlan, fixed_plan


def step(
    users: int, warm: float = 10, measure: tuple[float, float, int] = (30, 30, 0), cool: float = 0.0
) -> StepSpec:
    lo, hi, n = measure
    return StepSpec(users, PhaseRule(warm, warm, 0), PhaseRule(lo, hi, n), cooldown_max_s=cool)


def test_phases_by_time() -> None:
    plan = SweepPlan([step(1), step(3)], spawn_rate=1.0)
    seen = []
    for t in range(0, 100):
        tick = plan.tick(float(t), 0)
        seen.append(None if tick is None else (tick.step, tick.users, tick.phase))
    # step 0: ramp 1 s, warm-up 10 s, window 30 s; step 1: ramp 2 s (2 users at 1/s), warm-up 10, window 30
    assert seen[0] == (0, 1, "ramp")
    assert seen[1] == (0, 1, "warmup") and seen[10] == (0, 1, "warmup")
    assert seen[11] == (0, 1, "measure") and seen[40] == (0, 1, "measure")
    assert seen[41] == (1, 3, "ramp") and seen[42] == (1, 3, "ramp")
    assert seen[43] == (1, 3, "warmup")
    assert seen[53] == (1, 3, "measure") and seen[82] == (1, 3, "measure")
    assert seen[83] is None and plan.finished
    spans = [(s.step, s.phase, s.start, s.end) for s in plan.spans]
    assert spans == [
        (0, "ramp", 0, 1),
        (0, "warmup", 1, 11),
        (0, "measure", 11, 41),
        (0, "cooldown", 41, 41),  # nothing sent in the window is open: over at once
        (1, "ramp", 41, 43),
        (1, "warmup", 43, 53),
        (1, "measure", 53, 83),
        (1, "cooldown", 83, 83),
    ]


def test_spawning_complete_ends_the_ramp_early() -> None:
    plan = SweepPlan([step(1, warm=0), step(64, warm=5)], spawn_rate=1.0)  # 63 s ramp by rate alone
    plan.tick(0.0, 0)
    plan.tick(1.0, 0)
    assert plan.tick(31.0, 0).phase == "ramp"
    assert plan.tick(33.0, 0).phase == "ramp"
    tick = plan.tick(33.5, 0, spawned=True)
    assert (tick.step, tick.phase) == (1, "warmup")
    assert plan.spans[-2].phase == "ramp" and plan.spans[-2].end == 33.5


def test_window_waits_for_requests_sent_in_it_until_cap() -> None:
    plan = SweepPlan([step(2, warm=0, measure=(5, 60, 10), cool=60)], spawn_rate=100.0)
    assert plan.tick(0.0, 0).phase == "ramp"
    assert plan.tick(1.0, 3).phase == "measure"  # ramp 0.02 s, no warm-up
    assert plan.tick(6.0, 50, window_sent=9, window_open=2).phase == "measure"  # 9 sent: not yet
    # completions do not close a window: requests *sent* in it do
    tick = plan.tick(7.0, 50, window_sent=10, window_open=2)
    assert tick.phase == "cooldown" and tick.users == 2 and tick.tag == "cooldown"  # same load
    assert plan.tick(9.0, 51, window_sent=11, window_open=1).phase == "cooldown"  # one still open
    assert plan.tick(10.0, 52, window_sent=11, window_open=0) is None  # all ended: the step closes
    spans = [(s.phase, s.start, s.end) for s in plan.spans[-2:]]
    assert spans == [("measure", 1.0, 7.0), ("cooldown", 7.0, 10.0)]


def test_cooldown_has_a_hard_cap_and_a_minimum() -> None:
    spec = StepSpec(1, PhaseRule(0, 0, 0), PhaseRule(5, 5, 0), cooldown_max_s=20.0)
    plan = SweepPlan([spec, step(2, warm=0)], spawn_rate=100.0, cooldown_min_s=4.0)
    plan.tick(0.0, 0)
    assert plan.tick(0.5, 0, spawned=True).phase == "measure"
    assert plan.tick(5.5, 0, window_sent=1, window_open=0).phase == "cooldown"
    assert plan.tick(7.0, 0, window_sent=1, window_open=0).phase == "cooldown"  # late counts: wait 4 s
    assert plan.tick(9.5, 0, window_sent=1, window_open=0).step == 1
    capped = SweepPlan([spec, step(2, warm=0)], spawn_rate=100.0)
    capped.tick(0.0, 0)
    capped.tick(0.5, 0, spawned=True)
    assert capped.tick(5.5, 0, window_sent=3, window_open=3).phase == "cooldown"
    assert capped.tick(25.0, 0, window_sent=3, window_open=3).phase == "cooldown"
    assert capped.tick(25.5, 0, window_sent=3, window_open=3).step == 1  # 20 s cap: the rest is censored


def test_window_cap_ends_a_stalled_step() -> None:
    plan = SweepPlan([step(2, warm=0, measure=(5, 60, 10)), step(4, warm=0)], spawn_rate=100.0)
    plan.tick(0.0, 0)
    plan.tick(1.0, 0)
    assert plan.tick(60.0, 0).phase == "measure"
    tick = plan.tick(61.5, 0)
    assert (tick.step, tick.phase) == (1, "ramp")  # nothing was sent: no cool-down to wait for


def test_min_seconds_hold_even_when_requests_done() -> None:
    plan = SweepPlan([step(1, warm=0, measure=(20, 60, 2))], spawn_rate=100.0)
    plan.tick(0.0, 0)
    assert plan.tick(1.0, 50).phase == "measure"
    assert plan.tick(20.0, 50, window_sent=5).phase == "measure"  # window opened at t=1
    assert plan.tick(21.0, 51, window_sent=1).phase == "measure"  # only 1 sent inside the window
    assert plan.tick(22.0, 52, window_sent=2) is None


def test_zero_length_phases_pass_in_one_tick() -> None:
    plan = SweepPlan([StepSpec(1, PhaseRule(0, 0, 0), PhaseRule(5, 5, 0))], spawn_rate=1e9)
    assert plan.tick(0.0, 0).phase == "ramp"
    assert plan.tick(0.5, 0).phase == "measure"  # ramp → warm-up → window within one tick


def test_time_left_bounds() -> None:
    plan = SweepPlan(
        [step(1, warm=10, measure=(30, 90, 5)), step(2, warm=10, measure=(30, 30, 0))], spawn_rate=1
    )
    assert plan.time_left(0.0) == pytest.approx((1 + 10 + 30 + 1 + 10 + 30, 1 + 10 + 90 + 1 + 10 + 30))
    plan.tick(0.0, 0)
    plan.tick(1.0, 0)
    assert plan.time_left(6.0) == pytest.approx((5 + 30 + 41, 5 + 90 + 41))
    t = 1000.0
    while plan.tick(t, 100) is not None:
        t += 1.0
    assert plan.time_left(1000.0) == (0.0, 0.0)


def test_fixed_plan_runs_until_stopped() -> None:
    plan = fixed_plan(users=8, spawn_rate=8, warmup_s=5)
    assert plan.tick(0.0, 0).phase == "ramp"
    assert plan.tick(2.0, 0).phase == "warmup"
    tick = plan.tick(1e6, 10**6)
    assert (tick.users, tick.phase) == (8, "measure")
    assert math.isinf(plan.time_left(1e6)[1])


def test_rejects_empty() -> None:
    with pytest.raises(ValueError):
        SweepPlan([], 1.0)


def test_restart_stops_every_user_then_starts_the_step_at_once() -> None:
    plan = SweepPlan(
        [step(1, warm=0, measure=(5, 5, 0)), step(4, warm=0, measure=(5, 5, 0))], 1.0, restart=True
    )
    t0 = plan.tick(0.0, 0)
    assert (t0.step, t0.users, t0.phase) == (0, 1, "ramp")  # the first step has nothing to stop
    assert t0.spawn_rate == 1.0 and t0.tag == "measure"  # ≥ users: one user at 1/s starts at once
    assert plan.tick(0.5, 0, spawned=True).phase == "measure"
    # the window closes: the next step begins with 0 users, whatever the runner reports on this tick
    tick = plan.tick(6.0, 3, spawned=True)
    assert (tick.step, tick.users, tick.phase, tick.step_users, tick.tag) == (1, 0, "stop", 4, "stop")
    assert plan.tick(6.5, 3).phase == "stop"  # users still running: stay
    tick = plan.tick(7.0, 3, spawned=True)  # the runner has no users left
    assert (tick.step, tick.users, tick.phase) == (1, 4, "ramp")
    assert tick.spawn_rate == 4.0  # raised to the step's users: all four start together
    assert tick.tag == "measure"  # a one-shot start runs at full concurrency: no warm-up, they count
    assert plan.ramp_s(1) == pytest.approx(1.0)  # from 0, not from the previous step's 1
    assert plan.tick(7.2, 3, spawned=True).phase == "measure"
    assert plan.tick(12.5, 9) is None
    phases = [(s.step, s.phase, s.start, s.end) for s in plan.spans]
    assert phases == [
        (0, "ramp", 0.0, 0.5),
        (0, "warmup", 0.5, 0.5),
        (0, "measure", 0.5, 6.0),
        (0, "cooldown", 6.0, 6.0),
        (1, "stop", 6.0, 7.0),
        (1, "ramp", 7.0, 7.2),
        (1, "warmup", 7.2, 7.2),
        (1, "measure", 7.2, 12.5),
        (1, "cooldown", 12.5, 12.5),
    ]
    warm = SweepPlan([step(1, warm=0), step(2, warm=5)], 1.0, restart=True)
    assert warm.tag_of(1, "ramp") == "warmup"  # with a warm-up, the one-shot start warms up


def test_restart_stop_phase_has_a_cap_and_is_always_seen() -> None:
    plan = SweepPlan(
        [step(2, warm=0, measure=(1, 1, 0)), step(2, warm=0, measure=(1, 1, 0))],
        100.0,
        restart=True,
        stop_max_s=0.0,
    )
    plan.tick(0.0, 0)
    plan.tick(0.1, 0)
    tick = plan.tick(1.5, 0)
    assert (tick.users, tick.phase) == (0, "stop")  # returned once even with a zero cap
    assert plan.tick(1.6, 0).phase == "ramp"  # then over by the cap alone
    capped = SweepPlan([step(1, warm=0, measure=(1, 1, 0)), step(2)], 100.0, restart=True, stop_max_s=5)
    capped.tick(0.0, 0)
    capped.tick(0.1, 0)
    assert capped.tick(1.5, 0).phase == "stop"
    assert capped.tick(6.0, 0).phase == "stop"  # never confirmed
    assert capped.tick(6.5, 0).phase == "ramp"  # 5 s later


def test_without_restart_users_are_added_to_the_running_ones() -> None:
    plan = SweepPlan([step(1, warm=0, measure=(1, 1, 0)), step(4, warm=0)], 1.0)
    plan.tick(0.0, 0)
    plan.tick(1.0, 0)
    tick = plan.tick(2.0, 0, spawned=True)
    assert (tick.step, tick.users, tick.phase, tick.spawn_rate, tick.tag) == (1, 4, "ramp", 1.0, "ramp")
    assert plan.ramp_s(1) == 3.0 and all(s.phase != "stop" for s in plan.spans)


def test_time_left_counts_the_stops() -> None:
    plan = SweepPlan(
        [step(1, warm=0, measure=(10, 10, 0)), step(2, warm=0, measure=(10, 10, 0))], 100.0, restart=True
    )
    lo, hi = plan.time_left(0.0)
    assert lo == pytest.approx(0.01 + 10 + 0 + 0.02 + 10)  # a stop may take no time at all
    assert hi == pytest.approx(0.01 + 10 + 1 + 0.02 + 10)  # or one runner poll


def test_a_stop_can_pause_so_the_server_drains() -> None:
    plan = SweepPlan([step(1, warm=0, measure=(1, 1, 0)), step(2, warm=0)], 100.0, restart=True, stop_min_s=4)
    plan.tick(0.0, 0)
    plan.tick(0.5, 0, spawned=True)
    assert plan.tick(1.5, 0).phase == "stop"
    assert plan.tick(2.5, 0, spawned=True).phase == "stop"  # no users left, but the pause holds
    tick = plan.tick(5.5, 0, spawned=True)
    assert (tick.phase, tick.users) == ("ramp", 2)  # the step's users start 4 s after the stop began
