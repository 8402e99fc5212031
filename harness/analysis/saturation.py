"""Over-saturation: TTFT growing steadily within a step, the sign that a queue grows without bound.

When the offered load exceeds what a server can serve, its queue grows for as long as the load
lasts, and each request waits longer than the one before: TTFT rises roughly linearly with the
send time. Measuring such a step to the end of its window only lengthens the search (the step
fails its TTFT objective anyway), so `python -m harness search` closes its window early once the
trend is clear. The test is GuideLLM's over-saturation detector
(`guidellm/scheduler/constraints/saturation.py`, `SlopeChecker`), reduced to the TTFT series:
a least-squares line through (send time, TTFT) of the step's finished requests; the step is
over-saturated when its slope is positive and known well enough — the slope's margin of error at
95 % confidence (Student t) is below `moe_ratio` of the slope — and the line's value at the last
send is already above `ttft_floor_s` (the TTFT objective: a step that meets it is never stopped).
GuideLLM also requires the number of requests in flight to rise; in a closed loop that number is the
user count, constant by construction, so only TTFT is tested here.

Pure: points in, verdict out; no clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z_975 = 1.959963984540054  # the standard normal's 97.5th percentile (two-sided 95 %)


def t_975(df: float) -> float:
    """Student t's 97.5th percentile for `df` degrees of freedom (Cornish-Fisher expansion around the
    normal's; within 1 % of the exact value from df = 3 on, and a little high below that)."""
    if df <= 0:
        return math.nan
    z = Z_975
    g1 = (z**3 + z) / 4.0
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96.0
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384.0
    return z + g1 / df + g2 / df**2 + g3 / df**3


@dataclass(frozen=True)
class Trend:
    """The least-squares line of TTFT (s) against send time (s) over `n` points."""

    n: int
    slope: float  # seconds of TTFT per second of send time
    intercept: float
    margin: float  # the slope's 95 % margin of error (absolute)
    last_x: float

    @property
    def at_last(self) -> float:
        """The line's TTFT at the last send."""
        return self.intercept + self.slope * self.last_x


def trend(points: Sequence[tuple[float, float]]) -> Trend | None:
    """The line through (x, y) points; None with fewer than 3 points or no spread in x."""
    n = len(points)
    if n < 3:
        return None
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx <= 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in points)
    slope = sxy / sxx
    intercept = my - slope * mx
    rss = sum((y - intercept - slope * x) ** 2 for x, y in points)
    se = math.sqrt(rss / (n - 2) / sxx)
    return Trend(n, slope, intercept, t_975(n - 2) * se, max(x for x, _ in points))


@dataclass(frozen=True)
class SaturationRule:
    """When `over_saturated` says yes: enough points over enough time, a clear rise, above a floor."""

    min_points: int = 8
    min_span_s: float = 2.0  # the sends must spread over at least this long
    moe_ratio: float = 0.5  # the slope's margin of error below this fraction of the slope
    ttft_floor_s: float = 2.5  # GuideLLM's minimum_ttft; the search uses the TTFT objective


def over_saturated(points: Sequence[tuple[float, float]], rule: SaturationRule) -> Trend | None:
    """The rising trend when (send time, TTFT) `points` show over-saturation under `rule`, else None."""
    if len(points) < rule.min_points:
        return None
    xs = [x for x, _ in points]
    if max(xs) - min(xs) < rule.min_span_s:
        return None
    line = trend(points)
    if line is None or line.slope <= 0 or math.isnan(line.margin):
        return None
    if line.margin >= rule.moe_ratio * line.slope or line.at_last <= rule.ttft_floor_s:
        return None
    return line
