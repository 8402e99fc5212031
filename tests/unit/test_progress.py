"""The live progress line names the most frequent error, so a storm of one kind is visible."""

from __future__ import annotations

from support.records import make_record

from harness.load.progress import LiveSteps, progress_line


def test_the_progress_line_names_the_most_frequent_failure() -> None:
    live = LiveSteps()
    live.add(make_record(0))
    for i in range(3):
        live.add(make_record(i, error_type="http_404", status=404, token_us=(), output_tokens=0))
    live.add(make_record(9, error_type="overloaded", status=429, token_us=(), output_tokens=0))
    line = progress_line(0, 1, 4, "measure", 3.0, live.steps[0], (10.0, 10.0))
    assert "1 ok / 4 failed (most: http_404 ×3)" in line
    assert live.steps[0].errors["overloaded (HTTP 429)"] == 1
    assert "most:" not in progress_line(0, 1, 4, "measure", 3.0, None, (1.0, 1.0))
