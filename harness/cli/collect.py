"""`python -m harness collect OUT DIR [DIR ...]`: merge the records of a distributed run kept on
several hosts (`--worker-records local` or `both`) into one run directory, then build its report.

Every `records-*.jsonl` under each DIR (at any depth, e.g. a worker's `worker-<id>/`) is read; each
record goes to OUT/records-<worker>.jsonl of the worker that sent it, once (by request id: a
record found in two places — the master's copy and the worker's own — is written once). The run
log `run.jsonl` comes from the first DIR that has one (the master's directory: put it first).
The workers shifted their records onto the master's clock before writing them, so the files of
different hosts share one timeline.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from harness.records.record import iter_records
from harness.records.runlog import RUN_LOG


def collect(out: Path, dirs: list[Path]) -> dict[str, int]:
    """Merge into `out` (created); returns records written per worker. Raises FileNotFoundError."""
    for d in dirs:
        if not d.is_dir():
            raise FileNotFoundError(f"no such directory: {d}")
    out.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    written: dict[str, int] = {}
    handles = {}
    try:
        for d in dirs:
            for path in sorted(d.rglob("records-*.jsonl")):
                if path.parent.resolve() == out.resolve():
                    continue
                for rec in iter_records(path):
                    if rec.request_id in seen:
                        continue
                    seen.add(rec.request_id)
                    fh = handles.get(rec.worker)
                    if fh is None:
                        name = f"records-{rec.worker.replace(':', '-')}.jsonl"
                        fh = handles[rec.worker] = open(out / name, "w", encoding="utf-8")  # noqa: SIM115
                    fh.write(rec.to_json() + "\n")
                    written[rec.worker] = written.get(rec.worker, 0) + 1
    finally:
        for fh in handles.values():
            fh.close()
    logs = [d / RUN_LOG for d in dirs if (d / RUN_LOG).is_file()]
    if logs and logs[0].resolve() != (out / RUN_LOG).resolve():
        shutil.copy(logs[0], out / RUN_LOG)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness collect", description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the merged run directory (created)")
    ap.add_argument("dirs", nargs="+", help="run directories of the master and the workers (master first)")
    ap.add_argument("--no-plots", action="store_true", help="skip the plots of report.html")
    args = ap.parse_args(argv)
    out = Path(args.out)
    try:
        written = collect(out, [Path(d) for d in args.dirs])
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for worker, n in sorted(written.items()):
        print(f"{worker}: {n} records")
    if not (out / RUN_LOG).is_file():
        print(f"warning: no {RUN_LOG} in any directory: steps are guessed from the records", file=sys.stderr)
    from harness.report.build import build_report
    from harness.report.tables import markdown_table

    steps, _ = build_report(out, with_plots=not args.no_plots)
    print(markdown_table(steps))
    print(f"\nreport: {out / 'report.html'}")
    return 0
