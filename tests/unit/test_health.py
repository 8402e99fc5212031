"""harness.load.health's pure parts: one process's window summary and the master's view of its workers."""

from __future__ import annotations

import pytest

from harness.load.health import WorkerHealth, summarize


def test_summarize_window_and_cpu():
    lags = [(float(t), float(t % 10)) for t in range(100)]
    out = summarize(lags, 10.0, 20.0, 5.0, 7.5)
    assert out["sched_lag_samples"] == 10
    assert out["sched_lag_max_ms"] == 9.0
    assert out["cpu_percent"] == pytest.approx(25.0)  # 2.5 CPU seconds in 10 s


def test_worker_health_is_the_worst_workers():
    h = WorkerHealth()
    assert h.summary(0, 10) is None  # no worker has reported
    calm = {"lags": [[t / 10, 0.1] for t in range(100)], "cpu": [[float(t), 0.2 * t] for t in range(11)]}
    busy = {"lags": [[t / 10, 30.0 if t % 20 == 0 else 0.5] for t in range(100)],
            "cpu": [[float(t), 0.9 * t] for t in range(11)]}
    h.add("w1", calm)
    h.add("w2", busy)
    h.add("w3", "garbage")  # a malformed report is ignored, not fatal
    out = h.summary(0.0, 10.0)
    assert set(out["workers"]) == {"w1", "w2"}
    assert out["cpu_percent"] == pytest.approx(90.0)
    assert out["workers"]["w1"]["cpu_percent"] == pytest.approx(20.0)
    assert out["sched_lag_p99_ms"] == pytest.approx(30.0)  # w2's lag spikes decide
    assert out["sched_lag_samples"] == 200
    assert h.summary(50.0, 60.0) is None  # no sample in that window


def test_worker_health_accumulates_reports():
    h = WorkerHealth()
    h.add("w", {"lags": [[0.5, 1.0]], "cpu": [[0.0, 0.0]]})
    h.add("w", {"lags": [[1.5, 3.0]], "cpu": [[2.0, 1.0]]})
    out = h.summary(0.0, 5.0)
    assert out["sched_lag_samples"] == 2 and out["sched_lag_max_ms"] == 3.0
    assert out["cpu_percent"] == pytest.approx(50.0)


def test_pair_log_iterates_like_the_list_of_samples_it_replaces() -> None:
    from harness.load.health import PairLog, summarize

    log, plain = PairLog(), []
    for i in range(300):
        sample = (1000.0 + i * 0.01, float(i % 7))
        log.append(sample)
        plain.append(sample)
    assert len(log) == 300 and list(log) == plain
    assert summarize(log, 1000.5, 1002.0, None, None) == summarize(plain, 1000.5, 1002.0, None, None)
    log.drop_oldest(100)
    assert list(log) == plain[100:]
    log.clear()
    assert len(log) == 0 and list(log) == []
