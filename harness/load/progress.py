"""The live line on the terminal while a sweep runs, fed by the record sink in memory.

`LiveSteps.add` is called for every record the process's users produce (harness.load.locust.users
hands each record to the writer and here), so the live TTFT/ITL are the same exact figures the
report will compute, not Locust's bucketed ones, without re-reading the JSONL being written.
`progress_line` is pure.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from harness.analysis import metrics
from harness.analysis.attribution import MEASURED_PHASES
from harness.records.record import Record


def _floats() -> array:
    return array("d")


@dataclass
class StepLive:
    """The live view of one step. TTFT and ITL are kept one per measured request for the exact
    percentiles, as packed doubles (8 bytes each, not a 32-byte float object and its list slot):
    a 30-minute soak at 256 streams keeps ~300,000 of each (bench/soak.py, docs/capacity.md)."""

    ok: int = 0
    failed: int = 0
    ttft: array = field(default_factory=_floats)
    itl: array = field(default_factory=_floats)
    errors: dict[str, int] = field(default_factory=dict)  # failures by error type (HTTP status)

    def top_error(self) -> str | None:
        """The most frequent failure, e.g. "http_404 ×17967" (None without failures)."""
        if not self.errors:
            return None
        kind, n = max(self.errors.items(), key=lambda kv: kv[1])
        return f"{kind} ×{n}"


class LiveSteps:
    """Per step: successes, failures and the TTFT/ITL samples of requests sent in its window."""

    def __init__(self) -> None:
        self.steps: dict[int | None, StepLive] = {}

    def add(self, r: Record) -> None:
        live = self.steps.get(r.step)
        if live is None:
            live = self.steps[r.step] = StepLive()
        if r.ok:
            live.ok += 1
            if r.phase in MEASURED_PHASES:
                ttft, itl = metrics.ttft_s(r), metrics.itl_s(r)
                if ttft is not None:
                    live.ttft.append(ttft)
                if itl is not None:
                    live.itl.append(itl)
        else:
            live.failed += 1
            kind = r.error_type or "error"
            if r.status is not None and r.status != 200 and not kind.startswith("http_"):
                kind = f"{kind} (HTTP {r.status})"
            live.errors[kind] = live.errors.get(kind, 0) + 1


def _dur(seconds: float) -> str:
    if seconds == float("inf"):
        return "∞"
    s = int(round(seconds))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def progress_line(
    step: int,
    steps: int | None,
    users: int | str,
    phase: str,
    phase_elapsed: float,
    live: StepLive | None,
    left: tuple[float, float],
) -> str:
    """One terminal line: `step 2/5 · 2 users · measure 12s · 4 ok / 0 failed · TTFT p50 1020 ms · …`
    (`users`: a count, or an open-loop step's label, e.g. "20 req/s"; `steps` None: a search, whose
    number of steps is not known ahead)."""
    live = live or StepLive()
    ttft = metrics.percentile(live.ttft, 50)
    itl = metrics.percentile(live.itl, 50)
    ttft_s = "–" if not live.ttft else f"{ttft * 1000:.0f} ms"
    itl_s = "–" if not live.itl else f"{itl * 1000:.1f} ms"
    lo, hi = left
    left_s = _dur(lo) if abs(hi - lo) < 1 else f"{_dur(lo)}–{_dur(hi)}"
    top = live.top_error()
    failed = f"{live.failed} failed" + (f" (most: {top})" if top else "")
    load = f"{users} users" if isinstance(users, int) else users
    return (
        f"step {step + 1}{'' if steps is None else f'/{steps}'} · {load} · {phase} {_dur(phase_elapsed)} · "
        f"{live.ok} ok / {failed} · TTFT p50 {ttft_s} · ITL p50 {itl_s} · left {left_s}"
    )
