"""The pure bookkeeping of distributed runs (harness.load.distributed): batches with sequence
numbers, resends, acknowledgements, deduplication, the clock estimate and lost-worker flags."""

from __future__ import annotations

import pytest

from harness.load.distributed import LOST_WORKER, ClockEstimate, Inbox, Outbox, degraded_steps

pytestmark = pytest.mark.unit


def test_outbox_batches_are_numbered_and_kept_until_acknowledged() -> None:
    box = Outbox("w:1", batch_size=2, max_records=5, resend_after_s=5)
    for i in range(5):
        box.put(f"r{i}")
    assert box.full()
    sent = box.batches(now=0.0)
    assert [(b["seq"], b["records"]) for b in sent] == [(0, ["r0", "r1"]), (1, ["r2", "r3"]), (2, ["r4"])]
    assert len(box) == 5 and not box.drained()  # sent, not acknowledged: still counts
    box.ack([0, 2])
    assert len(box) == 2 and not box.full()
    assert box.batches(now=1.0) == []  # too early to resend
    again = box.batches(now=5.0)
    assert [(b["seq"], b["records"]) for b in again] == [(1, ["r2", "r3"])]
    box.ack([1, 1, 7])  # duplicate and unknown acks are harmless
    assert box.drained() and len(box) == 0 and box.last_seq == 2


def test_outbox_holds_a_partial_batch_when_asked() -> None:
    box = Outbox("w:1", batch_size=3)
    box.put("a")
    assert box.batches(now=0.0, cut_partial=False) == []
    assert [b["records"] for b in box.batches(now=0.0)] == [["a"]]


def test_inbox_accepts_each_batch_once_in_any_order() -> None:
    inbox = Inbox()
    assert inbox.accept({"worker": "w", "seq": 1, "records": ["b"]}) == ["b"]
    assert not inbox.complete("w", 1)  # seq 0 still missing
    assert inbox.accept({"worker": "w", "seq": 0, "records": ["a"]}) == ["a"]
    assert inbox.complete("w", 1)
    assert inbox.accept({"worker": "w", "seq": 1, "records": ["b"]}) is None  # a resend
    assert inbox.accept({"worker": "v", "seq": 0, "records": ["c"]}) == ["c"]  # another worker
    assert inbox.duplicates == 1 and inbox.records == {"w": 2, "v": 1}
    assert inbox.accept("garbage") is None and inbox.workers() == ["v", "w"]


def test_clock_estimate_takes_the_minimum_rtt_exchange() -> None:
    clock = ClockEstimate()
    assert clock.best() is None and clock.offset_s == 0.0
    # worker clock is 2 s behind the master; the first exchange was queued on the way back
    clock.add(100.0, 102.0 + 0.001, 100.5)
    clock.add(110.0, 112.0 + 0.002, 110.004)
    clock.add(120.0, 122.0 + 0.01, 120.05)
    best = clock.best()
    assert best is not None
    assert best["rtt_s"] == pytest.approx(0.004)
    assert best["uncertainty_s"] == pytest.approx(0.002)
    assert best["offset_s"] == pytest.approx(2.0, abs=best["uncertainty_s"])
    assert best["exchanges"] == 3
    assert clock.add(5.0, 1.0, 4.0) is None  # time ran backwards: no sample


def test_degraded_steps_flags_the_step_a_loss_fell_in() -> None:
    steps = [
        {"step": 0, "phases": {"ramp": {"start_wall": 0.0, "end_wall": 1.0},
                               "measure": {"start_wall": 2.0, "end_wall": 10.0}}},
        {"step": 1, "phases": {"ramp": {"start_wall": 10.0, "end_wall": None}}},
    ]
    losses = [{"worker": "h:9", "lost_at": 5.0}, {"worker": "h:8", "lost_at": 50.0},
              {"worker": "h:7", "lost_at": 3.0, "back_at": 6.0}]  # back soon: a stall, not a loss
    flags = degraded_steps(steps, losses)
    assert flags == {0: [f"{LOST_WORKER} h:9"], 1: [f"{LOST_WORKER} h:8"]}
    assert degraded_steps(steps, []) == {}
    # a shorter heartbeat liveness: a 3 s loss is no longer brief
    assert degraded_steps(steps, losses, brief_s=2.0)[0] == [f"{LOST_WORKER} h:9", f"{LOST_WORKER} h:7"]


@pytest.mark.parametrize(("args", "says"), [
    (["--master"], "--master needs --workers N"),
    (["--master", "--worker", "--workers", "2"], "one or the other"),
])
def test_sweep_roles_that_cannot_work_are_refused_in_one_line(args: list[str], says: str) -> None:
    """In a child interpreter: `python -m harness sweep` imports Locust (gevent patches the process)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "harness", "sweep", *args], cwd=root, capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})
    assert proc.returncode == 2 and says in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_workers_step_tag_puts_the_masters_start_on_its_own_clock() -> None:
    """Open-loop schedules anchor on the step's start: the master's wall clock, moved by the
    worker's offset (master = worker + offset), so the workers' shares interleave as planned."""
    from harness.load.runstate import StepTag, tag_from_master

    tag = tag_from_master([2, 4, "measure", 3, 1000.0], clock_offset_s=0.25)
    assert tag == StepTag(2, 4, "measure", 3, 999.75)
    assert tag_from_master([0, 1, "ramp"], clock_offset_s=5.0) == StepTag(0, 1, "ramp", 1, None)  # plain runs
    assert tag_from_master([1, 2, "warmup", 1, None], 5.0).start_wall is None


def test_a_master_on_the_same_kernel_is_the_same_clock():
    """Local workers, network namespaces and containers of one host read one system clock: the
    offset is 0 exactly, whatever the exchanges' round trips (a busy machine's are tens of ms)."""
    clock = ClockEstimate()
    clock.add(100.0, 100.2, 100.1)  # a slow, asymmetric exchange: +0.15 s estimated
    assert clock.offset_s == pytest.approx(0.15)
    clock.same_clock()
    clock.add(200.0, 200.3, 200.1)
    assert clock.offset_s == 0.0
    best = clock.best()
    assert best["uncertainty_s"] == 0.0 and best["same_clock"] is True and best["exchanges"] == 2
