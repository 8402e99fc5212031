"""The gevent sampler of client health: the hub's wake-up lateness and this process's CPU.

What the samples mean and how a window is summarised: harness.load.health (pure). With a
`LiveWatch`, the monitor also logs a warning while the client is the bottleneck (every process
that sends requests runs one: the local runner, each worker).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from harness.load.health import CPU_EVERY, MAX_SAMPLES, LiveWatch, PairLog

log = logging.getLogger(__name__)
CHECK_EVERY_S = 1.0  # between two live checks (by the clock: a starved loop takes fewer samples)


class ClientMonitor:
    """Samples the hub's wake-up lateness every `interval` s and this process's CPU seconds every
    CPU_EVERY samples. A worker calls `drain` to hand everything over to the master."""

    def __init__(self, interval: float = 0.01, watch: LiveWatch | None = None) -> None:
        import psutil

        self.watch = watch
        self.interval = interval
        self.lags = PairLog()  # (wall, lateness ms), 100 a second for the whole run
        self.cpu_marks: list[tuple[float, float]] = []
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

        n = 0
        checked = time.time()
        while True:
            if n % CPU_EVERY == 0:
                mark = (time.time(), self.cpu_seconds())
                self.cpu_marks.append(mark)
                if self.watch is not None:
                    self.watch.add_cpu(*mark)
            if self.watch is not None and time.time() - checked >= CHECK_EVERY_S:
                checked = time.time()
                warning = self.watch.check(checked)
                if warning:
                    log.warning(warning)
            n += 1
            t0 = time.perf_counter()
            gevent.sleep(self.interval)
            late = time.perf_counter() - t0 - self.interval
            sample = (time.time(), max(late, 0.0) * 1000.0)
            self.lags.append(sample)
            if self.watch is not None:
                self.watch.add_lag(*sample)
            if len(self.lags) > MAX_SAMPLES:  # keep memory bounded
                self.lags.drop_oldest(MAX_SAMPLES // 2)
            if len(self.cpu_marks) > MAX_SAMPLES:
                del self.cpu_marks[: MAX_SAMPLES // 2]

    def drain(self) -> dict[str, list[list[float]]]:
        """Every sample taken since the previous drain, removed from here, as plain lists (they
        travel in msgpack)."""
        lags = [[t, v] for t, v in self.lags]
        cpu = [[t, v] for t, v in self.cpu_marks]
        self.lags.clear()
        self.cpu_marks.clear()
        return {"lags": lags, "cpu": cpu}

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
