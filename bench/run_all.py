"""`make perf`: the benchmark suite (never part of `make test`: it takes minutes and pins cores).

Suites (`--suite`, repeatable; default: client):
- client: bench/client_capacity.py: one client core carrying 64..1024 streams of our Locust user
  against the emulator pinned to the other core (issue #6), with the server's lateness subtracted;
- emulator: bench/emulator_capacity.py: how many streams the emulator holds on one core;
- pacing: bench/open_loop_pacing.py: offered vs achieved rate and schedule lag of open-loop steps at
  100, 500 and 2000 req/s on one client core (short outputs);
- client-tail: bench/client_tail.py: the client's TTFT p50/p99/p99.9 error against the exact
  emulator through the real sweep (progress line, CSV and record writers running), pinned to one
  core, at 64/256/1024 streams started together and staggered, split by cause (issue #12);
- distributed: bench/distributed_capacity.py: 1 vs 2 workers (`sweep --workers K`), what each
  extra worker adds and the master's own CPU per worker;
- soak: bench/soak.py: 30 minutes at 256 streams against the emulator: the client's RSS every 10 s
  (growth after warm-up ≤ 50 MB) and the records on disk equal to the requests sent.

    make perf                                # the client suite, default settings
    make perf ARGS="--suite client --suite emulator"
    make perf ARGS="--suite pacing"
    make perf ARGS="--suite client-tail"          # ~4 min; add -- --runs 3 for the issue's table
    make perf ARGS="--suite soak -- --duration-s 120 --settle-s 30"
    make perf ARGS="--suite client -- --streams 1024 --window-s 20"

Other arguments (or everything after `--`) go to every selected suite, e.g.
`make perf ARGS="--streams 1024 --window-s 20"`. Results: bench/out/*.json and *.md; the tables
are printed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SUITES = {
    "client": BENCH / "client_capacity.py",
    "client-tail": BENCH / "client_tail.py",
    "emulator": BENCH / "emulator_capacity.py",
    "pacing": BENCH / "open_loop_pacing.py",
    "distributed": BENCH / "distributed_capacity.py",
    "soak": BENCH / "soak.py",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", choices=sorted(SUITES), action="append",
                    help="run only this suite (repeatable); default: client")
    args, unknown = ap.parse_known_args(argv)
    extra = unknown + extra
    suites = args.suite or ["client"]
    worst = 0
    for name in suites:
        print(f"== {name}: {SUITES[name].name} {' '.join(extra)}", flush=True)
        rc = subprocess.call([sys.executable, str(SUITES[name]), *extra])
        worst = worst or rc
    return worst


if __name__ == "__main__":
    sys.exit(main())
