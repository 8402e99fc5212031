"""report.html: the table, plots, row definitions and manifest, rendered from templates/report.html.j2.

The template holds the page's shape; everything it shows is computed elsewhere (rows in
`harness.report.tables`, the attribution rule in `harness.analysis.attribution`), so the HTML and
summary.md say the same thing. Autoescaping is on: labels, error types and the manifest are data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2

from harness.analysis.attribution import ATTRIBUTION_DETAIL, ATTRIBUTION_RULE
from harness.report.flags import FLAGS_NOTE
from harness.report.steps import StepReport
from harness.report.tables import PERCENTILE_NOTE, column_title, describe_run, rows_for
from harness.report.workers import workers_table

TEMPLATES = Path(__file__).with_name("templates")


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def report_html(
    steps: Sequence[StepReport],
    images: list[tuple[str, str]],
    manifest: dict[str, Any] | None,
    search: Any = None,
) -> str:
    """The whole page as a string; `images` are (caption, base64 PNG) pairs from `plots.plots`;
    `search`: the capacity search replayed (harness.report.search_report), shown above the table."""
    from harness.report.search_report import SEARCH_HEADER, search_rows

    search_view = None if search is None else {
        "answer": search.answer(), "header": SEARCH_HEADER, "rows": search_rows(steps, search)}
    title, description = describe_run(manifest)
    rows = [
        {"label": row.label, "how": row.explanation, "cells": [row.cell(s) for s in steps]}
        for row in rows_for(steps)
    ]
    from harness.report.server_tables import SERVER_NOTE, server_rows

    server = [
        {"label": row.label, "how": row.explanation, "cells": [row.cell(s) for s in steps]}
        for row in server_rows(steps)
    ]
    return _environment().get_template("report.html.j2").render(
        server_rows=server,
        server_note=SERVER_NOTE,
        title=title,
        description=description,
        column_title=column_title(steps),
        columns=[s.info.label for s in steps],
        rows=rows,
        images=images,
        notes=[ATTRIBUTION_RULE, ATTRIBUTION_DETAIL, PERCENTILE_NOTE, FLAGS_NOTE.replace("*", "")],
        manifest=json.dumps(manifest or {}, indent=2, default=str),
        workers=workers_table(steps, manifest),
        search=search_view,
    )
