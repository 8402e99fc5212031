"""`python -m harness report DIR`: recompute every output of a run from its saved records.

Inputs in DIR: records-*.jsonl (the truth), the run log run.jsonl (harness.records.runlog: the
manifest with the configuration, and each step's phase spans and client health) and, when the
server's metrics were scraped, server_metrics.jsonl (harness.telemetry.series), and when
neuron-monitor ran, neuron_metrics.jsonl (harness.telemetry.neuron). Outputs:
manifest.json, steps.json, summary.md, summary.csv, records.parquet, report.html (and, when the
server's metrics were scraped into server_metrics.jsonl, server_metrics.parquet and the server
section; neuron_metrics.parquet likewise) — a run writes
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

from harness.config.model import Flags, Slo
from harness.records.record import Record
from harness.records.runlog import read_run_log
from harness.report import atomic, parquet
from harness.report.html import report_html
from harness.report.inputs import (
    StepInfo,
    clock_uncertainty_s,
    load_json,
    load_records,
    steps_from_json,
    steps_from_records,
)
from harness.report.plots import plots, server_plot
from harness.report.steps import StepReport, compute
from harness.report.tables import csv_rows, markdown_table, summary_markdown, write_csv, write_parquet
from harness.report.terminal import summary_text
from harness.telemetry.neuron import NEURON_METRICS
from harness.telemetry.series import SERVER_METRICS, read_scrapes, rows


def write_server_parquet(path: Path, scrapes: object) -> None:
    """The scraped samples as rows (time, name, labels, value): each series' change points."""
    schema = parquet.arrow_schema([("time", "float64"), ("name", "string"), ("labels", "string"),
                                   ("value", "float64")])
    parquet.write_rows(path, rows(scrapes), schema)


def build_report(
    run_dir: str | Path, write: bool = True, with_plots: bool = True
) -> tuple[list[StepReport], str]:
    """Recompute everything from the files in `run_dir`; returns the steps and summary.md text."""
    steps, md, _records = rebuild(run_dir, write, with_plots)
    return steps, md


def build_with_summary(run_dir: str | Path, with_plots: bool = True) -> str:
    """Write every report file of `run_dir` and return the exact end-of-run summary
    (harness.report.terminal) — what a locustfile run prints when a test stops."""
    steps, _md, records = rebuild(run_dir, True, with_plots)
    return summary_text(steps, records, run_dir)


def rebuild(
    run_dir: str | Path, write: bool = True, with_plots: bool = True
) -> tuple[list[StepReport], str, list[Record]]:
    """`build_report`, also returning the records it read."""
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
    scrapes = read_scrapes(run_dir / SERVER_METRICS)
    neuron = read_scrapes(run_dir / NEURON_METRICS)
    price = (cfg.get("target") or {}).get("price_per_hour")
    slo = Slo(**cfg["slo"]) if cfg.get("slo") else None
    steps = compute(records, infos, price, flags, scrapes, neuron, slo)
    md = summary_markdown(steps, manifest)
    from harness.report.search_report import search_markdown, search_plots, search_state

    search = search_state(steps, manifest, steps_json)
    if search is not None:
        md += "\n".join(search_markdown(steps, search)) + "\n"
    if write:
        if from_log:
            atomic.write_text(run_dir / "manifest.json", json.dumps(manifest, indent=1, default=str) + "\n")
            atomic.write_text(run_dir / "steps.json", json.dumps(steps_json or [], indent=1) + "\n")
        atomic.write_text(run_dir / "summary.md", md)
        write_csv(run_dir / "summary.csv", csv_rows(steps))
        write_parquet(run_dir / "records.parquet", records)
        if scrapes is not None:
            write_server_parquet(run_dir / "server_metrics.parquet", scrapes)
        if neuron is not None:
            write_server_parquet(run_dir / "neuron_metrics.parquet", neuron)
        images = plots(steps, records) + server_plot(steps, scrapes, neuron) if with_plots else []
        if search is not None and with_plots:
            images = search_plots(steps, slo or Slo(), run_dir) + images
        atomic.write_text(run_dir / "report.html", report_html(steps, images, manifest, search))
    return steps, md, records


def main(argv: list[str] | None = None) -> int:
    from harness import exitcodes

    ap = argparse.ArgumentParser(prog="python -m harness report", description=__doc__.splitlines()[0],
                                 epilog=exitcodes.EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", help="a results/<run-id> directory, or any directory of records-*.jsonl")
    ap.add_argument("--no-plots", action="store_true", help="skip the matplotlib plots")
    args = ap.parse_args(argv)
    try:
        steps, _md, records = rebuild(args.run_dir, with_plots=not args.no_plots)
    except OSError as exc:  # no records, unreadable or unwritable directory
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    print(markdown_table(steps))
    print()
    print(summary_text(steps, records, args.run_dir))
    print(f"\nreport: {Path(args.run_dir) / 'report.html'}")
    return 0
