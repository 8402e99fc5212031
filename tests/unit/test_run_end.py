"""Pure parts of the end of a locustfile run: the request budget of --stop-after-requests, the live
client-bound watch, the exact summary's figures, the cut-short flag, reports of step-less records,
and which command lines get the suite's options in Locust's --help."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from support.records import make_record

from harness.analysis import metrics
from harness.analysis.attribution import Window
from harness.config.model import Flags
from harness.load.budget import RequestBudget, split
from harness.load.health import LiveWatch
from harness.load.locust.help import hooks_suite, is_locust, locustfiles
from harness.records.record import RecordWriter
from harness.report.build import build_with_summary
from harness.report.flags import step_flags
from harness.report.inputs import StepInfo, steps_from_records
from harness.report.terminal import distribution, outcomes

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("total, parts", [(50, 2), (51, 2), (7, 3), (2, 4), (0, 1)])
def test_split_is_exact_and_even(total, parts):
    shares = split(total, parts)
    assert sum(shares) == total and len(shares) == parts and max(shares) - min(shares) <= 1


def test_budget_sends_exactly_n_and_is_done_when_nothing_is_in_flight():
    done = []
    budget = RequestBudget(3, on_done=lambda: done.append(1))
    assert [budget.take() for _ in range(5)] == [True, True, True, False, False]
    assert budget.sent == 3 and budget.in_flight == 3 and not done
    budget.finish()
    budget.finish()
    assert not done  # one request still in flight
    budget.finish()
    assert done == [1]
    assert not budget.take() and done == [1]  # fires once


def test_no_budget_never_stops():
    budget = RequestBudget()
    assert all(budget.take() for _ in range(1000)) and not budget.exhausted


def test_live_watch_warns_on_lag_then_rate_limits_then_clears():
    watch = LiveWatch(max_cpu_percent=85, max_lag_ms=10, window_s=5)
    for i in range(100):  # calm: 1 ms lateness
        watch.add_lag(1000 + i * 0.05, 1.0)
    assert watch.check(1005.0) is None
    for i in range(100):  # starved: 50 ms lateness
        watch.add_lag(1005 + i * 0.05, 50.0)
    first = watch.check(1010.0)
    assert first and "scheduling lag p99 50.0 ms" in first and "client-bound" in first
    assert watch.check(1011.0) is None  # reminded at most every LIVE_REPEAT_S
    for i in range(200):
        watch.add_lag(1011 + i * 0.05, 0.5)
    assert watch.check(1021.0) is None and watch.last == first


def test_live_watch_warns_when_the_sampler_itself_is_starved():
    """Bug: a client whose hub was held ~450 ms at a time took fewer than 20 lag samples in 5 s and
    was never warned live (its summary said client-bound). A few samples count once the watch has
    run half a window; at the very start they do not."""
    watch = LiveWatch(max_cpu_percent=85, max_lag_ms=10, window_s=5)
    watch.add_lag(100.0, 440.0)
    assert watch.check(100.5) is None  # just started: too early to judge on one sample
    for t in (100.5, 101.0, 101.5, 102.0, 102.5, 103.0):
        watch.add_lag(t, 450.0)
    assert "scheduling lag p99" in watch.check(103.0)


def test_live_watch_warns_on_cpu():
    watch = LiveWatch(max_cpu_percent=85, max_lag_ms=10, window_s=5)
    for i in range(21):  # 0.25 s marks, 0.24 CPU s each: 96 %
        watch.add_cpu(100 + i * 0.25, 10 + i * 0.24)
    assert "client CPU 96%" in watch.check(105.0)


def test_distribution_uses_the_reports_percentiles():
    values = [0.3, 0.1, 0.2, 0.4]
    d = distribution(values, 1000.0)
    assert d["n"] == 4 and d["min"] == pytest.approx(100) and d["max"] == pytest.approx(400)
    assert d["p50"] == pytest.approx(metrics.percentile(values, 50) * 1000)
    assert math.isnan(distribution([])["p99"]) and distribution([])["n"] == 0


def test_outcomes_separate_failed_by_type_and_cancelled():
    recs = [make_record(0), make_record(1, error_type="http_500"), make_record(2, error_type="cancelled"),
            make_record(3, error_type="http_500")]
    assert outcomes(recs) == {"sent": 4, "ok": 1, "failed": {"http_500": 2}, "cancelled": 1}


def test_cut_short_flag_replaces_window_capped():
    info = StepInfo(step=0, users=1, window=Window(0, 10), min_requests=50,
                    spans={"measure": {"cut_short": True}})
    m = metrics.step_metrics(0, 1, [], [], Window(0, 10), None)
    flags = step_flags(info, m, Flags())
    assert any(f.startswith("cut short") for f in flags) and not any("window capped" in f for f in flags)


def test_records_without_steps_report_as_one_step(tmp_path):
    """A plain run's records written before runs had steps (step None) still make a report."""
    recs = [make_record(i, step=None, users=None) for i in range(12)]
    assert [s.step for s in steps_from_records(recs)] == [None]
    with RecordWriter(tmp_path / "records-h-1.jsonl") as w:
        w.extend(recs)
    text = build_with_summary(tmp_path, with_plots=False)
    assert "requests sent 12: ok 12, failed 0, cancelled 0" in text and "measured: ok 12" in text
    assert (tmp_path / "summary.md").is_file() and (tmp_path / "records.parquet").is_file()


def test_help_hook_acts_only_for_locust_help_of_our_locustfiles(tmp_path):
    assert is_locust(["/venv/bin/locust", "-f", "x"], [])
    assert is_locust(["-m", "-f", "x"], ["/venv/bin/python", "-m", "locust", "-f", "x", "--help"])
    assert not is_locust(["pytest", "--help"], ["python", "-m", "pytest", "--help"])
    assert locustfiles(["-f", "a.py,b.py", "--help"], {}) == ["a.py", "b.py"]
    assert locustfiles(["--locustfile=c.py"], {}) == ["c.py"]
    assert locustfiles(["--help"], {"LOCUST_LOCUSTFILE": "d.py"}) == ["d.py"]
    assert hooks_suite([str(ROOT / "locustfiles" / "tgi.py")])
    other = tmp_path / "other.py"
    other.write_text("from locust import HttpUser\n")
    assert not hooks_suite([str(other), str(tmp_path / "missing.py")])
