"""The workers of a distributed run, one row each: clock offset, records received, losses, and
their own CPU and scheduling lag in every step's window (the step's client health is the worst of
them; this shows which). From the run log alone: the manifest's `workers` (written by the master,
harness.load.locust.shipping) and each step's `client.workers` (keyed by Locust node id)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.report.steps import StepReport


def _f(value: Any, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def workers_table(
    steps: Sequence[StepReport], manifest: dict[str, Any] | None
) -> tuple[list[str], list[list[str]]]:
    """(header, rows); no rows for a one-process run."""
    listed: dict[str, Any] = dict((manifest or {}).get("workers") or {})
    nodes = {str(info.get("node")): worker for worker, info in listed.items() if isinstance(info, dict)}
    for s in steps:  # workers the manifest does not list (a run log written before it did)
        for node in s.info.workers_health:
            if node not in nodes:
                nodes[node] = node
                listed.setdefault(node, {"node": node})
    if not listed:
        return [], []
    header = ["Worker", "Clock offset ± uncertainty (ms)", "Records received", "Lost"]
    header += [f"{s.info.users} users: CPU % / lag p99 ms" for s in steps]
    rows = []
    for worker, info in sorted(listed.items()):
        clock = info.get("clock") or {}
        offset, unsure = clock.get("offset_s"), clock.get("uncertainty_s")
        unsure_ms = None if unsure is None else unsure * 1000
        clock_s = "–" if offset is None else f"{offset * 1000:+.2f} ± {_f(unsure_ms, 2)}"
        lost = info.get("lost") or []
        lost_s = "; ".join(
            "gone" if x.get("back_at") is None else f"{x['back_at'] - x['lost_at']:.1f} s" for x in lost
        ) or "—"
        row = [worker, clock_s, str(info.get("records_received", "–")), lost_s]
        for s in steps:
            health = s.info.workers_health.get(str(info.get("node"))) or {}
            row.append(f"{_f(health.get('cpu_percent'), 0)} / {_f(health.get('sched_lag_p99_ms'), 1)}")
        rows.append(row)
    return header, rows


def workers_markdown(steps: Sequence[StepReport], manifest: dict[str, Any] | None) -> str:
    header, rows = workers_table(steps, manifest)
    if not rows:
        return ""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
