"""The sweep's load shape as a pure state machine: (elapsed, request counts) → what to run now.

No Locust and no clock here: `SweepPlan.tick` is fed the elapsed seconds, the running count of
successfully completed requests and the current step's window counts (requests sent inside its
measurement window, and how many of those are still open), so tests drive it with made-up
numbers. The Locust adapter (`harness.load.locust.shapes.SweepShape`) polls it about once a second
and calls `runstate.set_step` with the returned tag, which every record sent afterwards carries.

Each step goes [stop →] ramp → warmup → measure → cooldown:
- stop (only with `restart`, from the second step on): the step starts all of its users together.
  The shape asks for 0 users; the runner stops every user of the previous step (killed greenlets:
  their in-flight requests, all sent in the previous step's cool-down, end as "cancelled" records
  that count in no step). The phase ends when the runner reports no users left (in practice at
  its next poll, ~1 s later) or after `stop_max_s`, and lasts at least `stop_min_s` (a pause in
  which the server finishes what the stopped requests left it, before the step's users arrive).
- ramp: users are being started (until Locust reports spawning complete, or |Δusers| / spawn_rate
  seconds); requests sent now are tagged "ramp" and never count. With `restart` a step ramps from
  0 to N at max(spawn_rate, N) users/s, i.e. in one go, so the users send their first requests
  together (as llmperf's per-concurrency runs do); those requests run at the step's full user
  count, so they carry the tag of the phase that follows the ramp: "warmup", or "measure" when the
  step has no warm-up (the window then opens with its first requests, which count). A trace step
  (`StepSpec.trace`) has no warm-up and its ramp keeps the "ramp" tag: its drivers send nothing
  until every load generator runs one, then replay the trace from the window's start.
- warmup: the new load settles (queues fill, batches form); its requests count nowhere.
- measure: the window. A request counts in the step if it was *sent* in the window (tag
  "measure"), however long it takes: the rule is `harness.analysis.attribution`.
- cooldown: the window is closed but the load carries on unchanged until every request sent in
  it has ended (`window_open` = 0), or at the hard cap `StepSpec.cooldown_max_s` (those still open
  then are reported as censored). Requests sent in the cool-down count nowhere.
Warm-up ends by `PhaseRule` on completed requests; the window by `PhaseRule` on requests *sent* in
it (so "100 requests" means 100 measured requests), both with a time cap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from harness.config.model import PhaseRule, StepSpec

PHASES = ("stop", "ramp", "warmup", "measure", "cooldown")
STOP_MAX_S = 30.0  # a stop phase that the runner never confirms ends anyway after this


@dataclass(frozen=True, slots=True)
class Tick:
    step: int
    steps: int
    users: int  # users to run now: 0 while stopping, else the step's count
    spawn_rate: float
    phase: str  # "stop" | "ramp" | "warmup" | "measure" | "cooldown"
    step_users: int = 0  # the step's user count (what its records are tagged with)
    tag: str = ""  # the phase its records are tagged with ("warmup" for a restart's one-shot ramp)


@dataclass(slots=True)
class Span:
    """One phase as it actually ran, on the plan's clock (seconds since the sweep started)."""

    step: int
    users: int
    phase: str
    start: float
    end: float | None = None
    completed: int = 0  # successful requests completed during the phase
    tag: str = ""  # the phase its records were tagged with (a restart's one-shot ramp: the next phase's)


