"""`python -m harness ui`: Locust's web UI on 127.0.0.1:8089 with the step sweep and a fixed-users shape.

Runs `locust -f locustfiles/sweep.py --class-picker` in a subprocess against the configuration's
url, or against an emulator it starts (and stops) itself. The subprocess reads the same
configuration (HARNESS_SCENARIO and the same flags); each test's records, run log and report go
to results/<UTC time>-<name>/ (made when the test starts), so `python -m harness report DIR` works
on it. With `--workers N` the Locust process is a master and N local `locust --worker` processes
send it their load and their records (harness.load.locust.shipping); all are stopped at the end.
Bound off loopback (`--web-host 0.0.0.0`) it needs HARNESS_WEB_AUTH=USER:PASSWORD in the
environment: every request then needs those credentials (basic auth, harness.load.webaccess).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from harness import exitcodes
from harness.config.layers import ConfigError, find_scenario, load_config
from harness.config.settings import ROLE_SETTINGS, add_arguments, by_name, from_namespace
from harness.load.webaccess import AUTH_ENV, credentials, is_loopback
from harness.targets.emulator_process import child_setup

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "locustfiles" / "sweep.py"


def web_host_problem(host: str, locust_args: list[str],
                     environ: Mapping[str, str] | None = None) -> str | None:
    """Why the UI must not bind there (None: it may). The UI starts load against a server and shows
    the configuration: off loopback it needs a login, basic auth from HARNESS_WEB_AUTH
    (harness.load.webaccess; checked in the Locust process by harness.load.locust.webauth)."""
    environ = os.environ if environ is None else environ
    hosts = [host] + [b for a, b in zip(locust_args, locust_args[1:], strict=False) if a == "--web-host"]
    hosts += [a.split("=", 1)[1] for a in locust_args if a.startswith("--web-host=")]
    try:
        login = credentials(environ) is not None
    except ValueError as exc:
        return str(exc)
    for h in hosts:
        if not is_loopback(h) and not login:
            return (f"--web-host {h}: off loopback the web UI needs a login: set {AUTH_ENV}=USER:PASSWORD "
                    f"in the environment (basic auth; never on the command line), or bind 127.0.0.1 and "
                    f"use an SSH tunnel (ssh -L 8089:127.0.0.1:8089 HOST)")
    return None


class _InterruptedAgain(BaseException):
    """A second Ctrl-C (or SIGTERM) while Locust stops: stop waiting for it."""


def _again(signum: int, frame: object) -> None:
    raise _InterruptedAgain


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness ui", description=__doc__.splitlines()[0],
                                 epilog=exitcodes.EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default=os.environ.get("HARNESS_SCENARIO") or "default")
    ap.add_argument("--web-port", type=int, default=8089)
    ap.add_argument("--web-host", default="127.0.0.1",
                    help=f"address the web UI binds to (default loopback); any other needs {AUTH_ENV}="
                         "USER:PASSWORD in the environment: basic auth on every request")
    add_arguments(ap)
    ap.add_argument("locust_args", nargs=argparse.REMAINDER, help="after --: passed to locust")
    args = ap.parse_args(argv)
    problem = web_host_problem(args.web_host, args.locust_args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    path = find_scenario(args.scenario)
    given = from_namespace(args)
    try:
        cfg = load_config(path, cli=given)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    terminated = []

    def interrupt(signum: int, frame: object) -> None:
        terminated.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # stop the emulator and Locust on `kill` too
    # Each test of the UI gets its own results/<UTC time>-<name>/ (made when the test starts), unless
    # records_dir names one directory for all of them.
    records = cfg.output.records_dir or str(Path(cfg.output.results_dir) / f"<UTC time>-{cfg.name}")
    emulator = None
    try:
        url = cfg.target.url
        if not url:
            from harness.targets.emulator_process import EmulatorProcess

            t = cfg.target
            print(f"starting the emulator ({t.emulator_profile}) ...", flush=True)
            starting = EmulatorProcess(profile=t.emulator_profile, args=shlex.split(t.emulator_args))
            try:
                emulator = starting.start()
            except RuntimeError as exc:
                print(f"error: the emulator did not start: {' '.join(str(exc).split())[:300]}",
                      file=sys.stderr)
                bad_args = starting.proc is not None and starting.proc.returncode == 2  # argparse
                return exitcodes.BAD_INPUT if bad_args else exitcodes.TARGET_UNUSABLE
            url = emulator.url
        # The same settings reach the locustfile as the variables it reads (one name in all layers).
        table = by_name()
        env = {**os.environ, "HARNESS_SCENARIO": str(path), "TOKENIZERS_PARALLELISM": "false"}
        if cfg.output.records_dir:
            env[table["records_dir"].env] = cfg.output.records_dir
        for name, value in given.items():
            if name in ("url", "records_dir", *ROLE_SETTINGS):
                continue
            s = table[name]
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, list):
                value = ("\n" if name == "headers" else ",").join(map(str, value))
            elif isinstance(value, dict):
                value = ",".join(f"{k}={v}" for k, v in value.items())
            env[s.env] = str(value)
        extra = [a for a in args.locust_args if a != "--"]
        cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--class-picker",
               "--web-host", args.web_host, "--web-port", str(args.web_port), "--host", url,
               "--loglevel", "INFO", *extra]
        n = cfg.distributed.workers
        workers: list[subprocess.Popen] = []
        if n:
            port = free_port()
            cmd += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port)]
        login = f"; basic auth from ${AUTH_ENV}" if credentials(os.environ) else ""
        print(f"web UI: http://{args.web_host}:{args.web_port}  (target {url}; each test's records and "
              f"report in {records}" + (f"; {n} workers" if n else "") + login + ")", flush=True)
        # Locust in its own session: a Ctrl-C at the terminal reaches only this process, which
        # tells Locust exactly once (SIGTERM: stop the test, write its report; a second Ctrl-C:
        # SIGINT, exit at once) — the terminal's SIGINT and our SIGTERM racing in Locust would end
        # it before its report. SIGINT at its default even when ours is ignored (a background
        # shell); SIGTERM when this process dies.
        proc = subprocess.Popen(cmd, env=env, cwd=str(ROOT), preexec_fn=child_setup, start_new_session=True)
        if n:
            worker = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker", "--master-host",
                      "127.0.0.1", "--master-port", str(port), "--loglevel", "WARNING"]
            # own sessions: a Ctrl-C reaches the master, which stops their users and then them
            workers = [subprocess.Popen(worker, env=env, cwd=str(ROOT), preexec_fn=child_setup,
                                        start_new_session=True) for _ in range(n)]
        try:
            return proc.wait()
        except KeyboardInterrupt:
            # First Ctrl-C (or SIGTERM): Locust stops its test gracefully (users first, report
            # written); a second one makes it exit at once, its records written as whole lines
            # (harness.load.locust.interrupts.arm), and this process with it.
            signal.signal(signal.SIGINT, _again)
            signal.signal(signal.SIGTERM, _again)
            try:
                proc.terminate()
                proc.wait(30)
            except _InterruptedAgain:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
                print("interrupted again: exiting now", file=sys.stderr, flush=True)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            finally:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the children are being stopped
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            return exitcodes.TERMINATED if terminated else exitcodes.INTERRUPTED
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                try:
                    w.wait(10)
                except subprocess.TimeoutExpired:
                    w.kill()
    finally:
        if emulator is not None:
            emulator.stop()
