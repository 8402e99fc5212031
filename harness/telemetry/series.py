"""Saved scrapes as time series, and what a step's window holds: gauge means, counter and
histogram deltas.

Storage (`server_metrics.jsonl`, one JSON object a line, written by the sampler at the Locust rim):
a `{"kind": "source", ...}` line saying what was scraped, then one line per scrape
`{"t": wall_time, "s": [[name, {labels}, value], ...], "types": {...}}` holding only the series
whose value changed since the previous scrape (the first scrape holds them all), or
`{"t": wall_time, "error": "..."}` when a scrape failed. Histogram `_bucket` series are stored as
the count in each bucket alone (observations in (previous le, le]), not Prometheus' cumulative
counts: one observation then changes one line instead of every bucket above it (ChangeEncoder).
A series keeps its value between the lines that change it, so the raw value of every series at
every scrape time is recoverable, at a fraction of the size (TGI's `tgi_batch_next_size` alone
has 1,025 buckets, almost all constant).
`t` is `time.time()` in the process that runs the load shape: the clock of the step windows.

Counters and histograms are read as *deltas over the window* (the value at the last scrape at or
before the window's end minus the value at the last scrape at or before its start — or at the first
scrape, when scraping began inside the window), never as totals since the server started. A
series absent at the start counts from 0 (TGI creates a counter on its
first increment); a counter that went down (the server restarted) counts from 0 after the restart.
Histogram percentiles are bucket-bounded: the q-quantile lies in the bucket (lower, upper] whose
cumulative count first reaches q × count, and the report gives that bucket's upper bound.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.telemetry.prometheus import Labels

Key = tuple[str, Labels]
SERVER_METRICS = "server_metrics.jsonl"


def _le(labels: Labels) -> float:
    for k, v in labels:
        if k == "le":
            return math.inf if v.lower() in ("+inf", "inf") else float(v)
    return math.nan


def _by_le(member: tuple[float, Key]) -> float:
    return member[0]


def _same(a: float | None, b: float) -> bool:
    return a is not None and (a == b or (math.isnan(a) and math.isnan(b)))


class ChangeEncoder:
    """Turns full scrapes into the change-only lines of the file (keeps the last value of each series).

    Histogram `_bucket` series are stored per bucket — the count in (previous le, le] — not as
    Prometheus' cumulative counts, so one observation changes one line instead of every bucket
    above it; the file's source line says so (`"buckets": "per-bucket"`) and `Scrapes.histogram`
    adds them back up. Only histograms whose cumulative counts moved are re-split."""

    def __init__(self) -> None:
        self.cum: dict[Key, float] = {}  # every series' last value as scraped
        self.last: dict[Key, float] = {}  # last value written (per-bucket for buckets)
        self.types: dict[str, str] = {}
        self._group: dict[Key, Key | None] = {}  # bucket series → its histogram (name, labels w/o le)
        self._members: dict[Key, list[tuple[float, Key]]] = {}  # histogram → its buckets by le

    def _group_of(self, key: Key) -> Key | None:
        name, labels = key
        if not name.endswith("_bucket") or not any(k == "le" for k, _ in labels):
            return None
        group = (name, tuple(kv for kv in labels if kv[0] != "le"))
        # Kept sorted by le as buckets appear (after any of equal le, as a stable sort would put
        # them): a histogram of n buckets costs n·log n, not n² as re-sorting on each one did.
        bisect.insort(self._members.setdefault(group, []), (_le(labels), key), key=_by_le)
        return group

    def line(self, t: float, samples: Iterable[tuple[str, Labels, float]], types: dict[str, str]) -> dict:
        changed = []
        moved: set[Key] = set()
        for name, labels, value in samples:
            key = (name, labels)
            if _same(self.cum.get(key), value):
                continue
            self.cum[key] = value
            if key in self._group:
                group = self._group[key]
            else:
                group = self._group[key] = self._group_of(key)
            if group is None:
                self.last[key] = value
                changed.append([name, dict(labels), value])
            else:
                moved.add(group)
        for group in moved:
            below = 0.0
            for _, key in self._members[group]:
                cum = self.cum.get(key, 0.0)
                per = cum - below
                below = cum
                if not _same(self.last.get(key), per):
                    self.last[key] = per
                    changed.append([key[0], dict(key[1]), per])
        out: dict[str, Any] = {"t": round(t, 6), "s": changed}
        new_types = {k: v for k, v in types.items() if self.types.get(k) != v}
        if new_types:
            self.types.update(new_types)
            out["types"] = new_types
        return out


@dataclass
class Scrapes:
    """Every successful scrape time and each series' change points."""

    source: dict[str, Any] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)
    changes: dict[Key, tuple[list[float], list[float]]] = field(default_factory=dict)

    def add(self, t: float, samples: Iterable[tuple[str, Labels, float]]) -> None:
        self.times.append(t)
        for name, labels, value in samples:
            ts, vs = self.changes.setdefault((name, labels), ([], []))
            ts.append(t)
            vs.append(value)

    @property
    def names(self) -> set[str]:
        return {name for name, _ in self.changes}

    def has(self, name: str) -> bool:
        return any(n == name for n, _ in self.changes)

    def keys(self, name: str, match: dict[str, str] | None = None) -> list[Key]:
        """The series of `name` whose labels include `match`."""
        want = set((match or {}).items())
        return [k for k in self.changes if k[0] == name and want <= set(k[1])]

    def value_at(self, key: Key, t: float) -> float | None:
        """The series' value as the last scrape at or before `t` saw it (None: not yet present)."""
        ts, vs = self.changes.get(key, ((), ()))
        i = bisect.bisect_right(ts, t)
        return vs[i - 1] if i else None

    def times_in(self, start: float, end: float) -> list[float]:
        lo, hi = bisect.bisect_left(self.times, start), bisect.bisect_right(self.times, end)
        return self.times[lo:hi]

    def gauge(self, name: str, start: float, end: float, match: dict[str, str] | None = None) -> list[float]:
        """The gauge (summed over its matching series) at every scrape inside [start, end]."""
        keys = self.keys(name, match)
        if not keys:
            return []
        out = []
        for t in self.times_in(start, end):
            vals = [v for k in keys if (v := self.value_at(k, t)) is not None]
            if vals:
                out.append(sum(vals))
        return out

    def baseline(self, start: float) -> float:
        """The instant a window's deltas count from: the last scrape at or before `start`, else (the
        scraping began inside the window) the first scrape, so nothing before it is counted."""
        i = bisect.bisect_right(self.times, start)
        if i:
            return self.times[i - 1]
        return self.times[0] if self.times else start

    def delta(self, key: Key, start: float, end: float) -> float:
        """A counter's increase over the window (absent at the start: from 0; a reset: from 0)."""
        a = self.value_at(key, self.baseline(start)) or 0.0
        b = self.value_at(key, end) or 0.0
        if b >= a:
            return b - a
        return b  # the counter restarted inside the window: what it counted since is a lower bound

    def counter(
        self, name: str, start: float, end: float, match: dict[str, str] | None = None
    ) -> float | None:
        """Increase of the counter (summed over its matching series); None when it was never seen."""
        keys = self.keys(name, match)
        if not keys:
            return None
        return sum(self.delta(k, start, end) for k in keys)

    def histogram(
        self, name: str, start: float, end: float, match: dict[str, str] | None = None
    ) -> HistogramDelta | None:
        """The histogram's observations inside the window (summed over its matching series)."""
        buckets: dict[float, float] = {}
        for key in self.keys(name + "_bucket", match):
            bound = _le(key[1])
            if math.isnan(bound):
                continue
            buckets[bound] = buckets.get(bound, 0.0) + self.delta(key, start, end)
        if not buckets:
            return None
        count = self.counter(name + "_count", start, end, match)
        total = self.counter(name + "_sum", start, end, match)
        bounds = sorted(buckets)
        cumulative, running = [], 0.0
        for b in bounds:
            running += buckets[b]
            cumulative.append(running)
        return HistogramDelta(
            bounds=bounds,
            cumulative=cumulative,
            count=count if count is not None else buckets.get(math.inf, 0.0),
            sum=total if total is not None else math.nan,
        )


