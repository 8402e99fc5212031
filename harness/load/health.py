"""Is the load generator itself the bottleneck? CPU of this process and the gevent hub's lag.

A saturated client delays reading sockets, so TTFT and gaps grow for reasons that have nothing to
do with the server. Two signals per step: the process's CPU time over the window (100 % = one
core; a gevent process cannot use more than one) and how late a greenlet that sleeps 10 ms in a
loop wakes up (the hub's scheduling lag, the delay any token read also suffers).
Pure: `summarize` and `WorkerHealth`; the gevent sampler is harness.load.locust.monitor.ClientMonitor.

Distributed, the requests leave from the workers: each worker runs its own monitor and sends its
new samples to the master every HEALTH_EVERY_S (a Locust custom message; a window's last second
may not have arrived when the master writes steps.json); the master keeps them in a
`WorkerHealth`, and a step's client health is its worst worker's. Samples carry the worker's wall
clock: hosts must agree on the time (NTP) for them to fall in the right windows.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from harness.analysis.metrics import percentile


def summarize(
    lags: Iterable[tuple[float, float]],
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


HEALTH_KEY = "harness_client_health"  # the worker → master message
HEALTH_EVERY_S = 1.0
CPU_EVERY = 25  # lag samples between two CPU marks (0.25 s at 10 ms)
MAX_SAMPLES = 1_000_000  # per list: ~3 h of lag samples at 10 ms


class PairLog:
    """(wall, value) samples as one flat array of doubles: 16 bytes a sample, where a list of
    tuples costs ~110 — the monitor takes 100 lag samples a second for the whole run (a 30-minute
    soak: 180,000; bench/soak.py). Iterates as (wall, value) tuples, like the list it replaces."""

    def __init__(self) -> None:
        self._flat = array("d")

    def append(self, sample: tuple[float, float]) -> None:
        self._flat.extend(sample)

    def __len__(self) -> int:
        return len(self._flat) // 2

    def __iter__(self) -> Iterator[tuple[float, float]]:
        flat = self._flat
        return zip(flat[0::2], flat[1::2], strict=True)

    def drop_oldest(self, n: int) -> None:
        del self._flat[: 2 * n]

    def clear(self) -> None:
        del self._flat[:]


def _cpu_percent(marks: Sequence[tuple[float, float]], start: float, end: float) -> float | None:
    """CPU % between the first and last (wall, cpu seconds) marks inside [start, end)."""
    inside = [m for m in marks if start <= m[0] < end]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]) * 100.0


class WorkerHealth:
    """The master's copy of every worker's samples: (wall, lag ms) and (wall, CPU seconds), kept as
    flat float arrays (16 bytes a sample: hours of 100 samples/s per worker stay small)."""

    def __init__(self) -> None:
        self.lags: dict[str, array] = {}  # t0, v0, t1, v1, ...
        self.cpu: dict[str, array] = {}

    def add(self, worker: str, payload: Any) -> None:
        """Take one message: `{"lags": [[wall, ms], ...], "cpu": [[wall, s], ...]}` (bad items ignored)."""
        if not isinstance(payload, dict):
            return
        for key, store in (("lags", self.lags), ("cpu", self.cpu)):
            flat = store.setdefault(worker, array("d"))
            for item in payload.get(key) or ():
                if isinstance(item, (list, tuple)) and len(item) == 2:
                    try:
                        flat.extend((float(item[0]), float(item[1])))
                    except (TypeError, ValueError):
                        continue
            if len(flat) > 2 * MAX_SAMPLES:
                del flat[: len(flat) - 2 * MAX_SAMPLES]

    @staticmethod
    def _pairs(flat: array | None) -> list[tuple[float, float]]:
        if not flat:
            return []
        return list(zip(flat[0::2], flat[1::2], strict=True))

    def summary(self, start: float, end: float) -> dict[str, Any] | None:
        """Each worker's health over [start, end) and the worst of them (None without samples)."""
        workers: dict[str, dict[str, Any]] = {}
        for worker in sorted(set(self.lags) | set(self.cpu)):
            one = summarize(self._pairs(self.lags.get(worker)), start, end, None, None)
            one["cpu_percent"] = _cpu_percent(self._pairs(self.cpu.get(worker)), start, end)
            if one["sched_lag_samples"] or one["cpu_percent"] is not None:
                workers[worker] = one
        if not workers:
            return None

        def worst(key: str) -> float | None:
            values = [w[key] for w in workers.values() if w[key] is not None]
            return max(values) if values else None

        return {
            "cpu_percent": worst("cpu_percent"),
            "sched_lag_p50_ms": worst("sched_lag_p50_ms"),
            "sched_lag_p99_ms": worst("sched_lag_p99_ms"),
            "sched_lag_max_ms": worst("sched_lag_max_ms"),
            "sched_lag_samples": sum(w["sched_lag_samples"] for w in workers.values()),
            "workers": workers,
        }


