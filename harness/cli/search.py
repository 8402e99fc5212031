"""`python -m harness search`: the highest load (users, or requests/s with `--kind rate`) that meets
the SLOs of `[slo]`.

It is the sweep (harness.cli.sweep: the same target handling, pre-flight, manifest, records and
report) with an adaptive plan instead of a step list: harness.load.locust.searchshape runs one
step at a time and the pure harness.load.search.SearchState picks the next load from the last
step's verdict — bracket by doubling, then bisect between the last pass and the first fail,
closing a window early when the step is over-saturated (harness.analysis.saturation). Every step's
records go to the run's records file, so `python -m harness report DIR` rebuilds the report and
the search's answer, table and plots offline.

Exit codes (harness.exitcodes): 0 an answer was found (also "≥ max_load"), SLO_UNMET when no load
met the SLOs (the lowest one tried failed), otherwise as a sweep (2 bad input, 4 target unusable,
130 interrupted, …).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from harness import exitcodes
from harness.config.model import RunConfig, Step


class Search:
    """The hooks harness.cli.sweep calls for a search: parse, describe, shape, finish."""

    def parse(self, argv: list[str] | None) -> RunConfig:
        from harness.cli.sweep import parse

        cfg = parse(argv, prog="python -m harness search", description=(__doc__ or "").split("\n\n")[0])
        d, s, slo = cfg.distributed, cfg.search, cfg.slo
        if d.workers or d.master or d.worker:
            raise ValueError("search runs in one process: drop --workers/--master/--worker")
        if not slo.any:
            raise ValueError("search needs an SLO: set one of [slo] (e.g. --ttft-p99-ms 2000)")
        first: int | Step = int(round(s.start_load)) if s.kind == "users" else Step(rate=s.start_load,
                                                                                      arrival=s.arrival)
        # the header's step list says where the search starts (the steps themselves are in steps.json)
        return cfg.model_copy(update={"steps": cfg.steps.model_copy(update={"users": [first]})})

    def describe(self, cfg: RunConfig) -> dict[str, Any]:
        """What the run header records about the search (its settings are in the configuration)."""
        return {"kind": cfg.search.kind, "slo": cfg.slo.model_dump(exclude_none=True)}

    def shape(self) -> Any:
        from harness.load.locust.searchshape import SearchShape

        return SearchShape()

    def finish(self, run_dir: Path, reports: list[Any], storm: str | None, interrupted: bool) -> int:
        """Print the answer (replayed from the report, as `harness report` would) and pick the exit code."""
        from harness.load.search import bracket
        from harness.records.runlog import read_run_log
        from harness.report.search_report import search_state

        manifest, steps_json = read_run_log(run_dir)
        state = search_state(reports, manifest, steps_json)
        if storm:
            print(f"error: stopped early: {storm}", file=sys.stderr)
            return exitcodes.TARGET_UNUSABLE
        if interrupted:
            return exitcodes.INTERRUPTED
        if state is None or not state.trials:
            print("error: the search measured no step", file=sys.stderr)
            return exitcodes.DEGRADED
        print(f"\ncapacity: {state.answer()}")
        lo, _hi = bracket(state.trials)
        if lo is None:
            print(f"the SLOs were missed even at the lowest load tried ({state.status()}; exit code "
                  f"{exitcodes.SLO_UNMET})", file=sys.stderr)
            return exitcodes.SLO_UNMET
        return exitcodes.OK


def main(argv: list[str] | None = None) -> int:
    from harness.cli import sweep

    return sweep.main(argv, search=Search())
