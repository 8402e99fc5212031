"""The Prometheus text exposition format (version 0.0.4), parsed into plain samples.

Servers differ in how they print numbers (TGI's exporter writes `le="0.00015000000000000001"`, others
`le="0.00015"`), so bucket bounds and values are parsed as floats and never compared as text. Only
what a load test reads is kept: `# TYPE` lines (which family is a counter, gauge or histogram) and
the samples; `# HELP` text and exemplars are dropped, an optional trailing timestamp is ignored
(every sample of a scrape carries the scrape's own time, on the clock of the step windows).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs: hashable, order-free

_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
_ESC = re.compile(r'\\[\\"n]')


@dataclass(frozen=True)
class Exposition:
    """One scrape: the samples as (name, labels, value) and each family's declared type."""

    samples: list[tuple[str, Labels, float]]
    types: dict[str, str]


def parse_value(text: str) -> float:
    """A sample value: a Go float (`+Inf`, `-Inf`, `NaN` included)."""
    low = text.lower()
    if low in ("+inf", "inf"):
        return math.inf
    if low == "-inf":
        return -math.inf
    return float(text)


def _labels(body: str) -> Labels:
    out = []
    pos = 0
    while pos < len(body):
        m = _LABEL.match(body, pos)
        if m is None:
            if body[pos:].strip():
                raise ValueError(f"bad label set {{{body}}}")
            break
        out.append((m.group(1), _ESC.sub(lambda e: _UNESCAPE[e.group(0)], m.group(2))))
        pos = m.end()
    return tuple(sorted(out))


def parse(text: str) -> Exposition:
    """Every sample of a scrape. A malformed line is skipped (one bad line must not cost the scrape)."""
    return Reader().read(text)


class Reader:
    """A parser that remembers each series' parsed name and labels across scrapes.

    A server prints the same series every second (TGI: ~4,000 lines, most of them buckets), so the
    label sets are parsed once and each later line costs a split and a dict lookup; this keeps a
    scrape to a few milliseconds of the load generator's CPU."""

    def __init__(self) -> None:
        self._series: dict[str, tuple[str, Labels] | None] = {}

    def read(self, text: str) -> Exposition:
        samples: list[tuple[str, Labels, float]] = []
        types: dict[str, str] = {}
        series = self._series
        for raw in text.splitlines():
            line = raw.strip()
            if not line:
                continue
            if line[0] == "#":
                parts = line[1:].split(None, 3)
                if len(parts) >= 3 and parts[0] == "TYPE":
                    types[parts[1]] = parts[2]
                continue
            head, _, value = line.rpartition(" ")
            head = head.rstrip()
            if head and head[-1] != "}" and " " in head:  # a trailing timestamp: drop it
                head, _, value = head.rpartition(" ")
                head = head.rstrip()
            known = series.get(head, False)
            if known is False:
                known = series[head] = _series_of(head)
            if known is None:
                continue
            try:
                samples.append((known[0], known[1], parse_value(value)))
            except ValueError:
                continue
        return Exposition(samples, types)


def _series_of(head: str) -> tuple[str, Labels] | None:
    """(name, labels) of a sample line without its value; None when it is not one."""
    m = _NAME.match(head)
    if m is None:
        return None
    name, rest = m.group(0), head[m.end():].strip()
    if not rest:
        return name, ()
    if not rest.startswith("{"):
        return None
    try:
        close = _closing_brace(rest)
        if rest[close + 1:].strip():
            return None
        return name, _labels(rest[1:close])
    except ValueError:
        return None


def _closing_brace(text: str) -> int:
    """Index of the `}` closing the label set (braces inside quoted values do not count)."""
    quoted = escaped = False
    for i, c in enumerate(text):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif c == "}" and not quoted:
            return i
    raise ValueError("unclosed label set")


def family(name: str, types: dict[str, str]) -> tuple[str, str]:
    """(family, sample suffix) of a sample name: `x_bucket` of histogram `x` is ("x", "_bucket")."""
    for suffix in ("_bucket", "_sum", "_count", "_total", "_created"):
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            if base in types:
                return base, suffix
    return name, ""
