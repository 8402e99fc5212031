"""What the web UI's LLM tab shows, computed from the records in memory (no Locust here, pure).

`LiveView.add` is subscribed to the process's record sink (harness.load.locust.users: every record
a local user makes, and on a master every record the workers send it). It keeps, per step, only the
records whose life overlaps that step's measurement window or its cool-down — exactly the records
the report's figures for that step read (`split_step`, `aggregate_output_tps`, `completed_in` all select
from those), so `step_table` gives the report's own rows (harness.report.steps.compute and
harness.report.tables.rows_for, not a second implementation) while memory stays bounded by what the
windows need. Records that overlap no window (ramps, warm-ups) feed the time series and are then
dropped.

The time series are sampled once a second by `sample`: TTFT and ITL percentiles (exact, the
metrics' own functions) over the requests completed in the last `TRAILING_S` seconds, output
tokens per wall second by token arrival (the same counting as the report's throughput, so the last
seconds fill in as streams finish), requests in flight, and errors by type so far.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.analysis import metrics
from harness.analysis.attribution import counts_tokens
from harness.config.model import Flags, Slo
from harness.records.record import Record
from harness.report.inputs import StepInfo
from harness.report.steps import compute
from harness.report.tables import rows_for

TRAILING_S = 10.0  # the latency series' trailing window
MAX_POINTS = 7200  # two hours of 1 s samples, then the oldest go
PLACE_MARGIN_S = 5.0  # an unplaced record this recent may still meet a window being opened
OPEN_REFRESH_S = 3.0  # an open window's column is recomputed at most this often (it reads every token)


@dataclass(frozen=True)
class Span:
    """One phase of a step on the wall clock (end None: still running)."""

    step: int
    users: int
    phase: str
    start: float
    end: float | None


def windows_of(spans: Sequence[Span]) -> dict[int, tuple[float, float | None]]:
    """Each step's span from its measurement window's opening to the step's close (start, end or
    None while open): the window, then its cool-down when it has one (the requests sent in the
    window end there, and throughput is measured over the whole span)."""
    out: dict[int, tuple[float, float | None]] = {}
    for s in spans:
        if s.phase == "measure":
            out[s.step] = (s.start, s.end)
        elif s.phase == "cooldown" and s.step in out:
            out[s.step] = (out[s.step][0], s.end)
    return out


@dataclass
class _Recent:
    wall_end: float
    ttft: float | None
    itl: float | None


@dataclass
class LiveView:
    """Per-step records for the live table, and the time series of the LLM tab's charts."""

    spans: Callable[[], Sequence[Span]] = lambda: ()
    steps: dict[int, list[Record]] = field(default_factory=dict)
    unplaced: list[Record] = field(default_factory=list)
    recent: deque[_Recent] = field(default_factory=deque)
    tokens: dict[int, int] = field(default_factory=dict)  # wall second → token events arrived
    errors: Counter[str] = field(default_factory=Counter)
    points: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_POINTS))
    records: int = 0  # records seen this test
    _cache: dict[int, tuple[Any, ...]] = field(default_factory=dict)

    def reset(self) -> None:
        """A new test: forget the previous one."""
        self.steps.clear()
        self.unplaced.clear()
        self.recent.clear()
        self.tokens.clear()
        self.errors.clear()
        self.points.clear()
        self._cache.clear()
        self.records = 0

    def add(self, r: Record) -> None:
        self.records += 1
        if r.ok:
            self.recent.append(_Recent(r.wall_end, metrics.ttft_s(r), metrics.itl_s(r)))
        else:
            self.errors[r.error_type or "error"] += 1
        if counts_tokens(r) and r.token_us:
            for t in r.token_us:
                sec = int(r.wall_start + t / 1e6)
                self.tokens[sec] = self.tokens.get(sec, 0) + 1
        self.unplaced.append(r)
        self.place()

    def place(self, now: float | None = None) -> None:
        """Give each new record to every step whose window its life overlaps; drop the rest once no
        window can still open under them (a window opens at the present, after they ended)."""
        if not self.unplaced:
            return
        now = time.time() if now is None else now
        windows = windows_of(self.spans())
        keep = []
        for r in self.unplaced:
            placed = False
            for step, (start, end) in windows.items():
                if r.wall_end >= start and (end is None or r.wall_start < end):
                    self.steps.setdefault(step, []).append(r)
                    placed = True
            if not placed and r.wall_end > now - PLACE_MARGIN_S:
                keep.append(r)
        self.unplaced = keep

    def sample(self, now: float, in_flight: int | None) -> dict[str, Any]:
        """One point of the time series (called about once a second)."""
        self.place(now)
        while self.recent and self.recent[0].wall_end < now - TRAILING_S:
            self.recent.popleft()
        ttft = [x.ttft for x in self.recent if x.ttft is not None]
        itl = [x.itl for x in self.recent if x.itl is not None]
        horizon = int(now) - MAX_POINTS
        for sec in [s for s in self.tokens if s < horizon]:
            del self.tokens[sec]
        point = {
            "t": now,
            "ttft_p50_ms": _ms(metrics.percentile(ttft, 50)),
            "ttft_p99_ms": _ms(metrics.percentile(ttft, 99)),
            "itl_p50_ms": _ms(metrics.percentile(itl, 50)),
            "itl_p99_ms": _ms(metrics.percentile(itl, 99)),
            "in_flight": in_flight,
            "errors": dict(self.errors),
        }
        self.points.append(point)
        return point

    def token_rate(self) -> list[list[int]]:
        """[wall second, token events that arrived in it] for the seconds known so far."""
        return [[s, n] for s, n in sorted(self.tokens.items())]

    def step_table(
        self, infos: Sequence[StepInfo], price: float | None, flags: Flags,
        open_steps: frozenset[int] = frozenset(), now: float | None = None, slo: Slo | None = None,
    ) -> dict[str, Any]:
        """The report's table (harness.report.tables.rows_for) over the steps whose window has opened:
        a closed window's column is the report's column for that step once its last overlapping
        record arrived; an open one (`open_steps`, its window ending now) is recomputed at most
        every OPEN_REFRESH_S, as reading every token of the window blocks the event loop. With SLOs
        (`slo`), the SLO rows too: load offered → achieved, SLO status, goodput."""
        now = time.monotonic() if now is None else now
        self.place()
        columns = []
        for info in infos:
            recs = self.steps.get(info.step, [])
            key = (info.window, len(recs), info.client_cpu_percent, info.sched_lag_p99_ms)
            cached = self._cache.get(info.step)
            fresh = cached is not None and (
                cached[0] == key
                or (info.step in open_steps and cached[0][0].start == info.window.start
                    and now - cached[2] < OPEN_REFRESH_S)
            )
            if not fresh:
                (report,) = compute(recs, [info], price, flags, slo=slo)
                cached = self._cache[info.step] = (key, report, now)
            columns.append(cached[1])
        return {
            # users, or "R req/s" for an open-loop step
            "users": [s.info.users if s.info.rate is None else s.info.label for s in columns],
            "steps": [s.info.step for s in columns],
            "rows": [{"label": row.label, "cells": [row.cell(s) for s in columns]}
                     for row in rows_for(columns)],
        }


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else seconds * 1000.0
