"""One step of a report: what the sweep saved about it, its metrics and its flags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.analysis import metrics
from harness.analysis.attribution import counted_records, split_step
from harness.analysis.metrics import StepMetrics
from harness.analysis.openloop import OpenLoop, open_loop
from harness.analysis.slo import SloResult, slo_result
from harness.config.model import Flags, Slo
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
    open_loop: OpenLoop | None = None  # rate steps: offered vs achieved, schedule lag, queue time
    server: ServerStep | None = field(default=None)
    slo: SloResult | None = None  # with an [slo] section: objectives, goodput, cost at goodput

    @property
    def achieved_rps(self) -> float:
        """Requests sent in the window ÷ the window (closed or open loop; NaN without a window)."""
        w = self.m.window_s
        return self.m.sent / w if w and w > 0 else float("nan")


def compute(
    records: Sequence[Record],
    infos: Sequence[StepInfo],
    price: float | None,
    flags: Flags,
    scrapes: Scrapes | None = None,
    neuron: Scrapes | None = None,
    slo: Slo | None = None,
) -> list[StepReport]:
    """Each step's metrics, from the records the attribution rule gives it, and its flags; with the
    server's scraped metrics, its server-side figures too; with SLOs (any set), its objectives and
    goodput (a missed objective is a flag: --strict exits 1)."""
    out = []
    for info in infos:
        split = split_step(records, info.step, info.closed_at)
        measured = split.measured
        m = metrics.step_metrics(
            info.step, info.users, measured, records, info.window, price, split.censored, info.span
        )
        loop = None
        if info.rate is not None:
            mine = [r for r in records if r.step == info.step]
            loop = open_loop(mine, counted_records(mine, info.step), measured, info.window, info.rate)
        server = None
        scraped = scrapes if scrapes is not None and scrapes.times else None
        reported = neuron if neuron is not None and neuron.times else None
        if scraped is not None or reported is not None:
            server = server_step(scraped, info.window.start, info.window.end, records, measured, reported)
        step_flags_ = step_flags(info, m, flags, loop)
        if server is not None and server.count_mismatch:
            step_flags_.append("server count differs")
        verdict = None
        if slo is not None and slo.any:
            verdict = slo_result(measured, m.censored, m.window_s, slo, price)
            if not verdict.passed:
                step_flags_.append("SLO missed (" + "; ".join(o.describe() for o in verdict.missed) + ")")
        out.append(StepReport(info, m, step_flags_, loop, server, verdict))
    return out
