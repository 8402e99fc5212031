"""Open-loop arrival schedules, pure: when each request of a `rate = R` step is meant to be sent.

A schedule is a sequence of *intended* send times on an absolute clock (seconds after the step's
start), computed as running sums of the inter-arrival gaps — never as relative sleeps, which drift
by however late each wake-up was — and independent of how long requests take. The Locust rim
sleeps until each intended time and stamps the actual send; the difference is the schedule lag.

Arrival processes (vLLM `bench serve`'s definitions):
- `constant`: one request every 1/R s;
- `poisson`: exponential gaps of mean 1/R (a Poisson process of rate R);
- `gamma`: gamma-distributed gaps of shape `burstiness` and scale 1/(R · burstiness), so the mean
  rate is R; burstiness < 1 is burstier than Poisson, > 1 more regular, 1 is Poisson.

Split over W load generators (Locust workers or processes), each runs the process at R/W with its
own seed derived from the run's (`worker_seed`): the union of W independent Poisson(R/W)
processes is Poisson(R); constant schedules are offset by i/R so their union is constant at R.
Gamma shares are gamma at R/W each (their union has the right rate, burstiness approximately).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

ARRIVALS = ("constant", "poisson", "gamma")


@dataclass(frozen=True, slots=True)
class ArrivalProcess:
    rate: float  # requests per second
    arrival: str = "poisson"  # "constant" | "poisson" | "gamma"
    burstiness: float = 1.0  # gamma shape (1: Poisson)

    def __post_init__(self) -> None:
        if not self.rate > 0 or math.isinf(self.rate):
            raise ValueError(f"rate must be a finite number > 0, got {self.rate}")
        if self.arrival not in ARRIVALS:
            raise ValueError(f"arrival must be one of {ARRIVALS}, got {self.arrival!r}")
        if not self.burstiness > 0:
            raise ValueError(f"burstiness must be > 0, got {self.burstiness}")

    def gap(self, rng: random.Random) -> float:
        """One inter-arrival gap in seconds."""
        if self.arrival == "constant":
            return 1.0 / self.rate
        if self.arrival == "poisson":
            return rng.expovariate(self.rate)
        return rng.gammavariate(self.burstiness, 1.0 / (self.rate * self.burstiness))

    def share(self, workers: int, index: int) -> tuple[ArrivalProcess, float]:
        """Worker `index` of `workers`: its process (rate R/W) and the offset of its first arrival
        (constant schedules interleave: worker i starts at i/R)."""
        if workers < 1 or not 0 <= index < workers:
            raise ValueError(f"worker index {index} outside 0..{workers - 1}")
        part = ArrivalProcess(self.rate / workers, self.arrival, self.burstiness)
        return part, (index / self.rate if self.arrival == "constant" else 0.0)


def worker_seed(run_seed: int, step: int, worker_index: int) -> int:
    """A seed per (run, step, worker), stable across processes and Python versions (no hash())."""
    digest = hashlib.sha256(f"{run_seed}:{step}:{worker_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def schedule(process: ArrivalProcess, seed: int, offset: float = 0.0) -> Iterator[float]:
    """Intended send times, seconds after the step's start, for ever (the caller stops at its
    window's end). A constant schedule starts at `offset`; a random one one gap after it, so a
    step does not open with every worker's first request at once."""
    rng = random.Random(seed)
    if process.arrival == "constant":
        i = 0
        period = 1.0 / process.rate
        while True:
            yield offset + i * period  # multiplied, not summed: no accumulated rounding
            i += 1
    t = offset
    while True:
        t += process.gap(rng)
        yield t


def times_until(process: ArrivalProcess, seed: int, horizon: float, offset: float = 0.0) -> list[float]:
    """The intended send times before `horizon` seconds (for tests and the report's offered rate)."""
    out = []
    for t in schedule(process, seed, offset):
        if t >= horizon:
            break
        out.append(t)
    return out
