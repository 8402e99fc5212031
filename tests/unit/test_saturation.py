"""The over-saturation detector (harness.analysis.saturation), pure: (send time, TTFT) in, verdict out."""

from __future__ import annotations

import random

import pytest

from harness.analysis.saturation import SaturationRule, over_saturated, t_975, trend

RULE = SaturationRule(min_points=8, min_span_s=2.0, moe_ratio=0.5, ttft_floor_s=1.0)


def test_t_quantile_is_close_to_the_exact_one() -> None:
    exact = {3: 3.182, 5: 2.571, 10: 2.228, 30: 2.042, 1000: 1.962}  # Student t, 97.5th percentile
    for df, value in exact.items():
        assert t_975(df) == pytest.approx(value, rel=0.01)


def test_least_squares_line() -> None:
    line = trend([(0, 1.0), (1, 3.0), (2, 5.0), (3, 7.0)])
    assert line is not None
    assert line.slope == pytest.approx(2.0) and line.intercept == pytest.approx(1.0)
    assert line.margin == pytest.approx(0.0, abs=1e-9) and line.at_last == pytest.approx(7.0)
    assert trend([(1, 1.0), (1, 2.0), (1, 3.0)]) is None  # no spread in time


def test_a_growing_queue_is_detected() -> None:
    rng = random.Random(1)
    # an open loop above capacity: each request waits 0.4 s longer per second of the step, with noise
    points = [(t / 4, 0.5 + 0.4 * t / 4 + rng.uniform(-0.1, 0.1)) for t in range(40)]
    line = over_saturated(points, RULE)
    assert line is not None and line.slope == pytest.approx(0.4, rel=0.1)


def test_a_steady_step_is_not_stopped() -> None:
    rng = random.Random(2)
    flat_high = [(t / 4, 3.0 + rng.uniform(-0.5, 0.5)) for t in range(40)]  # saturated but not growing
    assert over_saturated(flat_high, RULE) is None


def test_a_rise_below_the_ttft_objective_is_not_stopped() -> None:
    rising_low = [(t / 4, 0.1 + 0.01 * t / 4) for t in range(40)]  # rising, but 0.2 s at the end
    assert over_saturated(rising_low, RULE) is None


def test_too_few_points_or_too_short_a_span_is_no_verdict() -> None:
    steep = [(t / 4, 2.0 + t) for t in range(40)]
    assert over_saturated(steep[:7], RULE) is None
    assert over_saturated([(t / 100, 2.0 + t) for t in range(40)], RULE) is None  # 0.4 s of sends
    assert over_saturated(steep, RULE) is not None


def test_a_noisy_rise_is_not_yet_clear() -> None:
    rng = random.Random(3)
    noisy = [(t / 4, 2.0 + 0.02 * t / 4 + rng.uniform(-1.0, 1.0)) for t in range(12)]
    assert over_saturated(noisy, RULE) is None
