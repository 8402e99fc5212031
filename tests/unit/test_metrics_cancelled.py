"""A request the client abandoned is not a server error: it is censored, in no latency or error row."""

from __future__ import annotations

from support.records import make_record

from harness.analysis.attribution import Window, split_step
from harness.analysis.metrics import errors_by_type


def test_cancelled_requests_are_not_measured():
    ok = make_record(1, step=2, phase="measure")
    failed = make_record(2, step=2, phase="measure", error_type="generation", token_us=())
    cancelled = make_record(3, step=2, phase="measure", error_type="cancelled", token_us=())
    split = split_step([ok, failed, cancelled], 2, close=1100.0)
    counted = split.measured
    assert [r.request_id for r in counted] == ["r1", "r2"] and split.censored == [cancelled]
    assert errors_by_type(counted) == {"generation": 1}


def test_cancelled_requests_tokens_count_in_throughput_failed_ones_do_not():
    from harness.analysis.metrics import aggregate_output_tps

    window = Window(1000.0, 1010.0)
    # each streams 3 tokens at +0.5 s, +0.52 s, +0.54 s after wall_start=1000+i
    ok = make_record(1)
    cancelled = make_record(2, error_type="cancelled")
    failed = make_record(3, error_type="generation")
    assert aggregate_output_tps([ok, cancelled, failed], window) == (3 + 3) / 10
