"""Request traces for replay, pure: read and check a JSONL trace, split it over load generators,
convert the public Azure LLM inference trace to it.

A trace is JSONL, one request per line, in send order:
    {"timestamp": 0.25, "input_tokens": 812, "output_tokens": 64, "text": "optional prompt"}
`timestamp` is seconds from the trace's start (float ≥ 0, never decreasing), the token counts are
integers > 0; `text`, when given, is sent as the prompt as is (else the run builds a distinct prompt
of `input_tokens` tokens, harness.workload.prompts). Blank lines are skipped. A `trace = "…"` step
(harness.config.model.Step) replays it on its own absolute clock: entry i is due at
LEAD_S + timestamp / speed seconds after the step's start, whatever the server does.

Why the file is read when the configuration is validated (the model's only file read): a trace
that cannot be replayed must stop the run before any server starts, with one line naming file:line.
`load_trace` caches by (path, size, mtime), so every validation of the same config reads it once.

Split over W load generators, entry i goes to generator i mod W: deterministic, and the union of
the shares is the trace (`share`).
"""

from __future__ import annotations

import csv
import json
import math
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

TRACES = Path(__file__).resolve().with_name("traces")  # shipped traces (package data)
# The trace's time 0 is this long after its step starts: every load generator's driver is running
# by then (a distributed one gets its spawn message first), so the first entries are not sent late.
LEAD_S = 0.5


class TraceError(ValueError):
    """A trace that cannot be replayed; str() is one line naming file:line."""


@dataclass(frozen=True, slots=True)
class TraceEntry:
    timestamp: float  # seconds from the trace's start
    input_tokens: int
    output_tokens: int
    text: str | None = None


@dataclass(frozen=True)
class Trace:
    path: str  # as resolved (absolute)
    entries: tuple[TraceEntry, ...]

    @property
    def duration_s(self) -> float:
        """The last entry's timestamp (the trace starts at 0)."""
        return self.entries[-1].timestamp

    def mean_rate(self, speed: float = 1.0) -> float:
        """Requests/s over the replay (entries ÷ (last timestamp / speed)); a trace whose entries are
        all at 0 counts as lasting one second."""
        span = self.duration_s / speed
        return len(self.entries) / (span if span > 0 else 1.0)

    def share(self, workers: int, index: int) -> list[tuple[int, TraceEntry]]:
        """Generator `index` of `workers`: its (entry number, entry) pairs, entry i → i mod W."""
        return share(self.entries, workers, index)


def share(entries: Sequence[TraceEntry], workers: int, index: int) -> list[tuple[int, TraceEntry]]:
    if workers < 1 or not 0 <= index < workers:
        raise ValueError(f"worker index {index} outside 0..{workers - 1}")
    return [(i, entries[i]) for i in range(index, len(entries), workers)]


def resolve_trace(name: str) -> Path:
    """A path as given (relative: to the working directory), else a shipped trace by file name
    (harness/workload/traces/<name>, `.jsonl` optional)."""
    p = Path(name).expanduser()
    if p.exists() or "/" in name:
        return p
    for candidate in (TRACES / name, TRACES / f"{name}.jsonl"):
        if candidate.exists():
            return candidate
    return p


def shipped_traces() -> list[str]:
    return sorted(p.name for p in TRACES.glob("*.jsonl"))


def parse_lines(lines: Iterable[str], where: str = "trace") -> tuple[TraceEntry, ...]:
    """Entries of a trace's lines, or TraceError naming `where`:line and the problem."""
    out: list[TraceEntry] = []
    last = 0.0
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        entry = _entry(line, f"{where}:{n}")
        if entry.timestamp < last:
            raise TraceError(f"{where}:{n}: timestamp {entry.timestamp:g} is before the previous "
                             f"entry's {last:g} (entries must be in send order)")
        last = entry.timestamp
        out.append(entry)
    if not out:
        raise TraceError(f"{where}: no entries")
    return tuple(out)


