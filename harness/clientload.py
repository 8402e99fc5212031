"""Is the load generator itself the bottleneck? CPU of this process and the gevent hub's lag.

A saturated client delays reading sockets, so TTFT and gaps grow for reasons that have nothing to
do with the server. Two signals per step: the process's CPU time over the window (100 % = one
core; a gevent process cannot use more than one) and how late a greenlet that sleeps 10 ms in a
loop wakes up (the hub's scheduling lag, the delay any token read also suffers).
`summarize` is pure; `ClientMonitor` is the gevent rim that collects the samples.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from harness.metrics import percentile


def summarize(
    lags: Sequence[tuple[float, float]],
    start: float,
    end: float,
    cpu_start: float | None,
    cpu_end: float | None,
) -> dict[str, float | None]:
    """Client health over [start, end) (wall seconds) from (wall, lag_ms) samples and CPU seconds."""
    inside = [lag for t, lag in lags if start <= t < end]
    span = end - start
    cpu = None
    if cpu_start is not None and cpu_end is not None and span > 0:
        cpu = (cpu_end - cpu_start) / span * 100.0
    return {
        "cpu_percent": cpu,
        "sched_lag_p50_ms": percentile(inside, 50) if inside else None,
        "sched_lag_p99_ms": percentile(inside, 99) if inside else None,
        "sched_lag_max_ms": max(inside) if inside else None,
        "sched_lag_samples": len(inside),
    }


class ClientMonitor:
    """Samples the hub's wake-up lateness every `interval` s; reads this process's CPU seconds."""

    def __init__(self, interval: float = 0.01) -> None:
        import psutil

        self.interval = interval
        self.lags: list[tuple[float, float]] = []
        self._proc = psutil.Process()
        self._greenlet: Any = None

    def cpu_seconds(self) -> float:
        t = self._proc.cpu_times()
        return t.user + t.system

    def start(self) -> ClientMonitor:
        import gevent

        self._greenlet = gevent.spawn(self._loop)
        return self

    def _loop(self) -> None:
        import gevent

        while True:
            t0 = time.perf_counter()
            gevent.sleep(self.interval)
            late = time.perf_counter() - t0 - self.interval
            self.lags.append((time.time(), max(late, 0.0) * 1000.0))
            if len(self.lags) > 1_000_000:  # ~3 h at 10 ms: keep memory bounded
                del self.lags[:500_000]

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
