"""The client's TTFT tail against an exact-timing server, through the real sweep (issue #12).

Not a test. bench/client_capacity.py measures capacity with Locust as a library and a staggered
start; this one runs `python -m harness sweep` itself — progress line, Locust's CSV writer and
stats history, the record writer, the client monitor all running — pinned to one core
(sched_setaffinity, as taskset), against the emulator's `exact` profile (TTFT 50 ms, ITL 20 ms)
pinned to the other, one fresh emulator per row. Rows: 64/256/1024 streams, all users started
together (`--spawn-rate` = users, as a shipped scenario does) and staggered over one request's
duration; `--runs 3` repeats each row (alternating, so a noisy minute hits every kind).

Requests are streamed completions sent with `X-Emulator-Stamps: 1`: the emulator's last chunk says
when it took the request and when it wrote the first token, on the machine's monotonic clock (the
client's perf_counter), so every request has its own truth. Per row, from the records sent before
the cool-down (ramp, warm-up and window: first requests included):

- Δ first token = the client's stamp − the server's write, p50/p99/p99.9, and its p99 for the
  first request of each connection (`reused` false: connect and first send) and the later ones;
- send → server took it (t_send to the emulator's arrival: the client's send plus the server's
  intake) and the server's own first-token lateness after that (theirs, not the client's);
- the pooled Δ TTFT of bench/client_capacity.py (TTFT − nominal − the server's lateness at the
  same percentile, every token event pooled), for comparison;
- how many requests were more than 1 ms late, and of those how many had their first event read
  together with the second (equal stamps: a read late by more than the gap between them gets one
  stamp, the kernel's for the last segment, so the first token is stamped when the second came).

`--watch` installs harness.load.locust.hubwatch in the sweep: which greenlet (or GC pass) ran
longer than 1 ms of CPU (or 5 ms of wall time), and the share of the tail requests (Δ > 1 ms) and
of the others that had one of those runs between their send and their first-token stamp.
`--baseline /work/main` runs every row with another checkout's harness too, alternating (A/B).

    .venv/bin/python bench/client_tail.py                        # 64/256/1024, both starts, 1 run
    .venv/bin/python bench/client_tail.py --runs 3 --watch       # the issue's three runs
    make perf ARGS="--suite client-tail"

Writes bench/out/client_tail-<time>.{json,md} and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import machine

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))
GOAL_P99_MS = {64: 1.0, 256: 1.0, 1024: 2.0}  # issue #12: TTFT p99 − delivered, all starting together
TAIL_MS = 1.0  # a request whose TTFT error is above this is "in the tail" for the cause join


def sweep_child(cfg: dict[str, Any]) -> None:
    """The sweep, in this (pinned) process; with --watch, the hub watch around it."""
    import locust  # noqa: F401 - gevent's monkey-patching first, as `python -m harness` does

    from harness.cli import sweep

    if cfg.get("gc_gen0"):  # an experiment: the listeners' gc.set_threshold gets this gen-0 threshold
        import gc

        set_threshold = gc.set_threshold
        gc.set_threshold = lambda _gen0, *rest: set_threshold(cfg["gc_gen0"], *rest)
    watch = None
    if cfg["watch"]:  # this checkout's watch, whichever harness the sweep runs (--baseline)
        import importlib.util

        spec = importlib.util.spec_from_file_location(
            "hubwatch", ROOT / "harness" / "load" / "locust" / "hubwatch.py")
        mod = sys.modules["hubwatch"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        watch = mod.HubWatch().install()
    rc = 0
    try:
        rc = sweep.main(cfg["argv"])
    finally:
        if watch is not None:
            watch.uninstall()
            Path(cfg["watch_out"]).write_text(json.dumps({"summary": watch.summary(),
                                                          "long_runs": watch.long_runs}))
    sys.exit(rc)


def run_one(n: int, start: str, args: argparse.Namespace, server_cpu: int | None, client_cpu: int | None,
            code: Path = ROOT, gc_gen0: int | None = None) -> dict:
    from harness.records.record import read_records
    from harness.targets.emulator_process import EmulatorProcess

    request_s = args.ttft_ms / 1000 + (args.tokens - 1) * args.itl_ms / 1000
    emu_args = ["--ttft-ms", str(args.ttft_ms), "--itl-ms", str(args.itl_ms),
                "--max-concurrent-requests", str(max(4096, 2 * n))]
    spawn = n if start == "together" else max(n / request_s, 1.0)
    with EmulatorProcess(profile="exact", args=emu_args, timeout=120) as emu, \
            tempfile.TemporaryDirectory(prefix="client-tail-") as tmp:
        if server_cpu is not None:
            os.sched_setaffinity(emu.proc.pid, {server_cpu})
        run_dir = Path(tmp) / "run"
        argv = ["--url", emu.url, "--records-dir", str(run_dir), "--steps", str(n),
                "--spawn-rate", f"{spawn:g}", "--warmup-min-s", str(args.warmup_s),
                "--warmup-max-s", str(args.warmup_s), "--measure-min-s", str(args.window_s),
                "--measure-max-s", str(args.window_s), "--input-mean", "20", "--input-stddev", "0",
                "--input-min", "5", "--output-mean", str(args.tokens), "--output-stddev", "0",
                "--prompt-pool-size", "64", "--timeout-s", "60", "--stamps", args.stamps,
                "--api", "completions", "--headers", "X-Emulator-Stamps: 1",
                "--progress-every-s", "1", "--scrape-every-s", "0", "--no-plots"]  # fmt: skip
        cfg = {"argv": argv, "watch": args.watch, "watch_out": str(Path(tmp) / "watch.json"),
               "gc_gen0": gc_gen0}
        pin = (lambda: os.sched_setaffinity(0, {client_cpu})) if client_cpu is not None else None
        proc = subprocess.run([sys.executable, __file__, "--sweep-child", json.dumps(cfg)], cwd=str(ROOT),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=pin,
                              env={**os.environ, "PYTHONPATH": str(code)},
                              timeout=args.warmup_s + args.window_s + 3 * request_s + 240)
        stats = json.loads(urllib_get(emu.url + "/emulator/stats"))
        recs = [r for p in sorted(run_dir.glob("records*.jsonl")) for r in read_records(p)]
        steps = json.loads((run_dir / "steps.json").read_text()) if (run_dir / "steps.json").exists() else []
        watched = Path(tmp) / "watch.json"
        if args.watch and not watched.exists():
            raise RuntimeError(f"sweep child failed (rc {proc.returncode}): {proc.stdout[-3000:]}")
        watch = json.loads(watched.read_text()) if args.watch else None
        if args.keep:  # the run directory (records, steps, the hub watch) for a closer look
            keep = Path(args.keep) / f"{code.name}-{n}-{start}-{gc_gen0 or 'gc'}-{time.strftime('%H%M%S')}"
            shutil.copytree(tmp, keep)
            print(f"kept {keep}", file=sys.stderr)
    if not recs:
        raise RuntimeError(f"sweep wrote no records (rc {proc.returncode}): {proc.stdout[-2000:]}")
    return analyse(n, start, args, recs, stats, steps, watch, proc.returncode)


def urllib_get(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read()


def analyse(n: int, start: str, args: argparse.Namespace, recs: list, stats: dict, steps: list,
            watch: dict | None, rc: int) -> dict:
    from harness.analysis.metrics import percentile

    done = [r for r in recs if r.ok and r.token_us and r.phase != "cooldown"]
    exact = [r for r in done if "emulator_first_token_s" in (r.server_timings or {})]
    lat = stats["lateness_ms"]
    late = {50: lat["p50"] or 0.0, 99: lat["p99"] or 0.0, 99.9: lat["p999"] or 0.0}
    nominal = args.ttft_ms

    def pct(values: list[float]) -> dict[str, float]:
        return {f"p{q:g}": percentile(values, q) for q in late} | {"n": len(values)}

    def pooled(rs: list) -> dict[str, float]:  # TTFT − (nominal + the server's pooled lateness)
        ttft = [r.token_us[0] / 1000 for r in rs]
        return {f"p{q:g}": percentile(ttft, q) - (nominal + late[q]) for q in late} | {"n": len(rs)}

    # The head is written on receipt, the first event `nominal` later. A read that took both gets
    # one stamp (the kernel's is the last segment's): then headers_us is the first event's time.
    # Those requests show that the client read late; their TTFT stays right.
    together = sum(1 for r in done
                   if r.headers_us is not None and r.token_us[0] - r.headers_us < nominal * 500)
    row: dict[str, Any] = {
        "streams": n, "start": start, "exit_code": rc, "requests": len(done),
        "errors": sum(1 for r in recs if not r.ok and r.error_type != "cancelled"),
        # per request, the truth: the client's first-token stamp − the server's write of it
        "delta": pct([_err_ms(r) for r in exact]),
        "delta_first": pct([_err_ms(r) for r in exact if r.reused is False]),
        "delta_later": pct([_err_ms(r) for r in exact if r.reused]),
        # t_send → the server took the request (client send + server intake), and the server's own
        # first-token lateness after that
        "send_ms": pct([(r.server_timings["emulator_received_s"] - r.t_send) * 1000 for r in exact]),
        "server_ms": pct([(r.server_timings["emulator_first_token_s"]
                           - r.server_timings["emulator_received_s"]) * 1000 - nominal for r in exact]),
        "pooled": pooled(done),
        "head_with_first_event": together,
        # read late: the first event shared its read (one stamp, the last segment's) with the next
        "first_merged": sum(1 for r in exact if len(r.token_us) > 1 and r.token_us[0] == r.token_us[1]),
        "tail_merged": sum(1 for r in exact if _err_ms(r) > TAIL_MS
                           and len(r.token_us) > 1 and r.token_us[0] == r.token_us[1]),
        "tail": sum(1 for r in exact if _err_ms(r) > TAIL_MS),
        "connect_ms_p99": percentile([r.connect_s * 1000 for r in done if r.reused is False
                                      and r.connect_s is not None], 99),
        "server_lateness_ms": lat, "loadavg_1m": os.getloadavg()[0],
    }
    client = (steps[0].get("client") or {}) if steps else {}
    row["client_cpu_percent"] = client.get("cpu_percent")
    row["client_lag_p99_ms"] = client.get("sched_lag_p99_ms")
    if watch is not None:
        row["watch"] = _join(watch, exact)
    goal = GOAL_P99_MS.get(n)
    if not exact:
        row["verdict"] = "no per-request truth"
    elif goal is None or start != "together":
        row["verdict"] = "-"
    else:
        row["verdict"] = "ok" if row["delta"]["p99"] <= goal else f"p99 > {goal:g} ms"
    return row


def _err_ms(r: Any) -> float:
    """The client's first-token stamp minus the server's write of that token (same monotonic clock)."""
    return (r.t_send + r.token_us[0] / 1e6 - r.server_timings["emulator_first_token_s"]) * 1000


def _join(watch: dict, exact: list) -> dict:
    """The watch's runs longer than 1 ms of CPU against the requests' TTFT intervals (send →
    first-token stamp): a cause hits the tail more often than the rest."""
    runs = [(t, label, cpu, wall) for t, label, cpu, wall in watch["long_runs"] if cpu > 0.001]
    tail = [r for r in exact if _err_ms(r) > TAIL_MS]
    rest = [r for r in exact if _err_ms(r) <= TAIL_MS]

    def share(rs: list) -> dict[str, float]:
        hit: dict[str, int] = {}
        for r in rs:
            t0 = r.t_send
            t1 = r.t_send + r.token_us[0] / 1e6
            for label in {label for t, label, _cpu, wall in runs if t < t1 and t + wall > t0}:
                hit[label] = hit.get(label, 0) + 1
        return {k: round(v / len(rs), 3) for k, v in hit.items()} if rs else {}

    top = {k: v for k, v in list(watch["summary"].items())[:8]}
    t0 = min((r.t_send for r in exact), default=0.0)  # the runs' times from the first request's send
    when = [(round(t - t0, 3), label, round(cpu * 1000, 2), round(wall * 1000, 2))
            for t, label, cpu, wall in runs if label != "hub"]  # the hub's wall time is mostly idle
    gc_passes = {k: {"passes": v["runs"], "max_cpu_ms": round(v["max_cpu_ms"], 2),
                     "cpu_ms": round(v["cpu_ms"], 1)}
                 for k, v in watch["summary"].items() if k.startswith("gc")}
    return {"gc": gc_passes, "tail_requests": len(tail), "tail_with_long_run": share(tail),
            "rest_with_long_run": share(rest),
            "top": top, "long_runs": when}


def markdown(rows: list[dict]) -> str:
    def f(v: Any, d: int = 2) -> str:
        return "n/a" if v is None or v != v else f"{v:.{d}f}"

    def three(d: dict) -> str:
        return f"{f(d['p50'])} / {f(d['p99'])} / {f(d['p99.9'])}"

    lines = [
        "| code | streams | start | requests | Δ first token p50 / p99 / p99.9 (ms) "
        "| Δ p99: first of connection (n) / later | send → server took it p50 / p99 (ms) "
        "| server's own TTFT lateness p99 (ms) | pooled Δ TTFT p50 / p99 | Δ > 1 ms (first token read "
        "with the next) | client CPU / lag p99 (ms) | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        fi, la = r["delta_first"], r["delta_later"]
        lines.append(
            f"| {r.get('code', 'this')} | {r['streams']} | {r['start']} | {r['requests']} "
            f"| {three(r['delta'])} | {f(fi['p99'])} ({fi['n']}) / {f(la['p99'])} "
            f"| {f(r['send_ms']['p50'])} / {f(r['send_ms']['p99'])} | {f(r['server_ms']['p99'])} "
            f"| {f(r['pooled']['p50'])} / {f(r['pooled']['p99'])} | {r['tail']} ({r['tail_merged']}) "
            f"| {f(r['client_cpu_percent'], 0)} % / {f(r['client_lag_p99_ms'], 1)} "
            f"| {r['verdict']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, nargs="+", default=[64, 256, 1024])
    ap.add_argument("--start", nargs="+", default=["together", "staggered"],
                    choices=["together", "staggered"])
    ap.add_argument("--runs", type=int, default=1, help="repeat every row (rows alternate)")
    ap.add_argument("--ttft-ms", type=float, default=50.0)
    ap.add_argument("--itl-ms", type=float, default=20.0)
    ap.add_argument("--tokens", type=int, default=50, help="output tokens per request (fixed)")
    ap.add_argument("--warmup-s", type=float, default=2.0)
    ap.add_argument("--window-s", type=float, default=8.0)
    ap.add_argument("--stamps", default="kernel", choices=["kernel", "recv"])
    ap.add_argument("--baseline", default=None, metavar="CHECKOUT",
                    help="A/B: run every row also with the harness of this checkout (e.g. /work/main), "
                         "alternating which goes first")
    ap.add_argument("--gc-gen0", type=int, nargs="+", default=None, metavar="N",
                    help="experiment: run every row with each of these gen-0 GC thresholds (the harness "
                         "sets max(default, 20000))")
    ap.add_argument("--watch", action="store_true", help="trace greenlet runs and GC (harness hubwatch)")
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--halt-poll-ns", default="keep", help="see bench/machine.py")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--keep", metavar="DIR", help="copy each row's run directory (records, hub watch) here")
    ap.add_argument("--sweep-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.sweep_child:
        sweep_child(json.loads(args.sweep_child))
        return 0
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu = client_cpu = None
    if not args.no_pin and len(cpus) >= 2:
        server_cpu, client_cpu = cpus[0], cpus[1]
    rows = []
    codes = [("this", ROOT, None)] + ([("baseline", Path(args.baseline), None)] if args.baseline else [])
    if args.gc_gen0:  # each code with each gen-0 threshold
        codes = [(f"{name} gc0={g}", code, g) for name, code, _ in codes for g in args.gc_gen0]
    jobs = []  # every row of a run, each code in turn, the order of the codes alternating
    for run in range(args.runs):
        for n in args.streams:
            for start in args.start:
                order = codes if len(jobs) // len(codes) % 2 == 0 else codes[::-1]
                jobs += [(run, n, start, name, code, g) for name, code, g in order]
    with machine.halt_poll(args.halt_poll_ns) as halt_poll_ns:
        for run, n, start, name, code, g in jobs:
            row = run_one(n, start, args, server_cpu, client_cpu, code, g)
            row["run"], row["code"] = run + 1, name
            rows.append(row)
            a = row["delta"]
            print(f"[{name}] run {run + 1}, {n} streams, {start}: Δ TTFT p50 {a['p50']:.2f} "
                  f"p99 {a['p99']:.2f} p99.9 {a['p99.9']:.2f} ms ({a['n']} requests); {row['verdict']}"
                  + (f"; GC {json.dumps(row['watch']['gc'])}; tail with a long run "
                     f"{json.dumps(row['watch']['tail_with_long_run'])}, others "
                     f"{json.dumps(row['watch']['rest_with_long_run'])}" if "watch" in row else ""),
                  file=sys.stderr, flush=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    conditions = (f"{stamp}, {platform.node()}, {os.cpu_count()} CPUs, server on CPU {server_cpu}, sweep on "
                  f"CPU {client_cpu}, load avg {os.getloadavg()[0]:.2f}; TTFT {args.ttft_ms:g} ms, ITL "
                  f"{args.itl_ms:g} ms, {args.tokens} tokens, warm-up {args.warmup_s:g} s, window "
                  f"{args.window_s:g} s, {args.runs} run(s); {args.stamps} stamps; guest halt-poll "
                  f"{halt_poll_ns} ns{'; hub watch on' if args.watch else ''}")
    table = markdown(rows)
    print(f"\n{conditions}\n\n{table}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = out / f"client_tail-{time.strftime('%Y%m%d-%H%M%S')}"
    base.with_suffix(".json").write_text(json.dumps({"conditions": conditions, "args": vars(args),
                                                     "rows": rows}, indent=1))
    base.with_suffix(".md").write_text(f"{conditions}\n\n{table}\n")
    print(f"\nwritten {base}.json and .md", file=sys.stderr)
    bad = [r for r in rows if r["exit_code"] not in (0, 1, 3)]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
