"""The capacity search as a pure state machine: each tried step's verdict in, the next load out.

`python -m harness search` asks `SearchState.next_load` for a load, runs one step at it (the Locust
rim: harness.load.locust.searchshape), and tells the state whether the step met the SLOs
(`record`). The state brackets, then bisects:
- bracket: from `start_load`, double while steps pass (up to `max_load`); if the first step fails,
  halve while they fail (down to `min_load`);
- bisect: between the last pass and the first fail, try the midpoint (users: rounded down), until
  the bracket is at most `resolution` × its lower end wide (users: at least 1 user apart).
A load is never measured twice: the bracket is computed from every verdict so far (`bracket`),
so an earlier step answers for its load. The answer is the bracket [last pass, first fail]: the
highest load that met the SLOs lies in it (a load at `max_load` that passed: "≥ max_load"; a miss
at `min_load`: no load meets them).

No clock, no Locust: tests feed it made-up verdicts; the report recomputes the answer offline from
the steps' verdicts with the same `bracket`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.config.model import StepSpec
from harness.load.plan import SweepPlan

FOUND = "found"  # a bracket [pass, fail] narrower than the resolution
AT_MAX = "at max_load"  # the highest load allowed passed: the capacity is at least that
BELOW_MIN = "not met at min_load"  # the lowest load allowed failed
TRIES = "out of tries"  # max_tries steps ran before the bracket was narrow enough


@dataclass(frozen=True)
class Trial:
    load: float
    passed: bool
    note: str = ""  # why it failed (objectives missed, over-saturated)


def bracket(trials: Sequence[Trial]) -> tuple[float | None, float | None]:
    """(last pass, first fail): the lowest failing load, and the highest passing load below it.
    A pass above a lower fail (noise between steps) is ignored: the bracket stays conservative."""
    fails = [t.load for t in trials if not t.passed]
    hi = min(fails) if fails else None
    passes = [t.load for t in trials if t.passed and (hi is None or t.load < hi)]
    return (max(passes) if passes else None), hi


@dataclass
class SearchState:
    kind: str = "users"  # "users" (integer loads) or "rate" (requests/s)
    start_load: float = 1.0
    min_load: float = 1.0
    max_load: float = 256.0
    resolution: float = 0.1
    max_tries: int = 16
    trials: list[Trial] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind == "users":
            self.start_load = float(round(self.start_load))
            self.min_load = float(max(1, math.ceil(self.min_load)))
            self.max_load = float(math.floor(self.max_load))
        if not 0 < self.min_load <= self.start_load <= self.max_load:
            raise ValueError("a search needs 0 < min_load ≤ start_load ≤ max_load")

    def _narrow(self, lo: float, hi: float) -> bool:
        unit = 1.0 if self.kind == "users" else 1e-9
        return hi - lo <= max(unit, self.resolution * lo)

    def _mid(self, lo: float, hi: float) -> float:
        return float(math.floor((lo + hi) / 2)) if self.kind == "users" else (lo + hi) / 2

    def status(self) -> str | None:
        """Why the search is over (FOUND, AT_MAX, BELOW_MIN, TRIES), or None while it goes on."""
        lo, hi = bracket(self.trials)
        if hi is not None and hi <= self.min_load:
            return BELOW_MIN
        if hi is None and lo is not None and lo >= self.max_load:
            return AT_MAX
        if lo is not None and hi is not None and (self._narrow(lo, hi) or self._mid(lo, hi) <= lo):
            return FOUND
        if len(self.trials) >= self.max_tries:
            return TRIES
        return None

    def next_load(self) -> float | None:
        """The next load to try, or None when the search is over (see `status`)."""
        if not self.trials:
            return self.start_load
        if self.status() is not None:
            return None
        lo, hi = bracket(self.trials)
        if hi is None:  # everything passed so far: double
            assert lo is not None
            return min(lo * 2, self.max_load)
        if lo is None:  # everything failed so far: halve
            half = math.floor(hi / 2) if self.kind == "users" else hi / 2
            return max(float(half), self.min_load)
        return self._mid(lo, hi)

    def record(self, load: float, passed: bool, note: str = "") -> None:
        self.trials.append(Trial(load, passed, note))

    def answer(self) -> str:
        """One line: the highest load that met the SLOs, with its bracket."""
        lo, hi = bracket(self.trials)
        unit = " users" if self.kind == "users" else " req/s"
        status = self.status() or TRIES
        if lo is None:
            tried = f"{hi:g}{unit}" if hi is not None else "nothing"
            return f"no load met the SLOs (lowest tried: {tried}; {status})"
        if hi is None:
            return f"{lo:g}{unit} met the SLOs; the capacity is ≥ {lo:g}{unit} ({status})"
        return (f"{lo:g}{unit} (the capacity lies in [{lo:g}, {hi:g}){unit}: {lo:g} met the SLOs, "
                f"{hi:g} did not; {status})")


class AdaptivePlan(SweepPlan):
    """A SweepPlan whose steps are not known in advance: when the last known step's cool-down ends,
    `next_step(index, now, window_sent, window_open)` is asked for the next one (None: the plan
    ends), and a window closes early when `saturated(index)` says its step is over-saturated.

    The phases, their rules and the records' tags are the SweepPlan's own; only the end of the
    last step and of an over-saturated window differ.
    """

    def __init__(
        self,
        first: StepSpec,
        next_step: Callable[[int, float, int, int], StepSpec | None],
        saturated: Callable[[int], bool],
        spawn_rate: float,
        **kwargs: Any,
    ) -> None:
        super().__init__([first], spawn_rate, **kwargs)
        self.adaptive = True  # the number of steps is not known ahead (the progress line says so)
        self.next_step = next_step
        self.saturated = saturated
        self.stopped_early: set[int] = set()

    def _phase_over(self, now: float, completed: int, spawned: bool, sent: int, open_: int) -> bool:
        over = super()._phase_over(now, completed, spawned, sent, open_)
        if self._phase == "measure" and not over and self.saturated(self._index):
            self.stopped_early.add(self._index)
            return True
        if over and self._phase == "cooldown" and self._index + 1 == len(self.steps):
            spec = self.next_step(self._index, now, sent, open_)
            if spec is not None:
                self.steps.append(spec)
        return over