class SweepPlan:
    """Steps of (users, warm-up rule, window rule) walked through as time and completions advance.

    `restart`: every step after the first begins with a stop phase (0 users) and then starts all
    of its users at once (see the module docstring); an open-loop step (`StepSpec.rate`) always
    does, and so does the step after it. Its "users" are its arrival driver (one per load
    generator, see harness.load.locust.arrivals). `cooldown_min_s`: the shortest cool-down, for
    window counts that arrive late (distributed: workers report every few seconds).
    """

    def __init__(
        self,
        steps: Sequence[StepSpec],
        spawn_rate: float,
        restart: bool = False,
        stop_max_s: float = STOP_MAX_S,
        cooldown_min_s: float = 0.0,
        stop_min_s: float = 0.0,
    ) -> None:
        if not steps:
            raise ValueError("a sweep needs at least one step")
        if spawn_rate <= 0:
            raise ValueError("spawn_rate must be > 0")
        if stop_max_s < 0:
            raise ValueError("stop_max_s must be >= 0")
        self.steps = list(steps)
        self.spawn_rate = spawn_rate
        self.restart = restart
        self.stop_max_s = stop_max_s
        self.cooldown_min_s = cooldown_min_s
        self.stop_min_s = min(stop_min_s, stop_max_s)
        self.spans: list[Span] = []
        self._index = -1
        self._phase = ""
        self._start = 0.0
        self._done_at_start = 0
        self.finished = False

    # --- the state machine ---------------------------------------------------------------

    def oneshot(self, index: int) -> bool:
        """Whether step `index` starts from no users, all at once: with `restart`, and at every
        boundary with an open-loop step (its arrival driver starts afresh, and a closed-loop step
        after it starts its users together)."""
        prev = self.steps[index - 1].rate is not None if index > 0 else False
        return self.restart or self.steps[index].rate is not None or prev

    def stops_first(self, index: int) -> bool:
        """Whether step `index` begins by stopping the previous step's users."""
        return index > 0 and self.oneshot(index)

    def rate(self, index: int) -> float:
        """Users started per second in step `index`'s ramp (all at once when one-shot)."""
        users = self.steps[index].users
        return max(self.spawn_rate, float(users)) if self.oneshot(index) else self.spawn_rate

    def ramp_s(self, index: int) -> float:
        prev = self.steps[index - 1].users if index > 0 and not self.oneshot(index) else 0
        return abs(self.steps[index].users - prev) / self.rate(index)

    def tag_of(self, index: int, phase: str) -> str:
        """The phase a record sent now is tagged with (a one-shot ramp: the phase after it; a
        trace step's ramp stays "ramp": its drivers wait for the window, the trace's clock)."""
        if phase == "ramp" and self.oneshot(index) and self.steps[index].trace is None:
            return "warmup" if self.steps[index].warmup.max_s > 0 else "measure"
        return phase

    def _first_phase(self, index: int) -> str:
        return "stop" if self.stops_first(index) else "ramp"

    def _enter(self, index: int, phase: str, now: float, completed: int) -> None:
        if self.spans and self.spans[-1].end is None:
            self.spans[-1].end = now
            self.spans[-1].completed = completed - self._done_at_start
        self._index, self._phase, self._start, self._done_at_start = index, phase, now, completed
        users, tag = self.steps[index].users, self.tag_of(index, phase)
        self.spans.append(Span(step=index, users=users, phase=phase, start=now, tag=tag))

    def _phase_over(self, now: float, completed: int, spawned: bool, sent: int, open_: int) -> bool:
        elapsed = now - self._start
        if self._phase == "stop":
            return (spawned and elapsed >= self.stop_min_s) or elapsed >= self.stop_max_s
        if self._phase == "ramp":
            return spawned or elapsed >= self.ramp_s(self._index)
        spec = self.steps[self._index]
        if self._phase == "warmup":
            return spec.warmup.done(elapsed, completed - self._done_at_start)
        if self._phase == "measure":
            return spec.measure.done(elapsed, sent)
        return elapsed >= spec.cooldown_max_s or (open_ <= 0 and elapsed >= self.cooldown_min_s)

    def tick(
        self, now: float, completed: int, spawned: bool = False, window_sent: int = 0, window_open: int = 0
    ) -> Tick | None:
        """Advance to whatever phase applies at `now`; None once the last step's cool-down is over.

        `spawned`: the runner reports that it reached the current phase's user count: all of the
        step's users started (ends the ramp early) or, in a stop phase, none left running (ends
        it). A stop phase is always returned by at least one tick, so the runner sees the 0.
        `window_sent` / `window_open`: requests sent in the current step's window so far, and how
        many of them have not ended yet (they end the window and the cool-down).
        """
        if self.finished:
            return None
        if self._index < 0:
            self._enter(0, "ramp", now, completed)
            spawned = False  # a report about the previous state, not about this step
        # Loop so zero-length phases (no ramp, no warm-up) are passed within one tick.
        while self._phase_over(now, completed, spawned, window_sent, window_open):
            spawned = False
            if self._phase == "stop":
                self._enter(self._index, "ramp", now, completed)
            elif self._phase == "ramp":
                self._enter(self._index, "warmup", now, completed)
            elif self._phase == "warmup":
                self._enter(self._index, "measure", now, completed)
            elif self._phase == "measure":
                self._enter(self._index, "cooldown", now, completed)
            elif self._index + 1 < len(self.steps):
                self._enter(self._index + 1, self._first_phase(self._index + 1), now, completed)
                if self._phase == "stop":
                    return self.current()  # let the runner see the 0 before anything else
            else:
                self.spans[-1].end = now
                self.spans[-1].completed = completed - self._done_at_start
                self.finished = True
                return None
        return self.current()

    def current(self) -> Tick | None:
        if self._index < 0 or self.finished:
            return None
        spec = self.steps[self._index]
        users = 0 if self._phase == "stop" else spec.users
        tag = self.tag_of(self._index, self._phase)
        return Tick(self._index, len(self.steps), users, self.rate(self._index), self._phase, spec.users, tag)

    # --- for the progress line -------------------------------------------------------------

    def time_left(self, now: float) -> tuple[float, float]:
        """(at least, at most) seconds left, from the rules' minimum and maximum durations (a stop
        phase counted as 0 to 1 s: one runner poll)."""
        if self.finished:
            return 0.0, 0.0
        if self._index < 0:
            lo = hi = 0.0
            start_index, start_phase = 0, 0
        else:
            elapsed = now - self._start
            lo, hi = self._bounds(self._index, self._phase)
            lo, hi = max(lo - elapsed, 0.0), max(hi - elapsed, 0.0)
            start_index, start_phase = self._index, PHASES.index(self._phase) + 1
        for i in range(start_index, len(self.steps)):
            for phase in PHASES[start_phase:]:
                if phase == "stop" and not self.stops_first(i):
                    continue
                a, b = self._bounds(i, phase)
                lo, hi = lo + a, hi + b
            start_phase = 0
        return lo, hi

    def _bounds(self, index: int, phase: str) -> tuple[float, float]:
        if phase == "stop":
            return self.stop_min_s, min(max(1.0, self.stop_min_s + 1.0), self.stop_max_s)  # + one poll
        if phase == "ramp":
            r = self.ramp_s(index)
            return r, r
        if phase == "cooldown":
            cap = self.steps[index].cooldown_max_s
            return min(self.cooldown_min_s, cap), cap
        rule: PhaseRule = getattr(self.steps[index], phase)
        return rule.min_s, rule.max_s


def fixed_plan(users: int, spawn_rate: float, warmup_s: float = 0.0) -> SweepPlan:
    """One step that measures until stopped by hand (the web UI's "fixed users" shape)."""
    rule = PhaseRule(min_s=math.inf, max_s=math.inf, min_requests=0)
    warm = PhaseRule(min_s=warmup_s, max_s=warmup_s, min_requests=0)
    return SweepPlan([StepSpec(users=users, warmup=warm, measure=rule, cooldown_max_s=0.0)], spawn_rate)
