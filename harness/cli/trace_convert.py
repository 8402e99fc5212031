"""`python -m harness trace-convert azure IN.csv OUT.jsonl`: a public trace → the replay format.

The conversion itself is pure (harness.workload.trace.convert_azure); this is its command line.
Bad input (missing file or column, a row that is not a request): one line, exit 2.
"""

from __future__ import annotations

import argparse
import sys

from harness.exitcodes import BAD_INPUT
from harness.workload.trace import TraceError, convert_file


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m harness trace-convert",
        description="Convert a public request trace to the JSONL replay format of a `trace = …` step "
        "(docs/methodology.md#trace-replay).",
    )
    p.add_argument("format", choices=["azure"],
                   help="azure: the Azure LLM inference trace CSV "
                        "(TIMESTAMP, ContextTokens, GeneratedTokens)")
    p.add_argument("source", help="the CSV file")
    p.add_argument("dest", help="the JSONL trace to write")
    p.add_argument("--limit", type=int, default=None, help="keep only the first N requests")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.limit is not None and args.limit < 1:
        print("trace-convert: --limit must be ≥ 1", file=sys.stderr)
        return BAD_INPUT
    try:
        n = convert_file(args.format, args.source, args.dest, args.limit)
    except TraceError as exc:
        print(f"trace-convert: {exc}", file=sys.stderr)
        return BAD_INPUT
    print(f"wrote {n} requests to {args.dest}")
    return 0
