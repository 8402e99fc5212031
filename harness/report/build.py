"""`python -m harness report DIR`: recompute every output of a run from its saved records.

Inputs in DIR: records-*.jsonl (the truth) and the run log run.jsonl (harness.records.runlog: the
manifest with the configuration, and each step's phase spans and client health). Outputs:
manifest.json, steps.json, summary.md, summary.csv, records.parquet, report.html — a run writes
them with this very function, so a rebuild is identical. Directories written before the run log
existed (manifest.json + steps.json) are read as they are. Nothing here talks to Locust or a
server, so a report can be rebuilt at any time.

Which requests each step counts is `harness.analysis.attribution.ATTRIBUTION_RULE`; what each row
means is the registry in `harness.analysis.definitions`. This module only wires the stages:
inputs (loading) → steps (metrics and flags) → tables, plots, html (writing).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.config.model import Flags
from harness.records.runlog import read_run_log
from harness.report.html import report_html
from harness.report.inputs import (
    StepInfo,
    clock_uncertainty_s,
    load_json,
    load_records,
    steps_from_json,
    steps_from_records,
)
from harness.report.plots import plots
from harness.report.steps import StepReport, compute
from harness.report.tables import csv_rows, markdown_table, summary_markdown, write_csv, write_parquet


def build_report(
    run_dir: str | Path, write: bool = True, with_plots: bool = True
) -> tuple[list[StepReport], str]:
    """Recompute everything from the files in `run_dir`; returns the steps and summary.md text."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no such results directory: {run_dir}")
    records = load_records(run_dir)
    manifest, steps_json = read_run_log(run_dir)
    from_log = manifest is not None
    if not from_log:
        manifest = load_json(run_dir / "manifest.json") or {}
        steps_json = load_json(run_dir / "steps.json")
    infos: list[StepInfo] = steps_from_json(steps_json) if steps_json else steps_from_records(records)
    for info in infos:
        info.clock_uncertainty_s = clock_uncertainty_s(manifest)
    cfg = manifest.get("config") or {}
    flags = Flags(**cfg["flags"]) if cfg.get("flags") else Flags()
    steps = compute(records, infos, (cfg.get("target") or {}).get("price_per_hour"), flags)
    md = summary_markdown(steps, manifest)
    if write:
        if from_log:
            (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str) + "\n")
            (run_dir / "steps.json").write_text(json.dumps(steps_json or [], indent=1) + "\n")
        (run_dir / "summary.md").write_text(md)
        write_csv(run_dir / "summary.csv", csv_rows(steps))
        write_parquet(run_dir / "records.parquet", records)
        images = plots(steps, records) if with_plots else []
        (run_dir / "report.html").write_text(report_html(steps, images, manifest))
    return steps, md


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness report", description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", help="a results/<run-id> directory")
    ap.add_argument("--no-plots", action="store_true", help="skip the matplotlib plots")
    args = ap.parse_args(argv)
    try:
        steps, md = build_report(args.run_dir, with_plots=not args.no_plots)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(steps))
    print(f"\nreport: {Path(args.run_dir) / 'report.html'}")
    return 0
