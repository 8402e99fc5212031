"""The capacity search's pure parts: SearchState (bracket, bisect, answer) and the AdaptivePlan."""

from __future__ import annotations

import pytest

from harness.config.model import PhaseRule, StepSpec
from harness.load.search import AT_MAX, BELOW_MIN, FOUND, TRIES, AdaptivePlan, SearchState, Trial, bracket


def run(state: SearchState, capacity: float) -> list[float]:
    """Drive the search against a server that meets the SLOs up to `capacity`; the loads tried."""
    tried = []
    while (load := state.next_load()) is not None:
        assert load not in tried, f"{load} measured twice"
        tried.append(load)
        state.record(load, load <= capacity)
    return tried


@pytest.mark.parametrize("capacity", [1, 2, 3, 7, 8, 9, 13, 31, 100, 255])
def test_users_search_lands_on_the_capacity_exactly(capacity: int) -> None:
    state = SearchState("users", start_load=1, min_load=1, max_load=256, resolution=0.0, max_tries=30)
    tried = run(state, capacity)
    assert state.status() == FOUND
    assert bracket(state.trials) == (capacity, capacity + 1)
    assert len(tried) <= 2 * 9  # doubling then bisecting: logarithmic


def test_bracket_doubles_then_bisects() -> None:
    state = SearchState("users", start_load=1, min_load=1, max_load=64, resolution=0.0)
    assert run(state, 9) == [1, 2, 4, 8, 16, 12, 10, 9]
    assert "9 users" in state.answer() and "[9, 10)" in state.answer()


def test_a_first_failure_halves_down() -> None:
    state = SearchState("users", start_load=32, min_load=1, max_load=64, resolution=0.0)
    assert run(state, 5) == [32, 16, 8, 4, 6, 5]


def test_not_met_at_the_lowest_load() -> None:
    state = SearchState("users", start_load=4, min_load=2, max_load=64)
    assert run(state, 1) == [4, 2]
    assert state.status() == BELOW_MIN and state.answer().startswith("no load met the SLOs")


def test_passing_at_the_highest_load() -> None:
    state = SearchState("users", start_load=4, min_load=1, max_load=20)
    assert run(state, 1000) == [4, 8, 16, 20]
    assert state.status() == AT_MAX and "≥ 20 users" in state.answer()


def test_rate_search_stops_at_the_resolution() -> None:
    state = SearchState("rate", start_load=1.0, min_load=0.5, max_load=1000.0, resolution=0.05, max_tries=40)
    run(state, 13.3)
    lo, hi = bracket(state.trials)
    assert lo is not None and hi is not None and lo <= 13.3 < hi
    assert hi - lo <= 0.05 * lo and state.status() == FOUND


def test_out_of_tries_keeps_the_bracket() -> None:
    state = SearchState("rate", start_load=1.0, min_load=0.5, max_load=1000.0, resolution=0.0, max_tries=6)
    assert len(run(state, 13.3)) == 6
    assert state.status() == TRIES and bracket(state.trials) == (12.0, 16.0)


def test_a_noisy_pass_above_a_failure_is_ignored() -> None:
    trials = [Trial(4, True), Trial(8, False), Trial(16, True)]
    assert bracket(trials) == (4, 8)


def spec(users: int) -> StepSpec:
    return StepSpec(users, PhaseRule(0, 0, 0), PhaseRule(10, 10, 0), cooldown_max_s=5.0)


def test_adaptive_plan_asks_for_the_next_step_at_each_cool_downs_end() -> None:
    asked = []

    def next_step(index: int, now: float, sent: int, open_: int) -> StepSpec | None:
        asked.append((index, now, sent, open_))
        return spec(4) if index == 0 else None

    plan = AdaptivePlan(spec(2), next_step, lambda i: False, spawn_rate=100.0)
    phases = []
    for t in range(0, 40):
        tick = plan.tick(float(t), 0, spawned=True, window_sent=3, window_open=1 if t in (11, 12) else 0)
        phases.append(None if tick is None else (tick.step, tick.users, tick.phase))
    assert phases[0] == (0, 2, "ramp") and phases[1] == (0, 2, "measure")
    assert phases[11] == phases[12] == (0, 2, "cooldown")  # one request of the window still open
    assert phases[13] == (1, 4, "ramp") and phases[14] == (1, 4, "measure")
    assert asked == [(0, 13.0, 3, 0), (1, 24.0, 3, 0)]
    assert phases[24] is None and plan.finished and [s.users for s in plan.steps] == [2, 4]


def test_adaptive_plan_closes_an_over_saturated_window_early() -> None:
    saturated = {0: False}
    plan = AdaptivePlan(spec(2), lambda *a: None, lambda i: saturated[i], spawn_rate=100.0)
    plan.tick(0.0, 0, spawned=True)  # ramp
    assert plan.tick(1.0, 0, spawned=True).phase == "measure"
    saturated[0] = True  # the detector sees TTFT rising
    tick = plan.tick(2.0, 0, spawned=True, window_sent=5, window_open=2)
    assert tick is not None and tick.phase == "cooldown" and plan.stopped_early == {0}
    measure = next(s for s in plan.spans if s.phase == "measure")
    assert (measure.start, measure.end) == (1.0, 2.0)  # 2 s of a 10 s window


def test_pareto_front_keeps_the_undominated_steps() -> None:
    from harness.report.search_report import pareto_front

    points = [(46, 11.3), (65, 8.5), (58, 7.5), (62, 7.8), (74, 6.0), (float("nan"), 1.0)]
    assert pareto_front(points) == [(46, 11.3), (65, 8.5), (74, 6.0)]
