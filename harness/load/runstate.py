"""Which step of a sweep this process is in, so each record can carry it.

The load shape (on the master or the local runner) calls `set_step`; in distributed runs the
master broadcasts it to workers with a custom Locust message (see `harness.load.locust.listeners`), and each
worker calls `set_step` too. Users read `current()` when they send a request: a plain tuple
read, no locking needed under gevent.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StepTag:
    step: int | None = None
    users: int | None = None
    phase: str = "measure"  # "ramp" | "warmup" | "measure" | "cooldown" | "done"
    drivers: int = 1  # open-loop steps: how many load generators share the step's rate
    start_wall: float | None = None  # when the step started (time.time()): the schedules' common clock


_current = StepTag()


def set_step(
    step: int | None, users: int | None, phase: str = "measure", drivers: int = 1,
    start_wall: float | None = None,
) -> None:  # fmt: skip
    global _current
    _current = StepTag(step, users, phase, drivers, start_wall)


def tag_from_master(data: list, clock_offset_s: float = 0.0) -> StepTag:
    """A worker's step tag from the master's step message `[step, users, phase, drivers,
    start_wall]` (a plain run's clock sends the first three). `start_wall` is the master's clock;
    the open-loop schedules run on this process's, so it is moved by the worker's clock offset
    (harness.load.distributed: master = worker + offset)."""
    step, users, phase, *rest = data
    drivers = int(rest[0]) if rest and rest[0] is not None else 1
    start_wall = rest[1] if len(rest) > 1 else None
    if start_wall is not None:
        start_wall = float(start_wall) - clock_offset_s
    return StepTag(step, users, phase, drivers, start_wall)


def set_tag(tag: StepTag) -> None:
    global _current
    _current = tag


def current() -> StepTag:
    return _current


def reset() -> None:
    set_step(None, None, "measure")


WINDOW_SENT = "SENT"
WINDOW_ENDED = "ENDED"


def window_name(step: int) -> str:
    """The live-stats name under which a step's window counts its requests (sent, ended): Locust
    entries (`stats.entries[(name, WINDOW_SENT)]`), so a master sums its workers' counts."""
    return f"step {step + 1} window"
