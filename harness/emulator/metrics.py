"""The emulator's own bookkeeping: lateness of token writes (proof the server kept up) and TGI-style
Prometheus metrics for /metrics."""

from __future__ import annotations

import time

# Lateness histogram: 10 µs bins from -5 ms to +995 ms; overflow counted apart, max kept exactly.
_LO_S = -0.005
_BIN_S = 0.00001
_NBINS = 100_000


class Lateness:
    """Signed lateness (write time − deadline) of every token event, in fixed bins (cheap to add)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Zero in place: the server's hot path holds a reference to this object."""
        self.bins = [0] * _NBINS
        self.count = 0
        self.over = 0
        self.max_s = float("-inf")
        self.sum_s = 0.0

    def add(self, late_s: float) -> None:
        i = int((late_s - _LO_S) / _BIN_S)
        if 0 <= i < _NBINS:
            self.bins[i] += 1
        elif i < 0:
            self.bins[0] += 1
        else:
            self.over += 1
        self.count += 1
        self.sum_s += late_s
        if late_s > self.max_s:
            self.max_s = late_s

    def quantile_ms(self, q: float) -> float | None:
        if not self.count:
            return None
        rank = q * self.count
        seen = 0
        for i, c in enumerate(self.bins):
            if c:
                seen += c
                if seen >= rank:
                    return round((_LO_S + (i + 0.5) * _BIN_S) * 1000.0, 3)
        return round(self.max_s * 1000.0, 3)

    def summary(self) -> dict:
        return {
            "p50": self.quantile_ms(0.5),
            "p90": self.quantile_ms(0.9),
            "p99": self.quantile_ms(0.99),
            "p999": self.quantile_ms(0.999),
            "max": round(self.max_s * 1000.0, 3) if self.count else None,
            "mean": round(self.sum_s / self.count * 1000.0, 3) if self.count else None,
            "over_1s": self.over,
            "samples": self.count,
        }


class Histogram:
    def __init__(self, name: str, buckets: list[float], help_: str = "") -> None:
        self.name, self.buckets, self.help = name, buckets, help_
        self.series: dict[str, list] = {}

    def observe(self, value: float, labels: str = "") -> None:
        s = self.series.get(labels)
        if s is None:
            s = self.series[labels] = [[0] * len(self.buckets), 0.0, 0]
        counts = s[0]
        for i, b in enumerate(self.buckets):
            if value <= b:
                counts[i] += 1
                break
        s[1] += value
        s[2] += 1

    def render(self, out: list[str]) -> None:
        out.append(f"# TYPE {self.name} histogram")
        for labels, (counts, total, n) in self.series.items():
            sep = "," if labels else ""
            cum = 0
            for b, c in zip(self.buckets, counts, strict=True):
                cum += c
                out.append(f'{self.name}_bucket{{{labels}{sep}le="{rust_f64(b)}"}} {cum}')
            out.append(f'{self.name}_bucket{{{labels}{sep}le="+Inf"}} {n}')
            lab = f"{{{labels}}}" if labels else ""
            out.append(f"{self.name}_sum{lab} {total}")
            out.append(f"{self.name}_count{lab} {n}")


def rust_f64(value: float) -> str:
    """A float as TGI's exporter prints it (metrics-exporter-prometheus: Rust's `Display` for f64,
    the shortest round-trip digits, no exponent, no trailing `.0`): `le="0.00015000000000000001"`,
    `le="1024"`. Python's repr is the same digits for the bucket ranges used here."""
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = f"{value:.20f}".rstrip("0").rstrip(".")
    return text[:-2] if text.endswith(".0") else text


def duration_buckets() -> list[float]:
    """TGI: 35 exponential buckets, 0.0001 × 1.5^i."""
    out, v = [], 0.0001
    for _ in range(35):
        v *= 1.5
        out.append(v)
    return out


class TgiMetrics:
    """The subset of TGI's /metrics a load test looks at, with TGI's names and bucket layouts."""

    def __init__(self, max_input_tokens: int, max_total_tokens: int) -> None:
        d = duration_buckets()
        inp = [max_input_tokens / 100.0 * (x + 1) for x in range(100)]
        tot = [max_total_tokens / 100.0 * (x + 1) for x in range(100)]
        self.h = {
            n: Histogram(n, b)
            for n, b in [
                ("tgi_request_duration", d),
                ("tgi_request_validation_duration", d),
                ("tgi_request_queue_duration", d),
                ("tgi_request_inference_duration", d),
                ("tgi_request_mean_time_per_token_duration", d),
                ("tgi_request_input_length", inp),
                ("tgi_request_generated_tokens", tot),
                ("tgi_request_max_new_tokens", tot),
                ("tgi_batch_next_size", [float(x + 1) for x in range(1024)]),
                ("tgi_batch_forward_duration", d),
                ("tgi_batch_inference_duration", d),
            ]
        }
        self.counters: dict[str, dict[str, int]] = {
            "tgi_request_count": {"": 0},
            "tgi_request_success": {"": 0},
            "tgi_request_failure": {},
            "tgi_batch_inference_count": {},
            "tgi_batch_inference_success": {},
        }

    def observe(self, name: str, value: float, labels: str = "") -> None:
        self.h[name].observe(value, labels)

    def inc(self, name: str, labels: str = "", by: int = 1) -> None:
        c = self.counters[name]
        c[labels] = c.get(labels, 0) + by

    def render(self, gauges: dict[str, float]) -> str:
        out: list[str] = []
        for name, series in self.counters.items():
            out.append(f"# TYPE {name} counter")
            for labels, v in series.items():
                out.append(f"{name}{{{labels}}} {v}" if labels else f"{name} {v}")
        for name, v in gauges.items():
            out.append(f"# TYPE {name} gauge")
            out.append(f"{name} {v}")
        for h in self.h.values():
            h.render(out)
        return "\n".join(out) + "\n"


class Counters:
    """/emulator/stats counters (zeroed by POST /emulator/reset)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.lateness = Lateness()
        self.reset()

    @property
    def token_events(self) -> int:
        """Every token event records its lateness exactly once: no separate per-event counter."""
        return self.lateness.count

    def reset(self) -> None:
        self.since = time.monotonic()
        self.lateness.reset()
        self.requests_total = 0
        self.requests_failed = 0
        self.requests_ok = 0
        self.rejected_overloaded = 0
        self.peak_active_streams = 0
        self.busy_s = 0.0
