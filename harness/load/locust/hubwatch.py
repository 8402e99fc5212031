"""Who holds the gevent hub, and for how long: an instrument for the client's TTFT tail (issue #12).

Every greenlet switch is traced (`greenlet.settrace`): the time since the previous switch belongs to
the greenlet that was running, named after what it runs (`RecordWriter._loop`, `run_user`, `hub`,
...). A run is counted in CPU time of this thread (`time.thread_time`), not wall time, so a run is
only "long" for the work it did itself, not because the machine's scheduler preempted the process
(the measure holds on a shared machine). Garbage-collector passes are timed the same way (they stop
every greenlet) and reported apart: their time is not charged to the greenlet they interrupted.
The hub's own runs are the socket callbacks and timers of one loop iteration: many small pieces of
work batched together, not one blocking call, so they are reported apart too.

Not loaded by the harness itself: the client benchmark (bench/client_tail.py) and the test that pins
issue #12's fix install it around a sweep. Tracing costs ~1 µs per switch.
"""

from __future__ import annotations

import functools
import gc
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import greenlet

_perf = time.perf_counter
_cpu = time.thread_time


@dataclass
class Runs:
    """One label's runs: how many, their total and longest CPU time (s), and how many were long."""

    count: int = 0
    cpu_s: float = 0.0
    max_cpu_s: float = 0.0
    max_wall_s: float = 0.0
    long: int = 0


@dataclass
class HubWatch:
    """Traces greenlet switches and GC passes of this thread while installed."""

    threshold_s: float = 0.001  # a run longer than this in CPU time is long
    wall_threshold_s: float = 0.005  # ... or this in wall time (blocked in a syscall, preempted, GIL)
    keep: int = 2000  # long runs kept with their time (perf clock), label, CPU and wall seconds
    runs: dict[str, Runs] = field(default_factory=dict)
    long_runs: list[tuple[float, str, float, float]] = field(default_factory=list)
    _t: float = 0.0
    _c: float = 0.0
    _gc_t: float = 0.0
    _gc_c: float = 0.0
    _gc_in_run: float = 0.0  # CPU of GC passes inside the current run: theirs, not the greenlet's
    _previous: Any = None
    # by greenlet, weakly: a dead greenlet's id() is reused by new ones (a dict by id mislabelled them)
    _labels: weakref.WeakKeyDictionary = field(default_factory=weakref.WeakKeyDictionary)

    def install(self) -> HubWatch:
        self._t, self._c = _perf(), _cpu()
        self._previous = greenlet.settrace(self._trace)
        gc.callbacks.append(self._on_gc)
        return self

    def uninstall(self) -> None:
        greenlet.settrace(self._previous)
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _trace(self, event: str, args: Any) -> None:
        if event in ("switch", "throw"):
            origin = args[0]
            now, cpu = _perf(), _cpu()
            try:
                label = self._labels.get(origin)
                if label is None:
                    label = self._labels[origin] = label_of(origin)
            except TypeError:  # not weakly referenceable
                label = label_of(origin)
            gc_s, self._gc_in_run = self._gc_in_run, 0.0
            self._add(label, now, cpu - self._c - gc_s, now - self._t)
            self._t, self._c = _perf(), _cpu()  # our own bookkeeping is not charged to anyone
        if self._previous is not None:
            self._previous(event, args)

    def _add(self, label: str, now: float, cpu_s: float, wall_s: float) -> None:
        r = self.runs.get(label)
        if r is None:
            r = self.runs[label] = Runs()
        r.count += 1
        r.cpu_s += cpu_s
        if cpu_s > r.max_cpu_s:
            r.max_cpu_s = cpu_s
        if wall_s > r.max_wall_s:
            r.max_wall_s = wall_s
        if cpu_s > self.threshold_s:
            r.long += 1
        if (cpu_s > self.threshold_s or wall_s > self.wall_threshold_s) and len(self.long_runs) < self.keep:
            self.long_runs.append((now - wall_s, label, cpu_s, wall_s))

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_t, self._gc_c = _perf(), _cpu()
        else:
            now, used = _perf(), _cpu() - self._gc_c
            self._gc_in_run += used
            self._add(f"gc (generation {info.get('generation')})", now, used, now - self._gc_t)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per label: runs, CPU total and max (ms), longest wall time (ms), runs longer than the
        CPU threshold."""
        return {
            label: {"runs": r.count, "cpu_ms": r.cpu_s * 1000, "max_cpu_ms": r.max_cpu_s * 1000,
                    "max_wall_ms": r.max_wall_s * 1000, "long": r.long}
            for label, r in sorted(self.runs.items(), key=lambda kv: -kv[1].max_cpu_s)
        }

    def long_in(self, own: Callable[[str], bool]) -> list[tuple[float, str, float, float]]:
        """The long runs whose label `own` accepts (GC passes and the hub's loop excluded)."""
        return [r for r in self.long_runs if own(r[1])]


def label_of(g: Any) -> str:
    """A greenlet's name for the report: the hub, the main greenlet, or the function it runs."""
    if type(g).__name__ == "Hub" or getattr(g, "loop", None) is not None and hasattr(g, "NOT_ERROR"):
        return "hub"
    run = getattr(g, "_run", None)
    if run is None:
        run = getattr(g, "run", None)
    if run is None:
        return "main" if getattr(g, "parent", None) is None else type(g).__name__
    while isinstance(run, functools.partial):
        run = run.func
    name = getattr(run, "__qualname__", None) or getattr(getattr(run, "__func__", None), "__qualname__", None)
    return name or type(run).__name__
