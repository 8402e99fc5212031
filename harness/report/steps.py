"""One step of a report: what the sweep saved about it, its metrics and its flags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.analysis import metrics
from harness.analysis.attribution import measured_records
from harness.analysis.metrics import StepMetrics
from harness.config.model import Flags
from harness.records.record import Record
from harness.report.flags import step_flags
from harness.report.inputs import StepInfo
from harness.telemetry.series import Scrapes
from harness.telemetry.server_steps import ServerStep, server_step


@dataclass
class StepReport:
    info: StepInfo
    m: StepMetrics
    flags: list[str]
    server: ServerStep | None = field(default=None)


def compute(
    records: Sequence[Record],
    infos: Sequence[StepInfo],
    price: float | None,
    flags: Flags,
    scrapes: Scrapes | None = None,
    neuron: Scrapes | None = None,
) -> list[StepReport]:
    """Each step's metrics, from the records the attribution rule gives it, and its flags; with the
    server's scraped metrics, its server-side figures too."""
    out = []
    for info in infos:
        measured = measured_records(records, info.step, info.window)
        m = metrics.step_metrics(info.step, info.users, measured, records, info.window, price)
        server = None
        scraped = scrapes if scrapes is not None and scrapes.times else None
        reported = neuron if neuron is not None and neuron.times else None
        if scraped is not None or reported is not None:
            server = server_step(scraped, info.window.start, info.window.end, records, measured, reported)
        step_flags_ = step_flags(info, m, flags)
        if server is not None and server.count_mismatch:
            step_flags_.append("server count differs")
        out.append(StepReport(info, m, step_flags_, server))
    return out