LIVE_WINDOW_S = 5.0  # the live warning looks at the last seconds, not the whole run
LIVE_REPEAT_S = 30.0  # a client that stays bound is reminded of it at most this often


class LiveWatch:
    """The live client-bound warning: the same two signals over the last LIVE_WINDOW_S seconds.

    Fed sample by sample (a monitor's lags and CPU marks, before a worker drains them to the
    master); `check` says why the client is the bottleneck right now, at most every
    LIVE_REPEAT_S while it stays so (and again as soon as it becomes so after a calm spell)."""

    def __init__(self, max_cpu_percent: float, max_lag_ms: float, window_s: float = LIVE_WINDOW_S) -> None:
        self.max_cpu_percent = max_cpu_percent
        self.max_lag_ms = max_lag_ms
        self.window_s = window_s
        self.lags: list[tuple[float, float]] = []
        self.cpu: list[tuple[float, float]] = []
        self._last_warned: float | None = None
        self.last: str | None = None  # the latest warning (for a UI to show)
        self._first_lag: float | None = None

    def add_lag(self, wall: float, lag_ms: float) -> None:
        if self._first_lag is None:
            self._first_lag = wall
        self.lags.append((wall, lag_ms))

    def add_cpu(self, wall: float, cpu_s: float) -> None:
        self.cpu.append((wall, cpu_s))

    def _trim(self, now: float) -> None:
        start = now - self.window_s
        for samples in (self.lags, self.cpu):
            drop = 0
            while drop < len(samples) and samples[drop][0] < start:
                drop += 1
            if drop:
                del samples[:drop]

    def reason(self, now: float) -> str | None:
        """Why the client is bound over the last window (None: it is not, or too few samples)."""
        self._trim(now)
        cpu = _cpu_percent(self.cpu, now - self.window_s, now + 1e-9)
        covered = self.cpu[-1][0] - self.cpu[0][0] if len(self.cpu) > 1 else 0.0
        if cpu is not None and covered >= self.window_s / 2 and cpu > self.max_cpu_percent:
            return f"client CPU {cpu:.0f}% over the last {covered:.0f} s (> {self.max_cpu_percent:g}%)"
        # 20 samples, or fewer once the watch has run half a window: a sampler that wakes every
        # 10 ms and took only a few in 5 s was itself held off (a starved client), not quiet.
        watched = self._first_lag is not None and now - self._first_lag >= self.window_s / 2
        if len(self.lags) >= 20 or (watched and len(self.lags) >= 3):
            p99 = percentile([v for _, v in self.lags], 99)
            if p99 > self.max_lag_ms:
                return (f"client scheduling lag p99 {p99:.1f} ms over the last {self.window_s:.0f} s "
                        f"(> {self.max_lag_ms:g} ms)")
        return None

    def check(self, now: float) -> str | None:
        """The warning to log now, if any (rate-limited, see the class docstring)."""
        why = self.reason(now)
        if why is None:
            self._last_warned = None
            return None
        if self._last_warned is not None and now - self._last_warned < LIVE_REPEAT_S:
            return None
        self._last_warned = now
        self.last = (f"client-bound: {why}; latencies measured now include the client's own delay "
                     "(fewer users per process, more workers)")
        return self.last
