"""The capacity search's section of a report: its answer, the tried steps and its plots.

Recomputed offline like every figure: the run's header says it was a search (`manifest["search"]`,
with the [search] settings in its configuration), each step's verdict is its SLO result
(harness.analysis.slo, the same `compute` the search used while running) plus what steps.json
says about it (`stopped_early`: the over-saturation detector closed its window), and the answer
is `harness.load.search.SearchState` fed those verdicts in the order the steps ran.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.config.model import Search, Slo
from harness.load.search import SearchState
from harness.report import atomic
from harness.report.steps import StepReport

PLOT_FILES = ("search-latency.png", "search-goodput.png", "search-pareto.png")


def _load(s: StepReport) -> float:
    return s.info.rate if s.info.rate is not None else float(s.info.users)


def verdict(s: StepReport, stopped_early: str | None) -> tuple[bool, str]:
    """(passed, why not) of one tried step, as the search judged it."""
    why = [o.describe() for o in s.slo.missed] if s.slo is not None else ["no SLO result"]
    if stopped_early:
        why.append(stopped_early)
    if s.m.censored:
        why.append(f"{s.m.censored} requests censored")
    return not why, "; ".join(why) or "pass"


def search_state(
    steps: Sequence[StepReport], manifest: dict[str, Any] | None, steps_json: Sequence[dict[str, Any]] | None
) -> SearchState | None:
    """The search replayed from the steps' verdicts (None: the run was not a search)."""
    m = manifest or {}
    if not m.get("search"):
        return None
    s = Search(**((m.get("config") or {}).get("search") or {}))
    state = SearchState(s.kind, s.start_load, s.min_load, s.max_load, s.resolution, s.max_tries)
    early = {e.get("step"): e.get("stopped_early") for e in steps_json or ()}
    for step in steps:
        passed, why = verdict(step, early.get(step.info.step))
        state.record(_load(step), passed, why)
    return state


def _ms(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v * 1000:,.0f}"


def search_rows(steps: Sequence[StepReport], state: SearchState) -> list[list[str]]:
    """The tried steps in the order they ran: try, load, p99s, goodput, verdict."""
    rows = []
    for i, (s, trial) in enumerate(zip(steps, state.trials, strict=False)):
        g = s.slo
        rows.append([
            str(i + 1), s.info.label, _ms(s.m.ttft[99]), _ms(s.m.itl[99]),
            "n/a" if math.isnan(s.m.e2e[99]) else f"{s.m.e2e[99]:.2f}",
            "n/a" if g is None or math.isnan(g.goodput_rps) else f"{g.goodput_rps:.2f} ({g.goodput_tps:.0f})",
            "pass" if trial.passed else "fail: " + trial.note,
        ])
    return rows


SEARCH_HEADER = ["try", "load", "TTFT p99 (ms)", "ITL p99 (ms)", "E2E p99 (s)", "goodput req/s (tok/s)",
                 "verdict"]


def search_markdown(steps: Sequence[StepReport], state: SearchState) -> list[str]:
    lines = ["", "## Capacity search", "", f"**Answer: {state.answer()}**", ""]
    lines += ["| " + " | ".join(SEARCH_HEADER) + " |", "|---" * len(SEARCH_HEADER) + "|"]
    for row in search_rows(steps, state):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    lines += ["", "Bracket, then bisect: doubling from start_load while steps pass, then the midpoint of "
              "[last pass, first fail] until it is narrower than the resolution; a step passes when every "
              "objective of [slo] is met, no request was censored and its window was not closed early as "
              "over-saturated. Plots: " + ", ".join(PLOT_FILES) + "."]
    return lines


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both axes (more total and more per-user tokens/s), by x."""
    known = [p for p in points if not (math.isnan(p[0]) or math.isnan(p[1]))]
    front = [p for p in known if not any(q[0] >= p[0] and q[1] >= p[1] and q != p for q in known)]
    return sorted(front)


def search_plots(steps: Sequence[StepReport], slo: Slo, run_dir: Path | None) -> list[tuple[str, str]]:
    """(title, base64 PNG): p99 latencies vs load with the SLO lines, goodput vs load, and the Pareto
    of tokens/s per user against tokens/s in total; each also written to run_dir/PLOT_FILES."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.report.plots import _png

    order = sorted(steps, key=_load)
    if not order:
        return []
    loads = [_load(s) for s in order]
    ok = [s.slo is not None and s.slo.passed for s in order]
    xlabel = "requests/s" if order[0].info.rate is not None else "concurrent users"
    out: list[tuple[str, str]] = []

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    panels = ((a1, "ttft", slo.ttft_p99_ms, "TTFT p99"), (a2, "itl", slo.itl_p99_ms, "ITL p99"))
    for ax, key, limit, name in panels:
        ys = [getattr(s.m, key)[99] * 1000 for s in order]
        ax.plot(loads, ys, color="0.6", zorder=1)
        ax.scatter(loads, ys, c=["tab:green" if p else "tab:red" for p in ok], zorder=2,
                   label="step (green: met the SLOs)")
        if limit is not None:
            ax.axhline(limit, color="tab:red", linestyle="--", label=f"SLO {limit:g} ms")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("ms")
        ax.set_title(f"{name} vs load")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    out.append(("TTFT and ITL p99 vs load, with the SLO lines", _png(fig)))

    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(loads, [s.m.throughput_tps for s in order], marker="o", label="throughput (all requests)")
    ax.plot(loads, [s.slo.goodput_tps if s.slo else math.nan for s in order], marker="s",
            label="goodput (requests meeting the thresholds)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("output tokens/s")
    ax.set_title("Goodput vs load")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    out.append(("Goodput vs load", _png(fig)))

    fig, ax = plt.subplots(figsize=(6, 3.6))
    xs = [s.m.throughput_tps for s in order]
    ys = [s.m.output_tps[50] for s in order]
    ax.scatter(xs, ys, c=["tab:green" if p else "tab:red" for p in ok], zorder=2)
    front = pareto_front(list(zip(xs, ys, strict=True)))
    ax.plot([p[0] for p in front], [p[1] for p in front], color="tab:blue", zorder=1, label="Pareto front")
    for x, y, s in zip(xs, ys, order, strict=True):
        ax.annotate(s.info.label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.legend(fontsize=8)
    ax.set_xlabel("output tokens/s, total")
    ax.set_ylabel("output tokens/s per user (request p50)")
    ax.set_title("Pareto: per-user speed vs total throughput")
    ax.grid(True, alpha=0.3)
    out.append(("Pareto: tokens/s per user vs tokens/s total", _png(fig)))

    if run_dir is not None:
        for name, (_title, png) in zip(PLOT_FILES, out, strict=True):
            with atomic.atomic_path(run_dir / name) as tmp:
                tmp.write_bytes(base64.b64decode(png))
    plt.close("all")
    return out
