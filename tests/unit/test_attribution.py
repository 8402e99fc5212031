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
    split_step,
)
from harness.analysis.definitions import docs_markdown


def test_each_clause_of_the_rule_holds() -> None:
    w = Window(1000.0, 1010.0)  # the window; the cool-down closed the step at 1011.5
    close = 1011.5
    # make_record(i): sent at 1000 + i, E2E 2 s, tokens at +0.5 .. +0.54 s
    sent_here = make_record(1, step=3, phase="measure")
    in_warmup = make_record(0, step=3, phase="warmup", wall_start=999.5)
    in_ramp = make_record(2, step=3, phase="ramp")
    in_flight = make_record(9, step=3, phase="measure")  # ends at 1011: in flight when the window closed
    in_cooldown = make_record(10, step=3, phase="cooldown")
    open_at_cap = make_record(9, step=3, phase="measure", wall_start=1009.8)  # ends at 1011.8 > close
    other_step = make_record(3, step=2, phase="measure")
    failed = make_record(4, step=3, phase="measure", error_type="overloaded")
    cancelled = make_record(5, step=3, phase="measure", error_type="cancelled")
    recs = [sent_here, in_warmup, in_ramp, in_flight, in_cooldown, open_at_cap, other_step, failed, cancelled]
    # "counts in the step whose measurement window it was sent in, however long it takes" (the
    # cool-down's own requests count nowhere); "ok, failed, or censored (still open when the
    # cool-down's hard cap closed the step, or cancelled by the client)"
    assert measured_records(recs, 3, close) == [sent_here, in_flight, failed]
    split = split_step(recs, 3, close)
    assert split.censored == [open_at_cap, cancelled] and split.sent == 5  # never silently dropped
    # "throughput counts token events of successful requests ... and those the client cancelled;
    # failed requests never add tokens" — whichever step sent them
    assert [counts_tokens(r) for r in (sent_here, other_step, failed, cancelled)] == [True, True, False, True]
    # "arrived between the window's opening and the step's close": all tokens of recs come by 1010.54
    span = Window(w.start, close)
    tokens = 3 * sum(1 for r in recs if counts_tokens(r))
    assert metrics.aggregate_output_tps(recs, span) == pytest.approx(tokens / 11.5)
    # requests per minute: successful requests completed inside the span, whichever step sent them
    assert other_step in completed_in(recs, span) and open_at_cap not in completed_in(recs, span)
    done_ok = sum(1 for r in completed_in(recs, span) if r.ok)
    assert metrics.requests_per_minute(recs, span) == pytest.approx(done_ok * 60 / 11.5)


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
