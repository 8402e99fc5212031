"""The attribution rule is stated once (ATTRIBUTION_RULE) and every report output carries that text.

The rule's clauses are checked against the functions that implement them, so the text cannot drift
from the code without a test failing here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.records import make_record

from harness.analysis import metrics
from harness.analysis.attribution import (
    ATTRIBUTION_DETAIL,
    ATTRIBUTION_RULE,
    Window,
    completed_in,
    counts_tokens,
    measured_records,
)
from harness.analysis.definitions import docs_markdown


def test_each_clause_of_the_rule_holds() -> None:
    w = Window(1000.0, 1010.0)
    # make_record(i): sent at 1000 + i, E2E 2 s, tokens at +0.5 .. +0.54 s
    sent_here = make_record(1, step=3, phase="measure")
    after_ramp = make_record(0, step=3, phase="warmup", wall_start=999.5)
    in_ramp = make_record(2, step=3, phase="ramp")
    in_flight = make_record(9, step=3, phase="measure")  # ends at 1011: still in flight at the close
    other_step = make_record(3, step=2, phase="measure")
    failed = make_record(4, step=3, phase="measure", error_type="overloaded")
    cancelled = make_record(5, step=3, phase="measure", error_type="cancelled")
    recs = [sent_here, after_ramp, in_ramp, in_flight, other_step, failed, cancelled]
    # "belongs to the step in which it was sent", "sent after the ramp", "completed inside the window";
    # failed requests are errors; cancelled ones count in no latency or error row
    assert measured_records(recs, 3, w) == [sent_here, after_ramp, failed]
    # "throughput counts token events of successful requests ... and those the client cancelled;
    # failed requests never add tokens" — whichever step sent them
    assert [counts_tokens(r) for r in (sent_here, other_step, failed, cancelled)] == [True, True, False, True]
    tokens = 3 * sum(1 for r in recs if counts_tokens(r))
    assert metrics.aggregate_output_tps(recs, w) == pytest.approx(tokens / 10)
    # requests per minute: successful requests completed inside the window, whichever step sent them
    assert other_step in completed_in(recs, w) and in_flight not in completed_in(recs, w)
    done_ok = sum(1 for r in completed_in(recs, w) if r.ok)
    assert metrics.requests_per_minute(recs, w) == pytest.approx(done_ok * 6)


def test_every_output_states_the_rule_from_the_constant(tmp_path: Path) -> None:
    from test_report import make_run

    from harness.report import build

    run = make_run(tmp_path)
    build.build_report(run, with_plots=False)
    assert ATTRIBUTION_RULE in (run / "summary.md").read_text()
    html = (run / "report.html").read_text()
    for text in (ATTRIBUTION_RULE, ATTRIBUTION_DETAIL):
        assert text.replace("'", "&#39;") in html
    assert ATTRIBUTION_RULE in docs_markdown() and ATTRIBUTION_DETAIL in docs_markdown()