@dataclass(frozen=True)
class HistogramDelta:
    """A histogram's change over a window: cumulative bucket counts by upper bound, count and sum."""

    bounds: list[float]
    cumulative: list[float]
    count: float
    sum: float

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count > 0 else math.nan

    def quantile_bucket(self, q: float) -> tuple[float, float]:
        """(lower, upper] bounds of the bucket holding the q-quantile; (nan, nan) without observations."""
        if self.count <= 0:
            return math.nan, math.nan
        rank = q * self.count
        lower = 0.0
        for bound, cum in zip(self.bounds, self.cumulative, strict=True):
            if cum >= rank:
                return lower, bound
            lower = bound
        return lower, math.inf

    def quantile_upper(self, q: float) -> float:
        """The q-quantile's upper bound (the report's bucket-bounded percentile)."""
        return self.quantile_bucket(q)[1]


def read_scrapes(path: Path) -> Scrapes | None:
    """The scrapes saved in `path` (None when there is no such file). A torn last line is skipped."""
    if not path.is_file():
        return None
    out = Scrapes()
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            line = json.loads(text)
        except ValueError:
            continue
        if line.get("kind") == "source":
            out.source = line
            continue
        t = line.get("t")
        if t is None:
            continue
        if "error" in line:
            out.errors.append((t, line["error"]))
            continue
        out.types.update(line.get("types") or {})
        out.add(t, ((name, tuple(sorted(labels.items())), float(v)) for name, labels, v in line.get("s", [])))
    return out


def rows(scrapes: Scrapes) -> list[dict[str, Any]]:
    """The change points as flat rows (time, name, labels as JSON, value) for server_metrics.parquet
    (`_bucket` values per bucket, as stored)."""
    out = []
    for (name, labels), (ts, vs) in scrapes.changes.items():
        lab = json.dumps(dict(labels), sort_keys=True)
        out.extend({"time": t, "name": name, "labels": lab, "value": v} for t, v in zip(ts, vs, strict=True))
    out.sort(key=lambda r: (r["time"], r["name"], r["labels"]))
    return out
