"""Can ONE client core keep an open-loop schedule? Offered vs achieved rate and schedule lag.

Not a test. The emulator's `exact` profile (TTFT 10 ms, ITL 5 ms, 2 output tokens: short requests,
so the client's cost per request dominates) runs pinned to one core; `python -m harness sweep` runs
pinned to another with one open-loop step per rate (`--rates`, constant arrivals by default), each
a window of `--window-s` seconds. From each step's summary row: the nominal rate, the offered and
achieved rates (harness.analysis.openloop), the schedule lag p50/p99 (actual − intended send), the
client's CPU and the client-bound flag (achieved ÷ offered < 0.99 or lag p99 > 5 ms).

    .venv/bin/python bench/open_loop_pacing.py                      # 100, 500, 2000 req/s
    .venv/bin/python bench/open_loop_pacing.py --rates 100 1000 --arrival poisson

Writes bench/out/open_loop_pacing-<time>.{json,md} and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import machine

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"

SCENARIO = """\
name = "pacing"

[workload]
input_mean = 20
input_stddev = 0
output_mean = 2
output_stddev = 0
prompt_pool_size = 200

[steps]
users = [{steps}]
warmup = {{ min_s = 1, max_s = 1 }}
measure = {{ min_s = {window}, max_s = {window} }}

[request]
timeout_s = 30

[flags]
min_samples = 1
"""


def _pin(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None else []


def run(rates: list[float], arrival: str, window_s: float, server_cpu: int | None,
        client_cpu: int | None) -> list[dict[str, Any]]:  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        steps = ", ".join(f'{{ rate = {r:g}, arrival = "{arrival}" }}' for r in rates)
        scenario = Path(tmp) / "pacing.toml"
        scenario.write_text(SCENARIO.format(steps=steps, window=window_s))
        port = 18000 + os.getpid() % 1000
        emulator = subprocess.Popen(
            [*_pin(server_cpu), sys.executable, "-m", "harness", "emulate", "--profile", "exact",
             "--ttft-ms", "10", "--itl-ms", "5", "--port", str(port)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(3)
            proc = subprocess.run(
                [*_pin(client_cpu), sys.executable, "-m", "harness", "sweep", "--scenario", str(scenario),
                 "--url", f"http://127.0.0.1:{port}", "--results-dir", tmp, "--run-id", "r", "--quiet",
                 "--no-plots"],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
            )
        finally:
            emulator.terminate()
            emulator.wait(10)
        if proc.returncode != 0:
            raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
        rows = list(csv.DictReader(open(Path(tmp) / "r" / "summary.csv")))
    out = []
    for row in rows:
        out.append({
            "rate": float(row["rate"]),
            "offered_rps": float(row["offered_rps"]),
            "achieved_rps": float(row["achieved_rps"]),
            "lag_p50_ms": float(row["lag_p50_s"]) * 1000,
            "lag_p99_ms": float(row["lag_p99_s"]) * 1000,
            "client_cpu_percent": float(row["client_cpu_percent"] or "nan"),
            "sent": int(row["sent"]),
            "failed": int(row["failed"]),
            "client_bound": "client-bound" in row["flags"],
        })
    return out


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| rate (req/s) | offered | achieved | achieved ÷ offered | lag p50 (ms) | lag p99 (ms) "
             "| client CPU (%) | requests | client-bound |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = r["achieved_rps"] / r["offered_rps"] if r["offered_rps"] else float("nan")
        lines.append(
            f"| {r['rate']:g} | {r['offered_rps']:.1f} | {r['achieved_rps']:.1f} | {ratio:.3f} "
            f"| {r['lag_p50_ms']:.2f} | {r['lag_p99_ms']:.2f} | {r['client_cpu_percent']:.0f} "
            f"| {r['sent']} | {'yes' if r['client_bound'] else 'no'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", type=float, nargs="+", default=[100.0, 500.0, 2000.0])
    ap.add_argument("--arrival", choices=["constant", "poisson", "gamma"], default="constant")
    ap.add_argument("--window-s", type=float, default=5.0)
    ap.add_argument("--server-cpu", type=int, default=1, help="core of the emulator (-1: not pinned)")
    ap.add_argument("--client-cpu", type=int, default=0, help="core of the client (-1: not pinned)")
    ap.add_argument("--halt-poll-ns", default="keep", help="see bench/machine.py")
    args, _ = ap.parse_known_args(argv)
    pin = lambda c: None if c < 0 else c  # noqa: E731
    with machine.halt_poll(args.halt_poll_ns) as halt:
        rows = run(args.rates, args.arrival, args.window_s, pin(args.server_cpu), pin(args.client_cpu))
    md = table(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    meta = {"arrival": args.arrival, "window_s": args.window_s, "halt_poll_ns": halt,
            "cpu_count": os.cpu_count(), "rows": rows}
    (OUT / f"open_loop_pacing-{stamp}.json").write_text(json.dumps(meta, indent=1) + "\n")
    (OUT / f"open_loop_pacing-{stamp}.md").write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
