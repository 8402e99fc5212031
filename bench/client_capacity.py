"""Can ONE client core carry N streams and still measure to the millisecond? (issue #6)

Not a test. For each stream count: the emulator's `exact` profile (TTFT 50 ms, ITL 20 ms) in one
process pinned to one core; our real Locust user (`harness.load.locust.users`, records and events included)
run headless as a library in a child process pinned to another core, closed loop, 200 output
tokens fixed, small prompts. The ramp spreads the starts over one request's duration (so streams
are not in lock-step), then a warm-up, then a measured window:

- the emulator's counters are reset at the window's start and read at its end: its own lateness
  (write time − deadline) is the truth we subtract; p99 > 2 ms marks the row server-bound (neither
  for nor against the client);
- TTFT and per-gap ITL come from the records *sent* in the window (all users running, connections
  warm); Δ = measured − what the server delivered (nominal + its lateness at the same percentile;
  for ITL p99 the server's own jitter, lateness p99 − p50, is added to the nominal gap);
- throughput counts every token stamp that falls inside the window, over the ideal
  N × tokens / (TTFT + (tokens − 1) × ITL) per second;
- client CPU is the pinned child's own CPU time over the window (psutil; 100 % = the core), and its
  scheduling lag is `harness.load.health.ClientMonitor`'s (how late a 50 ms sleep wakes up).

    .venv/bin/python bench/client_capacity.py --streams 64 256 512 1024
    .venv/bin/python bench/client_capacity.py --streams 1024 --py-spy bench/out/profile.svg

Writes bench/out/client_capacity-<time>.{json,md} and prints the table.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import machine

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
SERVER_BOUND_P99_MS = 2.0
GOAL = {"ttft_p50_delta_ms": 2.0, "itl_p99_delta_ms": 1.0, "throughput_ratio": 0.98, "cpu_percent": 85.0}


# --- the client child (pinned, gevent) ----------------------------------------------------------


def child(cfg: dict[str, Any]) -> None:
    """Run the Locust user in this process; print one JSON line with the window and client health."""
    if cfg["cpu"] is not None:
        os.sched_setaffinity(0, {cfg["cpu"]})
    _raise_fd_limit()
    import gevent
    from locust import events
    from locust.argument_parser import get_parser
    from locust.env import Environment

    from harness.load.health import summarize
    from harness.load.locust import users
    from harness.load.locust.listeners import register
    from harness.load.locust.monitor import ClientMonitor

    register(events)

    url, n = cfg["url"], cfg["streams"]
    argv = ["--headless", "--host", url, "--api", "generate_stream",
            "--input-mean", "20", "--input-stddev", "0", "--input-min", "5",
            "--output-mean", str(cfg["tokens"]), "--output-stddev", "0",
            "--prompt-pool-size", "64", "--timeout-s", "60", "--records-dir", cfg["records_dir"],
            "--stamps", cfg["stamps"],
            "--loglevel", "WARNING"]  # fmt: skip
    opts = get_parser(default_config_files=[]).parse_args(argv)
    env = Environment(user_classes=[users.user_class("generate_stream")], events=events, host=url,
                      parsed_options=opts, stop_timeout=1)
    runner = env.create_local_runner()
    events.init.fire(environment=env, runner=runner, web_ui=None)
    if users.shared.preparing is not None:
        users.shared.preparing.join()
    monitor = ClientMonitor().start()
    # Starts spread over one request's duration: a closed loop keeps its phases, so the token events
    # stay spread instead of arriving in lock-step bursts.
    rate = max(n / cfg["request_s"], 1.0)
    t_ramp = time.time()
    runner.start(n, spawn_rate=rate)
    while runner.user_count < n:
        gevent.sleep(0.05)
    ramp_end = time.time()
    gevent.sleep(cfg["warmup_s"])
    _post(url + "/emulator/reset")
    import psutil

    me = psutil.Process()
    pauses: list[float] = []  # garbage-collector pauses in the window (they stop every greenlet)
    gc_start = [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            pauses.append((time.perf_counter() - gc_start[0]) * 1000)

    gc.callbacks.append(on_gc)
    w0, cpu0, t0 = time.time(), monitor.cpu_seconds(), me.cpu_times()
    gevent.sleep(cfg["window_s"])
    w1, cpu1, t1 = time.time(), monitor.cpu_seconds(), me.cpu_times()
    gc.callbacks.remove(on_gc)
    stats = _get(url + "/emulator/stats")
    health = summarize(monitor.lags, w0, w1, cpu0, cpu1)
    health["cpu_user_percent"] = (t1.user - t0.user) / (w1 - w0) * 100
    health["cpu_system_percent"] = (t1.system - t0.system) / (w1 - w0) * 100
    health["gc_pauses"] = len(pauses)
    health["gc_pause_total_ms"] = sum(pauses)
    health["gc_pause_max_ms"] = max(pauses, default=0.0)
    monitor.stop()
    runner.quit()
    users.shared.close()
    print("RESULT " + json.dumps({"ramp_start": t_ramp, "ramp_end": ramp_end, "w0": w0, "w1": w1,
                                  "client": health, "server": stats}), flush=True)


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _post(url: str) -> dict:
    req = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _raise_fd_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- the parent: one emulator per row, the child, the numbers ------------------------------------


def run_one(n: int, args: argparse.Namespace, server_cpu: int | None, client_cpu: int | None) -> dict:
    from harness.targets.emulator_process import EmulatorProcess

    request_s = args.ttft_ms / 1000 + (args.tokens - 1) * args.itl_ms / 1000
    emu_args = ["--ttft-ms", str(args.ttft_ms), "--itl-ms", str(args.itl_ms),
                "--max-concurrent-requests", str(max(4096, 2 * n))]
    with EmulatorProcess(profile="exact", args=emu_args, timeout=120) as emu, \
            tempfile.TemporaryDirectory(prefix="client-capacity-") as tmp:
        if server_cpu is not None:
            os.sched_setaffinity(emu.proc.pid, {server_cpu})
        cfg = {"url": emu.url, "streams": n, "tokens": args.tokens, "request_s": request_s,
               "warmup_s": args.warmup_s, "window_s": args.window_s, "records_dir": tmp, "cpu": client_cpu,
               "stamps": args.stamps}
        proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(cfg)], cwd=str(ROOT),
                                stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        spy = None
        if args.py_spy:
            spy = _start_py_spy(proc.pid, args, request_s)
        out, _ = proc.communicate(timeout=request_s * 2 + args.warmup_s + args.window_s + 180)
        if spy is not None:
            spy.wait(60)
        line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            raise RuntimeError(f"client child failed (rc {proc.returncode}): {out[-2000:]}")
        res = json.loads(line[7:])
        from harness.records.record import read_records

        recs = [r for p in sorted(Path(tmp).glob("records*.jsonl")) for r in read_records(p)]
    return analyse(n, args, request_s, res, recs)


def _start_py_spy(pid: int, args: argparse.Namespace, request_s: float) -> subprocess.Popen:
    """Sample the child during its measured window (after tokenizer load and ramp)."""
    delay = 6.0 + request_s + args.warmup_s  # start-up + ramp + warm-up, roughly
    spy = Path(sys.executable).with_name("py-spy")
    cmd = ["sh", "-c", f"sleep {delay}; exec {spy} record --pid {pid} --duration {int(args.window_s)} "
           f"--rate 250 --nonblocking --format {args.py_spy_format} -o {args.py_spy}"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL)


def analyse(n: int, args: argparse.Namespace, request_s: float, res: dict, recs: list) -> dict:
    from harness.analysis.metrics import percentile

    w0, w1 = res["w0"], res["w1"]
    sent = [r for r in recs if w0 <= r.wall_start < w1]
    done = [r for r in sent if r.ok]
    ttft = [r.token_us[0] / 1000 for r in done if r.token_us]
    gaps = [(b - a) / 1000 for r in done for a, b in zip(r.token_us, r.token_us[1:], strict=False)]
    tokens_in = 0
    for r in recs:  # every token stamped inside the window, whatever its request's fate
        base = r.wall_start
        tokens_in += sum(1 for us in r.token_us if w0 <= base + us / 1e6 < w1)
    window = w1 - w0
    ideal = n * args.tokens / request_s
    lat = res["server"]["lateness_ms"]
    lp50, lp99 = lat["p50"] or 0.0, lat["p99"] or 0.0
    row: dict[str, Any] = {
        "streams": n,
        "requests_sent_in_window": len(sent),
        "requests_ok": len(done),
        "errors": sum(1 for r in sent if not r.ok and r.error_type != "cancelled"),
        "ttft_p50_ms": percentile(ttft, 50), "ttft_p99_ms": percentile(ttft, 99),
        "itl_p50_ms": percentile(gaps, 50), "itl_p99_ms": percentile(gaps, 99),
        "server_lateness_p50_ms": lp50, "server_lateness_p99_ms": lp99,
        "server_lateness_max_ms": lat["max"],
        "throughput_tok_s": tokens_in / window, "ideal_tok_s": ideal,
        "throughput_ratio": tokens_in / window / ideal,
        "client_cpu_percent": res["client"]["cpu_percent"],
        "client_cpu_user_percent": res["client"].get("cpu_user_percent"),
        "client_cpu_system_percent": res["client"].get("cpu_system_percent"),
        "client_gc_pause_max_ms": res["client"].get("gc_pause_max_ms"),
        "client_gc_pause_total_ms": res["client"].get("gc_pause_total_ms"),
        "client_sched_lag_p50_ms": res["client"]["sched_lag_p50_ms"],
        "client_sched_lag_p99_ms": res["client"]["sched_lag_p99_ms"],
        "window_s": window, "ramp_s": res["ramp_end"] - res["ramp_start"],
        "loadavg_1m": os.getloadavg()[0],
        "server_stats": res["server"],
    }
    row["ttft_p50_delta_ms"] = row["ttft_p50_ms"] - (args.ttft_ms + lp50)
    row["ttft_p99_delta_ms"] = row["ttft_p99_ms"] - (args.ttft_ms + lp99)
    row["itl_p50_delta_ms"] = row["itl_p50_ms"] - args.itl_ms
    row["itl_p99_delta_ms"] = row["itl_p99_ms"] - (args.itl_ms + max(0.0, lp99 - lp50))
    row["server_bound"] = lp99 > SERVER_BOUND_P99_MS
    misses = []
    if row["ttft_p50_delta_ms"] > GOAL["ttft_p50_delta_ms"]:
        misses.append("TTFT")
    if row["itl_p99_delta_ms"] > GOAL["itl_p99_delta_ms"]:
        misses.append("ITL")
    if row["throughput_ratio"] < GOAL["throughput_ratio"]:
        misses.append("throughput")
    if (row["client_cpu_percent"] or 0) >= GOAL["cpu_percent"]:
        misses.append("CPU")
    if row["server_bound"]:
        row["verdict"] = "server-bound (not counted)"
    else:
        row["verdict"] = "ok" if not misses else "short: " + ", ".join(misses)
    return row


def markdown(rows: list[dict]) -> str:
    def f(v: Any, d: int = 1) -> str:
        return "n/a" if v is None or v != v else f"{v:.{d}f}"

    lines = [
        "| streams | TTFT p50 / p99 (ms) | Δ p50 / p99 | ITL p50 / p99 (ms) | Δ p50 / p99 "
        "| throughput / ideal | client CPU | client lag p99 (ms) | server lateness p50 / p99 (ms) "
        "| verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['streams']} | {f(r['ttft_p50_ms'])} / {f(r['ttft_p99_ms'])} "
            f"| {f(r['ttft_p50_delta_ms'], 2)} / {f(r['ttft_p99_delta_ms'], 2)} "
            f"| {f(r['itl_p50_ms'], 2)} / {f(r['itl_p99_ms'], 2)} "
            f"| {f(r['itl_p50_delta_ms'], 2)} / {f(r['itl_p99_delta_ms'], 2)} "
            f"| {f(r['throughput_ratio'], 3)} | {f(r['client_cpu_percent'], 0)} % "
            f"| {f(r['client_sched_lag_p99_ms'], 2)} "
            f"| {f(r['server_lateness_p50_ms'], 2)} / {f(r['server_lateness_p99_ms'], 2)} | {r['verdict']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, nargs="+", default=[64, 256, 512, 1024])
    ap.add_argument("--ttft-ms", type=float, default=50.0)
    ap.add_argument("--itl-ms", type=float, default=20.0)
    ap.add_argument("--tokens", type=int, default=200, help="output tokens per request (fixed)")
    ap.add_argument("--warmup-s", type=float, default=4.0, help="after every user runs, before the window")
    ap.add_argument("--window-s", type=float, default=10.0)
    ap.add_argument("--server-cpu", type=int, default=None, help="default: the first allowed CPU")
    ap.add_argument("--client-cpu", type=int, default=None, help="default: the second allowed CPU")
    ap.add_argument("--no-pin", action="store_true", help="do not pin (machines with one CPU)")
    ap.add_argument("--halt-poll-ns", default="keep",
                    help="VM guest halt-poll window for the run, restored after (see bench/machine.py)")
    ap.add_argument("--stamps", default="kernel", choices=["kernel", "recv"],
                    help="the user's token stamps: kernel receive timestamps (default) or read time")
    ap.add_argument("--py-spy", default=None, metavar="FILE", help="profile the client's window with py-spy")
    ap.add_argument("--py-spy-format", default="flamegraph", choices=["flamegraph", "speedscope", "raw"])
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu = client_cpu = None
    if not args.no_pin and len(cpus) >= 2:
        server_cpu = args.server_cpu if args.server_cpu is not None else cpus[0]
        others = [c for c in cpus if c != server_cpu]
        client_cpu = args.client_cpu if args.client_cpu is not None else others[0]
    rows = []
    with machine.halt_poll(args.halt_poll_ns) as halt_poll_ns:
        for n in args.streams:
            row = run_one(n, args, server_cpu, client_cpu)
            rows.append(row)
            print(f"{n} streams: TTFT p50 {row['ttft_p50_ms']:.2f} ms, ITL p99 {row['itl_p99_ms']:.2f} ms, "
                  f"throughput {row['throughput_ratio']:.3f}, CPU {row['client_cpu_percent']:.0f} %, "
                  f"server p99 {row['server_lateness_p99_ms']} ms: {row['verdict']}",
                  file=sys.stderr, flush=True)
    table = markdown(rows)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    conditions = (f"{stamp}, {platform.node()}, {os.cpu_count()} CPUs, server on CPU {server_cpu}, client on "
                  f"CPU {client_cpu}, load avg {os.getloadavg()[0]:.2f}; TTFT {args.ttft_ms:g} ms, ITL "
                  f"{args.itl_ms:g} ms, {args.tokens} tokens, window {args.window_s:g} s; "
                  f"{args.stamps} stamps; guest halt-poll {halt_poll_ns} ns")
    print(f"\n{conditions}\n\n{table}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = out / f"client_capacity-{time.strftime('%Y%m%d-%H%M%S')}"
    meta = {"argv": sys.argv, "args": vars(args), "python": sys.version, "platform": platform.platform(),
            "cpus": cpus, "server_cpu": server_cpu, "client_cpu": client_cpu, "goal": GOAL,
            "server_bound_p99_ms": SERVER_BOUND_P99_MS, "time": stamp, "conditions": conditions,
            "halt_poll_ns": halt_poll_ns}
    base.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    base.with_suffix(".md").write_text(f"{conditions}\n\n{table}\n")
    print(f"\nwritten {base}.json and .md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
