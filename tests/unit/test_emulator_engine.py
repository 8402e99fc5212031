"""The scheduler model with a fake clock: slots, queueing, paused decodes, absolute deadlines."""

from __future__ import annotations

import pytest

from harness.emulator.engine import Engine, SimRequest
from harness.emulator.profiles import PROFILES, Profile, get_profile

NEURON = Profile(
    name="t",
    mode="neuron",
    max_batch_size=2,
    prefill_base_ms=100,
    prefill_per_token_ms=1,
    decode_base_ms=10,
    decode_per_slot_ms=0,
)


def run_until_idle(eng: Engine, t_max: float = 1e6) -> list:
    out = []
    while eng.next_deadline() is not None and eng.next_deadline() <= t_max:
        out += eng.advance(eng.next_deadline())
    return out


def test_single_request_prefill_then_decode_at_absolute_deadlines():
    eng = Engine(NEURON)
    r = SimRequest(input_tokens=100, output_tokens=4)
    eng.submit(r, 0.0)
    ems = run_until_idle(eng)
    assert [e.index for e in ems] == [1, 2, 3, 4]
    assert [round(e.deadline, 6) for e in ems] == [0.2, 0.21, 0.22, 0.23]  # prefill 100+100 ms, then 10 ms
    assert ems[-1].last and r.done and eng.step is None


def test_late_advance_does_not_shift_deadlines():
    eng = Engine(NEURON)
    eng.submit(SimRequest(100, 3), 0.0)
    ems = eng.advance(5.0)  # the server woke up very late: deadlines stay where the model put them
    assert [round(e.deadline, 6) for e in ems] == [0.2, 0.21, 0.22]


def test_request_beyond_max_batch_size_waits_for_a_free_slot():
    eng = Engine(NEURON)
    a, b, c = SimRequest(100, 3, "a"), SimRequest(100, 3, "b"), SimRequest(100, 3, "c")
    eng.submit(a, 0.0)
    eng.submit(b, 0.0)
    eng.submit(c, 0.0)
    ems = run_until_idle(eng)
    first = {e.req.tag: e.deadline for e in ems if e.index == 1}
    last = {e.req.tag: e.deadline for e in ems if e.last}
    assert first["c"] > last["a"] and first["c"] > last["b"]  # c only starts once a slot frees
    assert eng.queue_size == 0


def test_neuron_prefill_pauses_running_decodes():
    eng = Engine(NEURON)
    a = SimRequest(100, 50, "a")
    eng.submit(a, 0.0)
    eng.advance(0.25)  # a prefilled at 0.2, decoding every 10 ms
    b = SimRequest(100, 5, "b")
    eng.submit(b, 0.255)
    ems = eng.advance(0.6)
    a_times = [e.deadline for e in ems if e.req is a]
    b_first = next(e.deadline for e in ems if e.req is b and e.index == 1)
    gaps = [y - x for x, y in zip(a_times, a_times[1:], strict=False)]
    # a paused for b's whole prefill: one gap is prefill (200 ms) + its own decode step (10 ms)
    assert max(gaps) == pytest.approx(0.21, abs=1e-9)
    assert b_first == pytest.approx(0.26 + 0.2)  # b waited for a's decode step, then prefill


def test_neuron_prefills_waiting_requests_together_with_padding():
    eng = Engine(NEURON.replace(max_batch_size=4))
    eng.submit(SimRequest(10, 2, "x"), 0.0)  # engine idle → alone
    eng.submit(SimRequest(50, 2, "y"), 0.001)
    eng.submit(SimRequest(100, 2, "z"), 0.002)
    ems = run_until_idle(eng)
    first = {e.req.tag: round(e.deadline, 6) for e in ems if e.index == 1}
    assert first["x"] == 0.11
    # y and z are prefilled together at 0.11: 100 ms + 2 × 100 padded tokens
    assert first["y"] == first["z"] == round(0.11 + 0.3, 6)


