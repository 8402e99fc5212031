"""The capacity search's load shape: an adaptive plan whose next step depends on the last one's SLOs.

`SearchShape` runs a `harness.load.search.AdaptivePlan` through the same PlanShape machinery as a
sweep (phases, window counts, tags, steps.json). It keeps every record of the run in memory (the
record sink's subscribers, harness.load.locust.users), and when a step's cool-down ends it computes
that step's report column exactly as the offline report will (harness.report.steps.compute with
the run's [slo]), tells the pure `SearchState` whether the step met the SLOs, and asks it for the
next load. While a window is open it asks the pure over-saturation detector
(harness.analysis.saturation) about the step's TTFT trend, and closes the window early when TTFT
grows steadily above the TTFT objective.

One process only: an open-loop step's users look its rate up in `shared.steps`, which the shape
extends as the plan grows; workers of a distributed run would not see the new steps.
"""

from __future__ import annotations

from typing import Any

from harness.analysis import metrics
from harness.analysis.attribution import Window
from harness.analysis.saturation import SaturationRule, over_saturated
from harness.config.model import RunConfig, Step, StepSpec
from harness.load.locust.shapes import PlanShape
from harness.load.locust.users import shared
from harness.load.search import AdaptivePlan, SearchState
from harness.records.record import Record
from harness.report.inputs import StepInfo
from harness.report.steps import compute

GUIDELLM_MIN_TTFT_S = 2.5  # the detector's floor when no TTFT objective is set (GuideLLM's default)


def step_spec(cfg: RunConfig, load: float) -> StepSpec:
    """One step at `load` (users, or requests/s for `--kind rate`) with the run's windows."""
    s = cfg.search
    entry: int | Step = int(load) if s.kind == "users" else Step(rate=load, arrival=s.arrival)
    one = cfg.model_copy(update={"steps": cfg.steps.model_copy(update={"users": [entry]})})
    return one.plan_steps()[0]


def saturation_rule(cfg: RunConfig) -> SaturationRule:
    """The detector's rule: its floor is the TTFT objective (a step that meets it is never stopped)."""
    slo = cfg.slo
    limit_ms = slo.ttft_p99_ms if slo.ttft_p99_ms is not None else slo.request_ttft_ms
    return SaturationRule(ttft_floor_s=limit_ms / 1000.0 if limit_ms is not None else GUIDELLM_MIN_TTFT_S)


class SearchShape(PlanShape):
    """`python -m harness search`: bracket then bisect the load against the run's SLOs."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[Record] = []
        self.state: SearchState | None = None
        self.saturation: dict[int, str] = {}  # step → why its window closed early
        self.notes: dict[int, str] = {}  # step → the verdict the search used

    def make_plan(self) -> AdaptivePlan:
        cfg = shared.config
        s = cfg.search
        self.state = SearchState(s.kind, s.start_load, s.min_load, s.max_load, s.resolution, s.max_tries)
        self.records.clear()
        shared.subscribe(self._add)
        first = step_spec(cfg, self.state.next_load() or s.start_load)
        shared.steps = (first,)
        return AdaptivePlan(first, self._next, self._saturated, cfg.steps.spawn_rate,
                            restart=cfg.steps.restart, stop_min_s=cfg.steps.stop_min_s)

    def _add(self, record: Record) -> None:
        if record.step is not None:
            self.records.append(record)

    def _saturated(self, index: int) -> bool:
        cfg = shared.config
        if not cfg.search.early_stop:
            return False
        mine = [r for r in self.records if r.step == index and r.phase == "measure" and r.ok]
        points = [(r.wall_start, t) for r in mine if (t := metrics.ttft_s(r)) is not None]
        if not points:
            return False
        t0 = min(x for x, _ in points)
        line = over_saturated([(x - t0, y) for x, y in points], saturation_rule(cfg))
        if line is None:
            return False
        self.saturation[index] = (f"over-saturated: TTFT rising {line.slope * 1000:.0f} ms/s over "
                                  f"{line.n} requests, {line.at_last * 1000:,.0f} ms at the last send")
        return True

    def _info(self, index: int, now: float) -> StepInfo:
        assert self.plan is not None and self._wall0 is not None
        spec = self.plan.steps[index]
        w0 = self._wall0
        mine = [sp for sp in self.plan.spans if sp.step == index]
        opened = [sp.start for sp in mine if sp.tag == "measure"]
        measure = next(sp for sp in mine if sp.phase == "measure")
        end = measure.end if measure.end is not None else now
        return StepInfo(step=index, users=spec.users, window=Window(w0 + min(opened), w0 + end),
                        min_requests=spec.measure.min_requests, close=w0 + now, rate=spec.rate)

    def _next(self, index: int, now: float, sent: int, open_: int) -> StepSpec | None:
        """A step's cool-down ended: its verdict to the search state, and the next step (None: done)."""
        assert self.plan is not None and self.state is not None
        cfg = shared.config
        spec = self.plan.steps[index]
        load = spec.rate if spec.rate is not None else float(spec.users)
        (report,) = compute(self.records, [self._info(index, now)], cfg.target.price_per_hour, cfg.flags,
                            slo=cfg.slo)
        why = [o.describe() for o in report.slo.missed] if report.slo is not None else []
        if index in self.saturation:
            why.append(self.saturation[index])
        if open_ > 0:
            why.append(f"{open_} requests still open at the cool-down's cap")
        passed = not why
        self.notes[index] = "pass" if passed else "; ".join(why)
        self.state.record(load, passed, self.notes[index])
        nxt = self.state.next_load()
        print(f"search: step {index} at {spec.label}{'' if spec.rate is not None else ' users'}: "
              f"{self.notes[index]} → " + ("done" if nxt is None else f"next {nxt:g}"), flush=True)
        if nxt is None:
            return None
        new = step_spec(cfg, nxt)
        shared.steps = (*self.plan.steps, new)
        return new

    def steps_json(self) -> list[dict[str, Any]]:
        """The sweep's steps.json, plus each step's early stop (the offline report's verdicts)."""
        steps = super().steps_json()
        for entry in steps:
            why = self.saturation.get(entry["step"])
            if why:
                entry["stopped_early"] = why
        return steps
