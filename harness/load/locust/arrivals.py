"""The open-loop driver: a `rate = R` step run by one user per load generator (the Locust rim).

The plan (harness.load.plan) gives an open-loop step one "user" per load generator: locally one,
distributed one per worker (the shape asks for as many users as workers, Locust gives each worker
one, and the step tag says how many share the rate). That user does not send requests one after
another: `drive` walks its share of the arrival schedule (harness.load.arrivals: rate R/W, a seed
derived from the run's and the worker's index), sleeps until each intended send time on an
absolute clock shared by every driver (the step's start, from the master's step tag), and
spawns the request in its own greenlet on a free keep-alive connection, so a
slow response never delays the next arrival. With `max_concurrency` the driver's share of the
cap bounds the requests in flight; an arrival waits for a slot, and that wait is recorded as the
request's client queue time. Each record carries its intended send time (`Record.t_intended`).

A `trace = …` step is driven the same way, its schedule being the trace's timestamps / speed
(harness.workload.trace, from LEAD_S after the step's start): driver i of W sends entries i,
i + W, i + 2W, … each with its entry's prompt (built before the test, `Shared.trace_prompts`),
every entry once — one due before the driver ran is sent late (its lag shows it), not skipped —
then idles until the step changes. Its drivers start sending when the window opens (the
master's tag leaves "ramp" once every load generator runs its driver), on the window's clock.

Why not Locust's `constant_throughput` wait time: it paces each user separately, after its own
request, so users synchronise into bursts and a slow server lowers the offered rate.
"""

from __future__ import annotations

import time
from typing import Any

import gevent
from gevent.lock import Semaphore
from gevent.pool import Group
from locust.runners import WorkerRunner

from harness.client.transport import Connection
from harness.config.model import StepSpec
from harness.load import runstate
from harness.load.arrivals import ArrivalProcess, schedule, worker_seed
from harness.workload.prompts import Prompt
from harness.workload.trace import LEAD_S, load_trace, share

_perf = time.perf_counter
_IDLE_S = 0.1  # a driver whose trace share is sent polls for the next step this often
_traced: set[tuple[int, float | None]] = set()  # (step, its start) whose trace share was sent here


def cap_share(cap: int | None, drivers: int, index: int) -> int | None:
    """Driver `index`'s part of a concurrency cap (the parts add up to the cap; at least 1)."""
    if cap is None:
        return None
    return max(1, cap // drivers + (1 if index < cap % drivers else 0))


def drive(user: Any, spec: StepSpec, run_seed: int) -> None:
    """Send the current step's share of arrivals until the step changes (or the user is stopped)."""
    tag = runstate.current()
    while spec.trace is not None and tag.phase == "ramp":  # a trace runs on its window's clock
        gevent.sleep(_IDLE_S)
        if runstate.current().step != tag.step:
            return
        tag = runstate.current()
    runner = user.environment.runner
    drivers = max(1, tag.drivers)
    index = (getattr(runner, "worker_index", 0) or 0) % drivers if isinstance(runner, WorkerRunner) else 0
    process = ArrivalProcess(spec.rate or 0.0, spec.arrival, spec.burstiness)
    part, offset = process.share(drivers, index)
    cap = cap_share(spec.max_concurrency, drivers, index)
    slots = Semaphore(cap) if cap is not None else None
    group: Group = user.arrivals
    free: list[Connection] = user.spare_connections
    # Every driver's schedule runs on the step's start (the master's clock, in the tag), so the
    # shares interleave as planned; arrivals due before this driver was running are not sent.
    started = _perf()
    anchor = tag.start_wall if tag.start_wall is not None else time.time()
    t0 = started + (anchor - time.time())
    if spec.trace is not None:
        _drive_trace(user, spec, tag, t0, (drivers, index), slots, free)
        return
    for t in schedule(part, worker_seed(run_seed, tag.step or 0, index), offset):
        due = t0 + t
        if due < started:
            continue
        delay = due - _perf()
        if delay > 0:
            gevent.sleep(delay)
        if runstate.current().step != tag.step:
            break
        queued = None
        if slots is not None:
            slots.acquire()
            queued = max(0.0, _perf() - due)
        group.spawn(_one, user, due, queued, slots, free)


def _drive_trace(user: Any, spec: StepSpec, tag: runstate.StepTag, t0: float, part: tuple[int, int],
                 slots: Semaphore | None, free: list[Connection]) -> None:
    """Send this driver's share of the step's trace (entry i → driver i mod W) on the step's clock,
    once per step and process, then wait for the next step."""
    from harness.load.locust.users import shared  # this module is imported from users: no cycle

    key = (tag.step or 0, tag.start_wall)
    if key not in _traced:
        _traced.add(key)
        prompts = shared.trace_prompts(tag.step or 0, user.api.chat)  # built before the test
        for i, entry in share(load_trace(spec.trace or "").entries, *part):
            due = t0 + LEAD_S + entry.timestamp / spec.speed
            delay = due - _perf()
            if delay > 0:
                gevent.sleep(delay)
            if runstate.current().step != tag.step:
                return
            queued = None
            if slots is not None:
                slots.acquire()
                queued = max(0.0, _perf() - due)
            user.arrivals.spawn(_one, user, due, queued, slots, free, prompts[i])
    while runstate.current().step == tag.step:
        gevent.sleep(_IDLE_S)


def _one(
    user: Any, due: float, queued: float | None, slots: Semaphore | None, free: list[Connection],
    prompt: Prompt | None = None,
) -> None:
    conn = free.pop() if free else user.new_connection()
    try:
        prompt = prompt or user.pool.next()
        body = user.api.body(prompt.text, prompt.max_new_tokens)
        n_in, n_out = prompt.input_tokens, prompt.max_new_tokens
        user.send(body, n_in, n_out, conn=conn, t_intended=due, queued_s=queued)
    finally:
        free.append(conn)
        if slots is not None:
            slots.release()