def test_continuous_mode_waits_for_ratio_or_max_waiting_tokens():
    p = Profile(
        name="c",
        mode="continuous",
        max_batch_size=8,
        prefill_base_ms=10,
        prefill_per_token_ms=0,
        decode_base_ms=10,
        decode_per_slot_ms=0,
        waiting_served_ratio=1.0,
        max_waiting_tokens=3,
    )
    eng = Engine(p)
    a, b = SimRequest(10, 100, "a"), SimRequest(10, 100, "b")
    eng.submit(a, 0.0)
    eng.advance(0.015)
    eng.submit(b, 0.015)  # 1 running, ratio 1.0 → 1 waiting suffices
    ems = eng.advance(0.05)
    assert any(e.req is b and e.index == 1 for e in ems)
    c = SimRequest(10, 100, "c")
    eng.submit(c, 0.05)  # 2 running, needs 2 waiting → waits max_waiting_tokens decode steps
    ems = eng.advance(0.2)
    c_first = next(e.deadline for e in ems if e.req is c)
    decodes_before = [e for e in ems if e.req is a and e.deadline < c_first]
    assert len(decodes_before) >= 3


def test_cancel_frees_the_slot():
    eng = Engine(NEURON.replace(max_batch_size=1))
    a, b = SimRequest(100, 1000, "a"), SimRequest(100, 2, "b")
    eng.submit(a, 0.0)
    eng.submit(b, 0.0)
    eng.advance(0.5)
    eng.cancel(a)
    ems = eng.advance(1.0)
    assert any(e.req is b for e in ems)
    assert not any(e.req is a for e in ems)


def test_profiles_validate():
    for prof in PROFILES.values():
        assert prof.validate() == []
    assert get_profile("exact").mode == "exact"
    with pytest.raises(ValueError):
        get_profile("nope")


def _closed_loop(users: int, rounds: int = 4, inp: int = 550, out: int = 150, think: float = 0.002):
    """Closed-loop users against the pure model (simulated time); returns (ttft p50, tpot p50, rpm)."""
    import heapq
    import statistics

    eng = Engine(get_profile("inf2-xlarge-llama3-8b"))
    arrivals = [(u * 0.001, u) for u in range(users)]
    heapq.heapify(arrivals)
    count = dict.fromkeys(range(users), 0)
    open_, recs = {}, []
    while arrivals or eng.step:
        t_arr = arrivals[0][0] if arrivals else float("inf")
        t_step = eng.next_deadline() or float("inf")
        if t_arr <= t_step:
            t, u = heapq.heappop(arrivals)
            open_[u] = [t, None]
            eng.submit(SimRequest(inp, out, u), t)
            continue
        for em in eng.advance(t_step):
            u = em.req.tag
            if em.index == 1:
                open_[u][1] = em.deadline
            if em.last:
                t0, tf = open_.pop(u)
                recs.append((tf - t0, (em.deadline - tf) / (out - 1), em.deadline - t0))
                count[u] += 1
                if count[u] < rounds:
                    heapq.heappush(arrivals, (em.deadline + think, u))
    ttft = statistics.median(r[0] for r in recs) * 1000
    tpot = statistics.median(r[1] for r in recs) * 1000
    rpm = users * 60 / (statistics.mean(r[2] for r in recs) + think)
    return ttft, tpot, rpm


@pytest.mark.parametrize(
    "users,ttft_ms,rpm",
    [(1, 1001, 6.4), (2, 1419, 11.45), (4, 3733, 18.81), (8, 7539, 27.78)],
)
def test_inf2_profile_model_matches_seed_shape(users, ttft_ms, rpm):
    """The model alone (simulated time) lands within 10 % of the seed's TTFT p50 and requests/min."""
    ttft, tpot, got_rpm = _closed_loop(users)
    assert ttft == pytest.approx(ttft_ms, rel=0.10)
    assert got_rpm == pytest.approx(rpm, rel=0.10)
    if users == 1:
        assert tpot == pytest.approx(52.18, rel=0.10) and tpot == pytest.approx(56, rel=0.10)
    if users == 2:
        assert tpot == pytest.approx(58.29, rel=0.10) and tpot == pytest.approx(61, rel=0.10)


def test_inf2_profile_beyond_batch_size_queues():
    ttft8, _, rpm8 = _closed_loop(8, rounds=3)
    ttft16, _, rpm16 = _closed_loop(16, rounds=3)
    assert ttft16 > ttft8  # requests beyond 8 slots wait in the router queue
    assert rpm16 == pytest.approx(rpm8, rel=0.15)  # throughput saturates at 8 slots
