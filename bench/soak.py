"""Soak: does the client hold up for half an hour? Its memory, and every request accounted. Not a test.

`python -m harness sweep` starts the emulator itself (`fast` profile: a few ms per step, so
requests are short and the client is kept busy without being the bottleneck) and runs ONE step of
`--streams` users (default 256) for `--duration-s` seconds (default 1800) with short outputs
(`--output-tokens`, default 16). Every `--sample-s` seconds (default 10) the sweep process's RSS
is sampled (psutil; the client only, not the emulator it started). Two checks decide the exit code:

- memory: RSS growth after warm-up (last sample of the load minus the first sample after
  `--settle-s`, default 120 s) ≤ `--max-growth-mb` (default 50); samples taken once the load has
  ended (the report is being built) are kept in the JSON but not counted;
- accounting: the records on disk (every line of records-*.jsonl parsed) equal the requests the
  run's own counters say were sent: the emulator's `requests_total` from the run log's end facts
  (run.jsonl), minus the one pre-flight probe, which is not a record. Locust's request count
  (locust_stats.csv, requests that ended and were reported) plus the records of requests cancelled
  at the close is shown beside it.

    make perf ARGS="--suite soak"                                  # 30 minutes, 256 streams
    make perf ARGS="--suite soak -- --duration-s 120 --settle-s 30"   # a short try

Writes bench/out/soak-<time>.{json,md} and prints the table (docs/capacity.md shows the last one).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
PREFLIGHT_PROBES = 1  # harness.load.preflight.probe: one generation request before the run, no record


def load_ended(run_dir: Path) -> bool:
    """True once the sweep wrote its steps to the run log: the load is over, the report is next."""
    try:
        return '"kind": "steps"' in (run_dir / "run.jsonl").read_text(encoding="utf-8")
    except OSError:
        return False


def count_records(run_dir: Path) -> tuple[int, int, int]:
    """(records parsed, lines that did not parse, records of cancelled requests) on disk."""
    parsed = torn = cancelled = 0
    for path in sorted(run_dir.glob("records-*.jsonl")):
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except ValueError:
                    torn += 1
                    continue
                parsed += 1
                cancelled += rec.get("error_type") == "cancelled"
    return parsed, torn, cancelled


def emulator_requests(run_dir: Path) -> int | None:
    """The emulator's own count of generation requests, from the run log's end facts."""
    total = None
    for line in (run_dir / "run.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        stats = ((entry.get("facts") or {}).get("server") or {}).get("emulator_stats")
        if entry.get("kind") == "end" and stats:
            total = int(stats["requests_total"])
    return total


def locust_requests(run_dir: Path) -> int | None:
    for row in csv.DictReader(open(run_dir / "locust_stats.csv", encoding="utf-8")):
        if row["Type"] == "POST":
            return int(row["Request Count"])
    return None


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    run_dir = tmp / "run"
    emu_args = f"--max-concurrent-requests {max(1024, 2 * args.streams)}"
    cmd = [sys.executable, "-m", "harness", "sweep", "--emulator-profile", "fast",
           "--emulator-args", emu_args, "--steps", str(args.streams), "--spawn-rate", "1000",
           "--warmup-min-s", "5", "--warmup-max-s", "5",
           "--measure-min-s", str(args.duration_s), "--measure-max-s", str(args.duration_s),
           "--input-mean", "50", "--input-stddev", "0", "--output-mean", str(args.output_tokens),
           "--output-stddev", "0", "--timeout-s", "60", "--records-dir", str(run_dir),
           "--quiet", "--no-plots"]
    log = open(tmp / "sweep.log", "w")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    client = psutil.Process(proc.pid)
    samples: list[dict[str, Any]] = []
    try:
        while proc.poll() is None:
            try:
                rss = client.memory_info().rss
            except psutil.NoSuchProcess:
                break
            samples.append({"t_s": round(time.monotonic() - t0, 1), "rss_mb": round(rss / 2**20, 1),
                            "load": not load_ended(run_dir)})
            try:
                proc.wait(timeout=args.sample_s)
            except subprocess.TimeoutExpired:
                pass
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(60)
        log.close()
    wall = time.monotonic() - t0
    parsed, torn, cancelled = count_records(run_dir)
    server = emulator_requests(run_dir)
    sent = None if server is None else server - PREFLIGHT_PROBES
    ended = locust_requests(run_dir)
    during = [s for s in samples if s["load"]]
    settled = [s for s in during if s["t_s"] >= args.settle_s]
    growth = settled[-1]["rss_mb"] - settled[0]["rss_mb"] if len(settled) >= 2 else None
    return {
        "exit_code": proc.returncode, "wall_s": round(wall, 1), "samples": samples,
        "rss_start_mb": during[0]["rss_mb"] if during else None,
        "rss_settled_mb": settled[0]["rss_mb"] if settled else None,
        "rss_end_mb": during[-1]["rss_mb"] if during else None,
        "rss_max_mb": max((s["rss_mb"] for s in during), default=None),
        "growth_mb": None if growth is None else round(growth, 1),
        "records": parsed, "torn_lines": torn, "cancelled": cancelled,
        "sent_by_server_count": sent, "locust_ended": ended,
        "sweep_log_tail": (tmp / "sweep.log").read_text(errors="replace")[-2000:],
    }


def table(r: dict[str, Any], args: argparse.Namespace) -> str:
    def f(v: Any) -> str:
        return "–" if v is None else f"{v:g}" if isinstance(v, float) else str(v)

    ended_plus = None if r["locust_ended"] is None else r["locust_ended"] + r["cancelled"]
    head = ("| streams | duration | RSS start / after settle / end / max (MB) | growth after settle (MB) "
            "| records on disk | sent (server count − probe) | Locust ended + cancelled | torn lines "
            "| sweep exit |")
    rss = " / ".join(f(r[k]) for k in ("rss_start_mb", "rss_settled_mb", "rss_end_mb", "rss_max_mb"))
    row = (f"| {args.streams} | {args.duration_s / 60:.3g} min | {rss} | {f(r['growth_mb'])} "
           f"| {r['records']} | {f(r['sent_by_server_count'])} | {f(ended_plus)} | {r['torn_lines']} "
           f"| {r['exit_code']} |")
    return "\n".join([head, "|---|---|---|---|---|---|---|---|---|", row])


def verdict(r: dict[str, Any], max_growth_mb: float) -> list[str]:
    """What failed (empty: the soak passed)."""
    bad = []
    if r["growth_mb"] is None:
        bad.append("too few RSS samples after the settle time (is --duration-s longer than --settle-s?)")
    elif r["growth_mb"] > max_growth_mb:
        bad.append(f"RSS grew {r['growth_mb']:g} MB after warm-up (limit {max_growth_mb:g})")
    if r["sent_by_server_count"] is None:
        bad.append("the run log has no emulator request count")
    elif r["records"] != r["sent_by_server_count"]:
        bad.append(f"{r['records']} records on disk but {r['sent_by_server_count']} requests sent")
    if r["torn_lines"]:
        bad.append(f"{r['torn_lines']} record lines did not parse")
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=256)
    ap.add_argument("--duration-s", type=float, default=1800.0, help="the measured window")
    ap.add_argument("--output-tokens", type=int, default=16)
    ap.add_argument("--sample-s", type=float, default=10.0, help="seconds between RSS samples")
    ap.add_argument("--settle-s", type=float, default=120.0, help="warm-up: RSS growth counts from here")
    ap.add_argument("--max-growth-mb", type=float, default=50.0)
    args, _ = ap.parse_known_args(argv)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        r = run(args, Path(tmp))
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    bad = verdict(r, args.max_growth_mb)
    md = (f"Soak ({when}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, emulator fast "
          f"profile, {args.output_tokens} output tokens, sweep wall {r['wall_s']:g} s):\n\n"
          + table(r, args) + "\n\n" + ("pass" if not bad else "FAIL: " + "; ".join(bad)) + "\n")
    print(md)
    if r["exit_code"] not in (0, None):
        print(r["sweep_log_tail"])
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    meta = {"when": when, "args": vars(args), "failed": bad, **r}
    (OUT / f"soak-{stamp}.json").write_text(json.dumps(meta, indent=1) + "\n")
    (OUT / f"soak-{stamp}.md").write_text(md)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
