"""Open-loop arrival schedules (harness.load.arrivals), pure: their distributions and worker shares."""

from __future__ import annotations

import math
import statistics

import pytest

from harness.load.arrivals import ArrivalProcess, schedule, times_until, worker_seed

KS_CRITICAL_1PCT = 1.63  # Kolmogorov–Smirnov: reject at α = 0.01 when √n · D exceeds this


def ks_exponential(gaps: list[float], rate: float) -> float:
    """√n · D of the gaps against Exp(rate) (the one-sample Kolmogorov–Smirnov statistic)."""
    xs = sorted(gaps)
    n = len(xs)
    d = 0.0
    for i, x in enumerate(xs):
        cdf = 1.0 - math.exp(-rate * x)
        d = max(d, cdf - i / n, (i + 1) / n - cdf)
    return math.sqrt(n) * d


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def test_poisson_inter_arrivals_pass_a_goodness_of_fit_test() -> None:
    times = times_until(ArrivalProcess(20.0, "poisson"), seed=worker_seed(7, 0, 0), horizon=200.0)
    assert len(times) == pytest.approx(4000, rel=0.05)
    assert ks_exponential(gaps(times), 20.0) < KS_CRITICAL_1PCT
    # and the test can fail: constant gaps, or the wrong rate, are rejected
    assert ks_exponential(gaps(times_until(ArrivalProcess(20.0, "constant"), 1, 200.0)), 20.0) > 10
    assert ks_exponential(gaps(times), 25.0) > KS_CRITICAL_1PCT


def test_constant_is_exact_and_on_an_absolute_clock() -> None:
    times = times_until(ArrivalProcess(2000.0, "constant"), seed=0, horizon=10.0)
    assert len(times) == 20000
    assert times[-1] == pytest.approx(19999 / 2000, abs=1e-12)  # no drift from summing gaps


def test_gamma_rate_and_burstiness() -> None:
    bursty = gaps(times_until(ArrivalProcess(10.0, "gamma", burstiness=0.25), seed=3, horizon=1000.0))
    regular = gaps(times_until(ArrivalProcess(10.0, "gamma", burstiness=4.0), seed=3, horizon=1000.0))
    for g in (bursty, regular):
        assert statistics.fmean(g) == pytest.approx(0.1, rel=0.05)  # mean rate R whatever the shape
    # coefficient of variation² of a gamma gap is 1 / shape
    assert statistics.pvariance(bursty) / statistics.fmean(bursty) ** 2 == pytest.approx(4.0, rel=0.15)
    assert statistics.pvariance(regular) / statistics.fmean(regular) ** 2 == pytest.approx(0.25, rel=0.15)


def test_the_union_of_worker_shares_is_the_requested_process() -> None:
    process, workers = ArrivalProcess(20.0, "poisson"), 2
    union = []
    for i in range(workers):
        part, offset = process.share(workers, i)
        assert part.rate == 10.0
        union += times_until(part, worker_seed(11, 3, i), 200.0, offset=offset)
    union.sort()
    assert len(union) == pytest.approx(4000, rel=0.05)
    assert ks_exponential(gaps(union), 20.0) < KS_CRITICAL_1PCT
    # constant shares interleave into one constant schedule
    constant = ArrivalProcess(20.0, "constant")
    shares = [constant.share(4, i) for i in range(4)]
    merged = sorted(t for part, offset in shares for t in times_until(part, 0, 1.0, offset=offset))
    assert merged == pytest.approx([k / 20 for k in range(20)])


def test_worker_seeds_differ_and_are_stable() -> None:
    seeds = {worker_seed(5, step, i) for step in range(3) for i in range(4)}
    assert len(seeds) == 12 and worker_seed(5, 0, 0) == worker_seed(5, 0, 0)
    a = list(zip(range(5), schedule(ArrivalProcess(5.0), worker_seed(5, 0, 0)), strict=False))
    b = list(zip(range(5), schedule(ArrivalProcess(5.0), worker_seed(5, 0, 1)), strict=False))
    assert a != b


def test_bad_processes_are_refused() -> None:
    for kwargs in ({"rate": 0}, {"rate": math.inf}, {"rate": 1, "arrival": "uniform"},
                   {"rate": 1, "arrival": "gamma", "burstiness": 0}):
        with pytest.raises(ValueError):
            ArrivalProcess(**kwargs)
