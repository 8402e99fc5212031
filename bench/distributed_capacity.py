"""What each extra worker adds, and what the master costs: `python -m harness sweep --workers K`
for K = 1, 2 (`--workers-list`) against the emulator's `exact` profile, one step of `--streams`
users. Not a test.

The emulator is pinned to the last CPU; the master and its workers share the others (each worker
on a core of its own when there are at least K + 2 CPUs, else the table says "shared"). Per K:
throughput against the ideal (streams × tokens / request time), TTFT and ITL percentiles from the
records, every worker's CPU over the window (the workers' own samples, sent to the master) and the
master's own CPU over the window, and per worker. Markdown and JSON go to bench/out/.

    make perf ARGS="--suite distributed"
    python bench/distributed_capacity.py --streams 256 --window-s 20 --workers-list 1,2,4
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
sys.path.insert(0, str(ROOT))


def run_one(k: int, args: argparse.Namespace) -> dict[str, Any]:
    from harness.targets.emulator_process import EmulatorProcess

    cpus = sorted(os.sched_getaffinity(0))
    request_s = args.ttft_ms / 1000 + (args.tokens - 1) * args.itl_ms / 1000
    emu_args = ["--ttft-ms", str(args.ttft_ms), "--itl-ms", str(args.itl_ms),
                "--max-concurrent-requests", str(max(4096, 2 * args.streams))]
    with EmulatorProcess(profile="exact", args=emu_args, timeout=120) as emu, \
            tempfile.TemporaryDirectory(prefix="distributed-capacity-") as tmp:
        client_cpus = set(cpus[:-1]) if len(cpus) > 1 else set(cpus)
        if len(cpus) > 1:
            os.sched_setaffinity(emu.proc.pid, {cpus[-1]})
        run_dir = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "harness", "sweep", "--workers", str(k), "--url", emu.url,
               "--records-dir", str(run_dir), "--steps", str(args.streams), "--spawn-rate", "10000",
               "--warmup-min-s", str(args.warmup_s), "--warmup-max-s", str(args.warmup_s),
               "--measure-min-s", str(args.window_s), "--measure-max-s", str(args.window_s),
               "--input-mean", "100", "--input-stddev", "0", "--output-mean", str(args.tokens),
               "--output-stddev", "0", "--ignore-eos", "--quiet", "--no-plots", "--timeout-s", "120"]
        proc = subprocess.Popen(cmd, cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        os.sched_setaffinity(proc.pid, client_cpus)
        own_cores = len(client_cpus) >= k + 1
        pinned: set[int] = set()
        deadline = time.monotonic() + 120
        while len(pinned) < k and time.monotonic() < deadline and proc.poll() is None:
            for child in [c for c in psutil.Process(proc.pid).children() if c.pid not in pinned]:
                core = sorted(client_cpus)[(len(pinned) + 1) % len(client_cpus)] if own_cores else None
                child.cpu_affinity([core] if core is not None else sorted(client_cpus))
                pinned.add(child.pid)
            time.sleep(0.1)
        if own_cores:
            psutil.Process(proc.pid).cpu_affinity([sorted(client_cpus)[0]])
        proc.wait(timeout=args.warmup_s + args.window_s + 300)
        row = next(csv.DictReader(open(run_dir / "summary.csv")))
        steps = json.loads((run_dir / "steps.json").read_text())
    client = steps[0].get("client") or {}
    workers = client.get("workers") or {}
    ideal = args.streams * args.tokens / request_s
    master = client.get("master_cpu_percent")
    return {
        "workers": k, "streams": args.streams, "cores": "own" if own_cores else "shared",
        "exit_code": proc.returncode,
        "throughput_tps": float(row["throughput_tps"]), "ideal_tps": ideal,
        "ttft_p50_ms": float(row["ttft_p50_s"]) * 1000, "ttft_p99_ms": float(row["ttft_p99_s"]) * 1000,
        "itl_p50_ms": float(row["itl_p50_s"]) * 1000, "itl_p99_ms": float(row["itl_p99_s"]) * 1000,
        "worker_cpu_percent": [w.get("cpu_percent") for w in workers.values()],
        "worker_lag_p99_ms": [w.get("sched_lag_p99_ms") for w in workers.values()],
        "master_cpu_percent": master,
        "master_cpu_per_worker": None if master is None else master / k,
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    def f(v: Any, d: int = 1) -> str:
        return "–" if v is None else f"{v:.{d}f}"

    out = ["| workers | streams | cores | throughput / ideal | TTFT p50 / p99 (ms) | ITL p50 / p99 (ms) "
           "| worker CPU (%) | worker lag p99 (ms) | master CPU (%) | master CPU per worker (%) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r['workers']} | {r['streams']} | {r['cores']} | {r['throughput_tps'] / r['ideal_tps']:.3f} "
            f"| {f(r['ttft_p50_ms'])} / {f(r['ttft_p99_ms'])} "
            f"| {f(r['itl_p50_ms'], 2)} / {f(r['itl_p99_ms'], 2)} "
            f"| {', '.join(f(c, 0) for c in r['worker_cpu_percent'])} "
            f"| {', '.join(f(c, 2) for c in r['worker_lag_p99_ms'])} "
            f"| {f(r['master_cpu_percent'], 1)} | {f(r['master_cpu_per_worker'], 1)} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=128)
    ap.add_argument("--workers-list", default="1,2", help="worker counts, e.g. 1,2,4")
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--ttft-ms", type=float, default=50.0)
    ap.add_argument("--itl-ms", type=float, default=20.0)
    ap.add_argument("--warmup-s", type=float, default=5.0)
    ap.add_argument("--window-s", type=float, default=20.0)
    args = ap.parse_args(argv)
    rows = []
    for k in [int(x) for x in args.workers_list.split(",") if x]:
        print(f"-- {k} worker(s), {args.streams} streams", flush=True)
        rows.append(run_one(k, args))
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    conditions = (f"{when}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, emulator exact "
                  f"(TTFT {args.ttft_ms:.0f} ms, ITL {args.itl_ms:.0f} ms, {args.tokens} tokens) "
                  "on the last CPU")
    table = f"Distributed capacity ({conditions}):\n\n" + markdown(rows)
    print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "distributed_capacity.md").write_text(table)
    data = {"conditions": conditions, "rows": rows}
    (OUT / "distributed_capacity.json").write_text(json.dumps(data, indent=1))
    return 0 if all(r["exit_code"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
