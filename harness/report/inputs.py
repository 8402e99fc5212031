"""Loading a run directory: the records (the truth), manifest.json and steps.json.

Nothing here computes a figure; `harness.report.build` turns what is loaded into a report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.analysis.attribution import CANCELLED, Window
from harness.config.model import trace_label
from harness.records.record import Record, read_records


def load_records(run_dir: Path) -> list[Record]:
    """All records-*.jsonl in the directory (one per worker process), sorted by send time."""
    out: list[Record] = []
    for path in sorted(run_dir.glob("records*.jsonl")):
        out.extend(read_records(path))
    out.sort(key=lambda r: r.wall_start)
    return out


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


@dataclass
class StepInfo:
    """What the sweep saved about one step: its window, its close and the client's health.

    `window`: the measurement window (requests sent in it count); `close`: when the step ended (its
    cool-down's end; requests still open then are censored); `span`: window opening → close, the
    span throughput is measured over.
    """

    step: int | None  # None: records without a step (see steps_from_records)
    users: int
    window: Window
    min_requests: int = 0
    close: float | None = None
    rate: float | None = None  # open-loop steps: the nominal rate (requests/s; a trace's mean rate)
    trace: str | None = None  # trace steps: the trace file
    speed: float = 1.0  # trace steps: the replay's speed factor
    client_cpu_percent: float | None = None
    sched_lag_p99_ms: float | None = None
    sched_lag_max_ms: float | None = None
    spans: dict[str, Any] = field(default_factory=dict)
    degraded: list[str] = field(default_factory=list)  # e.g. "degraded: lost worker host:123"
    clock_uncertainty_s: float | None = None  # distributed: the largest of the workers' (manifest)
    workers_health: dict[str, Any] = field(default_factory=dict)  # distributed: node → its health

    @property
    def label(self) -> str:
        """The step's column heading: its users, its rate, or its trace."""
        if self.trace is not None:
            return trace_label(self.trace, self.speed)
        return str(self.users) if self.rate is None else f"{self.rate:g} req/s"

    @property
    def closed_at(self) -> float:
        return self.window.end if self.close is None else self.close

    @property
    def span(self) -> Window:
        end = self.closed_at
        return Window(self.window.start, end if math.isfinite(end) else self.window.end)


def steps_from_json(data: list[dict[str, Any]]) -> list[StepInfo]:
    out = []
    for s in data:
        m = s["phases"].get("measure")
        if not m or m.get("end_wall") is None:
            continue  # the sweep stopped before this step's window closed
        client = s.get("client") or {}
        # A restart's one-shot ramp carries the window's tag when there is no warm-up: it opens it.
        opened = [p["start_wall"] for p in s["phases"].values() if p.get("tag") == "measure"]
        cool = s["phases"].get("cooldown")
        if cool is None:  # a run from before the cool-down: its window closed the step
            close = m["end_wall"]
        else:  # a cool-down cut short by the end of the run: nothing was censored by a cap
            close = cool["end_wall"] if cool.get("end_wall") is not None else math.inf
        out.append(
            StepInfo(
                step=s["step"],
                users=s["users"],
                window=Window(min([m["start_wall"], *opened]), m["end_wall"]),
                min_requests=s.get("min_requests", 0),
                close=close,
                rate=s.get("rate"),
                trace=s.get("trace"),
                speed=float(s.get("speed") or 1.0),
                client_cpu_percent=client.get("cpu_percent"),
                sched_lag_p99_ms=client.get("sched_lag_p99_ms"),
                sched_lag_max_ms=client.get("sched_lag_max_ms"),
                spans=s["phases"],
                degraded=list(s.get("degraded") or ()),
                workers_health=dict(client.get("workers") or {}),
            )
        )
    return out


def clock_uncertainty_s(manifest: dict[str, Any]) -> float | None:
    """The largest clock offset uncertainty of the run's workers (None: no distributed workers)."""
    clocks = [w.get("clock") for w in (manifest.get("workers") or {}).values() if isinstance(w, dict)]
    values = [float(c["uncertainty_s"]) for c in clocks
              if isinstance(c, dict) and c.get("uncertainty_s") is not None]
    return max(values) if values else None


def steps_from_records(records: Sequence[Record]) -> list[StepInfo]:
    """Fallback without steps.json: each step's window spans its measure-phase sends."""
    by_step: dict[int | None, list[Record]] = {}
    for r in records:  # step None: a locustfile run without steps (records written before they had one)
        if r.phase == "measure" and r.error_type != CANCELLED:
            by_step.setdefault(r.step, []).append(r)
    out = []
    for step, recs in sorted(by_step.items(), key=lambda kv: -1 if kv[0] is None else kv[0]):
        window = Window(min(r.wall_start for r in recs), max(r.wall_start for r in recs) + 1e-6)
        close = max(r.wall_end for r in recs) + 1e-6
        out.append(StepInfo(step=step, users=recs[0].users or 0, window=window, close=close))
    return out
