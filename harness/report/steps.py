"""One step of a report: what the sweep saved about it, its metrics and its flags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.analysis import metrics
from harness.analysis.attribution import counted_records, split_step
from harness.analysis.metrics import StepMetrics
from harness.analysis.openloop import OpenLoop, open_loop
from harness.config.model import Flags
from harness.records.record import Record
from harness.report.flags import step_flags
from harness.report.inputs import StepInfo


@dataclass
class StepReport:
    info: StepInfo
    m: StepMetrics
    flags: list[str]
    open_loop: OpenLoop | None = None  # rate steps: offered vs achieved, schedule lag, queue time


def compute(
    records: Sequence[Record], infos: Sequence[StepInfo], price: float | None, flags: Flags
) -> list[StepReport]:
    """Each step's metrics, from the records the attribution rule gives it, and its flags."""
    out = []
    for info in infos:
        split = split_step(records, info.step, info.closed_at)
        m = metrics.step_metrics(
            info.step, info.users, split.measured, records, info.window, price, split.censored, info.span
        )
        loop = None
        if info.rate is not None:
            mine = [r for r in records if r.step == info.step]
            loop = open_loop(mine, counted_records(mine, info.step), split.measured, info.window, info.rate)
        out.append(StepReport(info, m, step_flags(info, m, flags, loop), loop))
    return out
