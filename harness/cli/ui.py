"""`python -m harness ui`: Locust's web UI on 127.0.0.1 with the step sweep and a fixed-users shape.

Runs `locust -f locustfiles/sweep.py --class-picker` in a subprocess against `--url`, or against an
emulator it starts (and stops) itself. Records go to results/ui-<time>/ exactly as in headless
runs; steps.json is written when a test stops, so `python -m harness report DIR` works on it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from harness.config.scenario import ScenarioError, find_scenario, load_scenario, locust_args

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "locustfiles" / "sweep.py"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness ui", description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "default.toml"))
    ap.add_argument("--url", default=None, help="a running server (default: start the emulator)")
    ap.add_argument("--emulator-profile", default=None, help="default: the scenario's")
    ap.add_argument("--emulator-args", default="", help="extra emulator flags")
    ap.add_argument("--web-port", type=int, default=8089)
    ap.add_argument("--results-dir", default="results")
    ap.add_argument("locust_args", nargs=argparse.REMAINDER, help="after --: passed to locust")
    args = ap.parse_args(argv)
    try:
        path = find_scenario(args.scenario)
        sc = load_scenario(path)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # stop the emulator and Locust on `kill` too
    records = Path(args.results_dir) / ("ui-" + dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ"))
    emulator = None
    try:
        url = args.url
        if not url:
            from harness.targets.emulator_process import EmulatorProcess

            profile = args.emulator_profile or sc.server.emulator_profile
            print(f"starting the emulator ({profile}) ...", flush=True)
            emulator = EmulatorProcess(profile=profile, args=shlex.split(args.emulator_args)).start()
            url = emulator.url
        extra = [a for a in args.locust_args if a != "--"]
        cmd = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--class-picker",
            "--web-host",
            "127.0.0.1",
            "--web-port",
            str(args.web_port),
            *locust_args(sc, url, records, headless=False),
            "--loglevel",
            "INFO",
            *extra,
        ]
        env = {**os.environ, "HARNESS_SCENARIO": str(path), "TOKENIZERS_PARALLELISM": "false"}
        print(f"web UI: http://127.0.0.1:{args.web_port}  (target {url}; records in {records})", flush=True)
        proc = subprocess.Popen(cmd, env=env, cwd=str(ROOT))
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait(30)
            return 130
    finally:
        if emulator is not None:
            emulator.stop()
