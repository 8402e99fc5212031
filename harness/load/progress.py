"""The live line on the terminal while a sweep runs, read from the records being written.

`RecordTail` follows records-*.jsonl (the writers flush every 0.5 s) so the live TTFT/ITL are the
same exact figures the report will compute, not Locust's bucketed ones. `progress_line` is pure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.analysis import metrics
from harness.records.record import Record


@dataclass
class StepLive:
    ok: int = 0
    failed: int = 0
    ttft: list[float] = field(default_factory=list)
    itl: list[float] = field(default_factory=list)


class RecordTail:
    """Reads whole new lines appended to records*.jsonl in a directory since the last poll."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._offsets: dict[Path, int] = {}
        self.steps: dict[int | None, StepLive] = {}

    def poll(self) -> list[Record]:
        out: list[Record] = []
        for path in sorted(self.directory.glob("records*.jsonl")):
            offset = self._offsets.get(path, 0)
            try:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    data = fh.read()
            except OSError:
                continue
            end = data.rfind(b"\n") + 1  # leave a half-written last line for the next poll
            self._offsets[path] = offset + end
            for line in data[:end].splitlines():
                try:
                    d = json.loads(line)
                except ValueError:
                    continue
                if "request_id" in d:
                    out.append(Record.from_dict(d))
        for r in out:
            live = self.steps.setdefault(r.step, StepLive())
            if r.ok:
                live.ok += 1
                if r.phase in ("warmup", "measure"):
                    ttft, itl = metrics.ttft_s(r), metrics.itl_s(r)
                    if ttft is not None:
                        live.ttft.append(ttft)
                    if itl is not None:
                        live.itl.append(itl)
            else:
                live.failed += 1
        return out


def _dur(seconds: float) -> str:
    if seconds == float("inf"):
        return "∞"
    s = int(round(seconds))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def progress_line(
    step: int,
    steps: int,
    users: int,
    phase: str,
    phase_elapsed: float,
    live: StepLive | None,
    left: tuple[float, float],
) -> str:
    """One terminal line: `step 2/5 · 2 users · measure 12s · 4 ok / 0 failed · TTFT p50 1020 ms · …`"""
    live = live or StepLive()
    ttft = metrics.percentile(live.ttft, 50)
    itl = metrics.percentile(live.itl, 50)
    ttft_s = "–" if not live.ttft else f"{ttft * 1000:.0f} ms"
    itl_s = "–" if not live.itl else f"{itl * 1000:.1f} ms"
    lo, hi = left
    left_s = _dur(lo) if abs(hi - lo) < 1 else f"{_dur(lo)}–{_dur(hi)}"
    return (
        f"step {step + 1}/{steps} · {users} users · {phase} {_dur(phase_elapsed)} · "
        f"{live.ok} ok / {live.failed} failed · TTFT p50 {ttft_s} · ITL p50 {itl_s} · left {left_s}"
    )
