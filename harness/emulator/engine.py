"""The scheduler model: a router queue in front of MAX_BATCH_SIZE slots, advanced in simulated time.

Pure and clock-free: callers pass `now` (seconds on any monotonic clock). Each engine step
(a prefill or a decode) starts when the previous one ends, so step ends are ABSOLUTE deadlines
and the server's lateness never accumulates into the model. A step that ends at `t` releases
one token per member, all with deadline `t`.

Modes:
- neuron: static slots. At each step boundary, waiting requests that fit the free slots are
  prefilled together (left-padded: cost counts n × longest prompt) while running slots pause.
- continuous: TGI's GPU router. With nothing running, a batch is prefilled at once (within
  max_batch_prefill_tokens). While running, waiting requests join only when at least
  floor(running × waiting_served_ratio) of them can, or after max_waiting_tokens decode steps;
  running requests pause during that prefill (no chunked prefill).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from harness.emulator.profiles import Profile


@dataclass(eq=False)
class SimRequest:
    """One request as the engine sees it; `tag` is the server's handle (opaque here)."""

    input_tokens: int
    output_tokens: int
    tag: Any = None
    arrival: float = 0.0
    prefill_start: float | None = None
    generated: int = 0
    cancelled: bool = False
    done: bool = False


class Emission(NamedTuple):
    req: SimRequest
    index: int  # 1-based token index
    deadline: float
    last: bool


@dataclass
class Step:
    kind: str  # prefill | decode
    members: list[SimRequest]
    start: float
    end: float


@dataclass
class Engine:
    profile: Profile
    waiting: deque[SimRequest] = field(default_factory=deque)
    running: list[SimRequest] = field(default_factory=list)
    step: Step | None = None
    steps_since_prefill: int = 0
    prefills: int = 0
    decodes: int = 0
    # (kind, members, seconds) of steps completed since the server last drained them: TGI's
    # per-batch metrics (tgi_batch_inference_duration{method}, ...) are observed from these
    completed: list[tuple[str, int, float]] = field(default_factory=list)

    @property
    def queue_size(self) -> int:
        return len(self.waiting)

    @property
    def batch_size(self) -> int:
        return len(self.running)

    def in_flight(self) -> int:
        return len(self.waiting) + len(self.running) + (
            len(self.step.members) if self.step and self.step.kind == "prefill" else 0
        )

    def next_deadline(self) -> float | None:
        return self.step.end if self.step else None

    def submit(self, req: SimRequest, now: float) -> None:
        """Queue a request arriving at `now`; an idle engine starts its prefill right away."""
        req.arrival = now
        self.waiting.append(req)
        if self.step is None:
            self._start_next(now)

    def cancel(self, req: SimRequest) -> None:
        """Client went away: a waiting request leaves at once, a running one at the next boundary."""
        req.cancelled = True
        if req in self.waiting:
            self.waiting.remove(req)

    def advance(self, now: float) -> list[Emission]:
        """Complete every step ending at or before `now`; return the tokens they release."""
        out: list[Emission] = []
        while self.step is not None and self.step.end <= now:
            step = self.step
            self._complete(step, out)
            self._start_next(step.end)
        return out

    # -- internals -------------------------------------------------------------------------

    def _complete(self, step: Step, out: list[Emission]) -> None:
        t = step.end
        if len(self.completed) < 10_000:  # bounded when nobody drains (a bare Engine in tests)
            self.completed.append((step.kind, len(step.members), step.end - step.start))
        if step.kind == "prefill":
            self.prefills += 1
            for req in step.members:
                if req.cancelled:
                    continue
                req.generated = 1
                last = req.output_tokens <= 1
                out.append(Emission(req, 1, t, last))
                if last:
                    req.done = True
                else:
                    self.running.append(req)
        else:
            self.decodes += 1
            still = []
            for req in step.members:
                if req.cancelled:
                    continue
                req.generated += 1
                last = req.generated >= req.output_tokens
                out.append(Emission(req, req.generated, t, last))
                if last:
                    req.done = True
                else:
                    still.append(req)
            self.running = still

    def _eligible(self, t: float) -> int:
        n = 0
        for req in self.waiting:
            if req.arrival > t:
                break
            n += 1
        return n

    def _start_next(self, t: float) -> None:
        self.running = [r for r in self.running if not r.cancelled]
        p = self.profile
        free = p.max_batch_size - len(self.running)
        eligible = self._eligible(t)
        take = 0
        if eligible and free > 0:
            if p.mode == "continuous" and self.running:
                min_size = math.floor(len(self.running) * p.waiting_served_ratio)
                if self.steps_since_prefill >= p.max_waiting_tokens:
                    min_size = 1
                take = min(free, eligible) if min(free, eligible) >= max(min_size, 1) else 0
            else:
                take = min(free, eligible)
        if take:
            members = []
            budget = p.max_batch_prefill_tokens or (p.max_input_tokens + 50)
            used = 0
            for _ in range(take):
                nxt = self.waiting[0]
                if p.mode == "continuous" and members and used + nxt.input_tokens > budget:
                    break
                members.append(self.waiting.popleft())
                used += nxt.input_tokens
            for req in members:
                req.prefill_start = t
            if p.mode == "neuron":
                tokens = len(members) * max(r.input_tokens for r in members)
            else:
                tokens = used
            self.steps_since_prefill = 0
            self.step = Step("prefill", members, t, t + p.prefill_s(len(members), tokens))
        elif self.running:
            if self.waiting:
                self.steps_since_prefill += 1
            self.step = Step("decode", list(self.running), t, t + p.decode_s(len(self.running)))
        elif self.waiting:
            # idle, but a request arrived after `t` (the caller advanced late): start at its arrival
            self._start_next(max(t, self.waiting[0].arrival))
        else:
            self.step = None