def _entry(line: str, where: str) -> TraceEntry:
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise TraceError(f"{where}: not JSON ({exc.args[0].split(':')[0]})") from None
    if not isinstance(obj, dict):
        raise TraceError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    unknown = set(obj) - {"timestamp", "input_tokens", "output_tokens", "text"}
    if unknown:
        raise TraceError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                         "(allowed: timestamp, input_tokens, output_tokens, text)")
    ts = obj.get("timestamp")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts) or ts < 0:
        raise TraceError(f"{where}: timestamp must be a number of seconds ≥ 0, got {ts!r}")
    counts = []
    for key in ("input_tokens", "output_tokens"):
        v = obj.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise TraceError(f"{where}: {key} must be an integer > 0, got {v!r}")
        counts.append(v)
    text = obj.get("text")
    if text is not None and (not isinstance(text, str) or not text.strip()):
        raise TraceError(f"{where}: text must be a non-empty string when given, got {text!r}")
    return TraceEntry(float(ts), counts[0], counts[1], text)


def load_trace(name: str) -> Trace:
    """The trace `name` names (see `resolve_trace`), checked; TraceError when it cannot be read."""
    path = resolve_trace(name)
    try:
        st = path.stat()
    except OSError:
        shipped = ", ".join(shipped_traces())
        raise TraceError(f"{name}: trace file not found (shipped traces: {shipped})") from None
    if not stat.S_ISREG(st.st_mode):
        raise TraceError(f"{name}: not a file")
    return _load(str(path.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=16)
def _load(path: str, _size: int, _mtime_ns: int) -> Trace:
    try:
        with open(path, encoding="utf-8") as fh:
            entries = parse_lines(fh, path)
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: cannot read: {exc}") from None
    return Trace(path, entries)


def dump_lines(entries: Iterable[TraceEntry]) -> Iterator[str]:
    """The JSONL lines of entries (no `text` key when there is none)."""
    for e in entries:
        obj: dict[str, object] = {"timestamp": round(e.timestamp, 6), "input_tokens": e.input_tokens,
                                  "output_tokens": e.output_tokens}
        if e.text is not None:
            obj["text"] = e.text
        yield json.dumps(obj) + "\n"


# --- the Azure LLM inference trace ------------------------------------------------------------

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


def _azure_time(text: str, where: str) -> float:
    """Seconds since the epoch of an Azure TIMESTAMP ("2023-11-16 18:15:46.6805900", 7 fractional
    digits: more than datetime parses, so the fraction is read on its own)."""
    head, dot, frac = text.strip().partition(".")
    try:
        base = datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp()
        return base + (float("0." + frac) if dot and frac else 0.0)
    except ValueError:
        raise TraceError(f"{where}: TIMESTAMP {text!r} is not a date and time") from None


def convert_azure(rows: Iterable[str], where: str = "azure.csv",
                  limit: int | None = None) -> Iterator[TraceEntry]:
    """Entries of an Azure LLM inference trace CSV (TIMESTAMP, ContextTokens, GeneratedTokens;
    github.com/Azure/AzurePublicDataset): timestamps from the first row's, rows with a zero token
    count skipped (a request that cannot be replayed), sorted by time when the file is not."""
    reader = csv.DictReader(rows)
    missing = [c for c in AZURE_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise TraceError(f"{where}:1: missing column(s) {', '.join(missing)} "
                         f"(expected {', '.join(AZURE_COLUMNS)})")
    raw: list[tuple[float, int, int]] = []
    for row in reader:
        line = f"{where}:{reader.line_num}"
        try:
            n_in, n_out = int(row["ContextTokens"]), int(row["GeneratedTokens"])
        except (TypeError, ValueError):
            raise TraceError(f"{line}: token counts must be integers") from None
        if n_in > 0 and n_out > 0:
            raw.append((_azure_time(row["TIMESTAMP"], line), n_in, n_out))
        if limit is not None and len(raw) >= limit:
            break
    if not raw:
        raise TraceError(f"{where}: no rows with token counts > 0")
    raw.sort(key=lambda r: r[0])
    t0 = raw[0][0]
    for t, n_in, n_out in raw:
        yield TraceEntry(t - t0, n_in, n_out)


def convert_file(fmt: str, src: str | os.PathLike[str], dst: str | os.PathLike[str],
                 limit: int | None = None) -> int:
    """Convert `src` (format `fmt`: "azure") to a JSONL trace at `dst`; the number of entries."""
    if fmt != "azure":
        raise TraceError(f"unknown trace format {fmt!r} (allowed: azure)")
    try:
        with open(src, encoding="utf-8", newline="") as fh:
            entries = list(convert_azure(fh, str(src), limit))
    except OSError as exc:
        raise TraceError(f"{src}: cannot read: {exc.strerror}") from None
    with open(dst, "w", encoding="utf-8") as out:
        out.writelines(dump_lines(entries))
    return len(entries)
