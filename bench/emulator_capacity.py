"""How many concurrent streams can the emulator hold on ONE core while keeping its deadlines?

Not a test. Starts the emulator (`exact` profile, 50 tokens/s per stream) pinned to one core,
drives N closed-loop streaming users from client processes pinned to the other core(s), and
reads the server's own lateness (write time − deadline) from /emulator/stats over a measured
window after a warm-up. Prints a markdown table and writes JSON to bench/out/.

    .venv/bin/python bench/emulator_capacity.py --streams 128 256 512 1024 --window-s 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.emulator.loadgen import ClosedLoop, stream_request  # noqa: E402
from harness.emulator.testing import EmulatorProcess  # noqa: E402


def client_proc(host: str, port: int, users: int, offset: int, tokens: int, ramp_s: float, stop_at: float,
                cpu: int | None, out: mp.Queue) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    lp = ClosedLoop(host, port, stream_request(host, port, "Hello", tokens), users=users,
                    until=stop_at, start_spacing_s=ramp_s / max(1, users))

    async def main() -> None:
        await lp.run()

    t0 = time.perf_counter()
    asyncio.run(main())
    recs = lp.records
    out.put({"offset": offset, "requests": len(recs), "errors": sum(1 for r in recs if r.error),
             "events": sum(r.events for r in recs), "wall_s": time.perf_counter() - t0,
             "cpu_s": time.process_time()})


def run_one(n: int, args: argparse.Namespace, server_cpu: int, client_cpus: list[int]) -> dict:
    itl_ms = 1000.0 / args.rate
    emu_args = ["--ttft-ms", str(args.ttft_ms), "--itl-ms", str(itl_ms), "--max-concurrent-requests",
                str(max(4096, 2 * n))]
    with EmulatorProcess(profile="exact", args=emu_args, timeout=120) as emu:
        if server_cpu is not None:
            os.sched_setaffinity(emu.proc.pid, {server_cpu})
        host, port = emu.url.split("//")[1].rsplit(":", 1)
        procs, q = [], mp.Queue()
        per = [n // args.clients + (1 if i < n % args.clients else 0) for i in range(args.clients)]
        stop_at = time.perf_counter() + args.ramp_s + args.warmup_s + args.window_s + 1.0
        for i, users in enumerate(per):
            if not users:
                continue
            cpu = client_cpus[i % len(client_cpus)] if client_cpus else None
            p = mp.Process(target=client_proc, args=(host, int(port), users, i, args.tokens, args.ramp_s,
                                                     stop_at, cpu, q))
            p.start()
            procs.append(p)
        time.sleep(args.ramp_s + args.warmup_s)
        emu.reset()
        cpu0, wall0 = _proc_cpu_s(emu.proc.pid), time.monotonic()
        time.sleep(args.window_s)
        st = emu.stats()
        cpu1, wall1 = _proc_cpu_s(emu.proc.pid), time.monotonic()
        server_util = None
        if cpu0 is not None and cpu1 is not None:
            server_util = round((cpu1 - cpu0) / (wall1 - wall0), 3)
        results = [q.get(timeout=args.window_s + 60) for _ in procs]
        for p in procs:
            p.join(30)
    lat = st["lateness_ms"]
    request_s = args.ttft_ms / 1000 + (args.tokens - 1) / args.rate
    return {
        "streams": n,
        # a closed-loop stream idles for the TTFT between requests
        "target_events_per_s": round(n * args.tokens / request_s, 1),
        "events_per_s": round(st["token_events"] / st["window_s"], 1),
        "lateness_p50_ms": lat["p50"],
        "lateness_p99_ms": lat["p99"],
        "lateness_p999_ms": lat["p999"],
        "lateness_max_ms": lat["max"],
        "active_streams_end": st["active_streams"],
        "client_errors": sum(r["errors"] for r in results),
        "client_cpu_s": round(sum(r["cpu_s"] for r in results), 1),
        "server_cpu_util": server_util,
        "loadavg_1m": os.getloadavg()[0],
        "stats": st,
    }


def _proc_cpu_s(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, IndexError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, nargs="+", default=[128, 256, 512, 1024])
    ap.add_argument("--rate", type=float, default=50.0, help="tokens/s per stream")
    ap.add_argument("--ttft-ms", type=float, default=100.0)
    ap.add_argument("--tokens", type=int, default=250, help="max_new_tokens per request")
    ap.add_argument("--clients", type=int, default=2, help="client processes")
    ap.add_argument("--ramp-s", type=float, default=3.0)
    ap.add_argument("--warmup-s", type=float, default=3.0)
    ap.add_argument("--window-s", type=float, default=10.0)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpus", type=int, nargs="*", default=None,
                    help="default: every CPU but the server's")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out"))
    args = ap.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    client_cpus = args.client_cpus
    if client_cpus is None:
        client_cpus = [c for c in cpus if c != args.server_cpu]
    rows = []
    for n in args.streams:
        row = run_one(n, args, args.server_cpu, client_cpus)
        rows.append(row)
        print(f"{n} streams: {row['events_per_s']} ev/s, lateness p50 {row['lateness_p50_ms']} ms, "
              f"p99 {row['lateness_p99_ms']} ms, max {row['lateness_max_ms']} ms", file=sys.stderr)
    lines = [
        "| streams | target ev/s | measured ev/s | lateness p50 (ms) | p99 (ms) | p99.9 (ms) | max (ms) "
        "| server CPU | load avg | client errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['streams']} | {r['target_events_per_s']:.0f} | {r['events_per_s']:.0f} | "
                     f"{r['lateness_p50_ms']} | {r['lateness_p99_ms']} | {r['lateness_p999_ms']} | "
                     f"{r['lateness_max_ms']} | {r['server_cpu_util']} | {r['loadavg_1m']:.1f} | "
                     f"{r['client_errors']} |")
    print("\n".join(lines))
    meta = {"argv": sys.argv, "args": vars(args), "python": sys.version, "platform": platform.platform(),
            "cpus": cpus, "loadavg": os.getloadavg(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"emulator_capacity-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"\nwritten {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
