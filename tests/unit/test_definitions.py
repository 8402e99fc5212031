"""The metric registry is the one definition of each figure: docs and report rows come from it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from harness.analysis import definitions
from harness.analysis.metrics import StepMetrics
from harness.analysis.openloop import OpenLoop
from harness.analysis.slo import SloResult
from harness.report import tables

ROOT = Path(__file__).resolve().parents[2]


def test_docs_metrics_md_is_generated_from_the_registry() -> None:
    on_disk = (ROOT / "docs" / "metrics.md").read_text()
    assert on_disk == definitions.docs_markdown(), (
        "docs/metrics.md is stale: run `python -m harness.analysis.definitions > docs/metrics.md`"
    )


def test_module_prints_the_docs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness.analysis.definitions"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == definitions.docs_markdown()


def test_every_metric_has_a_definition_and_four_peer_cells() -> None:
    keys = [m.key for m in definitions.METRICS]
    assert len(keys) == len(set(keys))
    for m in definitions.METRICS:
        assert m.definition and m.counts and m.unit, m.key
        for attr, _ in definitions.PEERS:
            assert getattr(m, attr).strip(), (m.key, attr)


def test_registry_keys_name_real_figures() -> None:
    fields = {f.name for f in dataclasses.fields(StepMetrics)}
    fields |= {f.name for f in dataclasses.fields(OpenLoop)}  # rate steps' figures
    fields |= {f.name for f in dataclasses.fields(SloResult)} | {"achieved_load"}  # [slo]: StepReport
    from_client = {"client_cpu_percent", "sched_lag_p99_ms"}  # StepInfo, from steps.json
    for m in definitions.METRICS:
        assert m.key in fields | from_client, m.key


def test_every_row_explanation_comes_from_the_registry() -> None:
    shown = {row.metric for row in tables.ROWS if row.metric}
    assert shown == {m.key for m in definitions.METRICS}  # no row without a definition, no orphan
    for row in tables.ROWS:
        if row.metric and "{definition}" in row.how:
            assert row.explanation.startswith(definitions.metric(row.metric).definition), row.label
        if "{aka}" in row.how:
            assert definitions.metric(row.metric).aka, row.label
