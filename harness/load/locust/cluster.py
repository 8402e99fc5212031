"""One command for a master and N workers: `python -m harness sweep --workers N` (local worker
processes), `--master` (remote workers connect to it) and `--worker --master-host H` (this process
is one of them).

The master is the sweep's own process (harness.load.locust.runner with a MasterRunner): it runs
the step plan, resolves the configuration and hands it to every worker with the spawn messages,
receives their records (harness.load.locust.shipping) and writes the run directory. A worker
needs nothing but the master's address: `python -m harness sweep --worker --master-host H`
builds a Locust WorkerRunner with the suite's user class and runs until the master says quit.
Local workers are child processes of the master, stopped (terminate, then kill) at the end
whatever happened.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from typing import Any

import gevent

from harness.config.model import RunConfig
from harness.targets.emulator_process import child_setup

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def start_local_workers(n: int, port: int) -> list[subprocess.Popen]:
    """N `python -m harness sweep --worker` children connecting to 127.0.0.1:port.

    Each in its own session, like the emulator: a Ctrl-C at the terminal reaches only the master,
    which stops the workers' users first (their last records still reach it) and then tells them
    to quit; SIGINT at its default in them (ours may be ignored), SIGTERM if the master dies."""
    cmd = [sys.executable, "-m", "harness", "sweep", "--worker", "--master-host", "127.0.0.1",
           "--master-port", str(port)]
    return [subprocess.Popen(cmd, preexec_fn=child_setup, start_new_session=True)  # noqa: PLW1509
            for _ in range(n)]


def stop_workers(procs: list[subprocess.Popen], grace_s: float = 10.0) -> list[int | None]:
    """Wait for the workers to leave by themselves (the master told them to quit), then end them."""
    deadline = time.monotonic() + grace_s
    for p in procs:
        while p.poll() is None and time.monotonic() < deadline:
            gevent.sleep(0.1)
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    return [p.returncode for p in procs]


def wait_for_workers(runner: Any, n: int, timeout_s: float, procs: list[subprocess.Popen]) -> None:
    """Until n workers reported ready; RuntimeError after timeout_s or when a local worker died."""
    deadline = time.monotonic() + timeout_s
    shown = -1
    while True:
        ready = len(runner.clients.ready)
        if ready >= n:
            return
        if ready != shown:
            print(f"waiting for workers: {ready}/{n} connected", flush=True)
            shown = ready
        dead = [p.returncode for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"a local worker exited before the run started (exit code {dead[0]})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {ready} of {n} workers connected within {timeout_s:.0f} s")
        gevent.sleep(0.2)


def run_worker(cfg: RunConfig) -> int:
    """This process as one worker of the master at cfg.distributed.master_host:master_port."""
    from locust import events
    from locust.argument_parser import get_parser
    from locust.env import Environment
    from locust.log import setup_logging

    from harness.load.locust.listeners import register
    from harness.load.locust.users import shared, user_class

    register(events)
    shared.local_dir = cfg.output.records_dir  # its own: the local copy (worker_records local/both)
    d = cfg.distributed
    opts = get_parser(default_config_files=[]).parse_args(["--headless", "--loglevel", "WARNING"])
    setup_logging(opts.loglevel)
    env = Environment(user_classes=[user_class(None)], events=events, parsed_options=opts)
    print(f"worker: connecting to {d.master_host}:{d.master_port}", flush=True)
    try:
        runner = env.create_worker_runner(d.master_host, d.master_port)
    except ConnectionError:
        print(f"error: no master at {d.master_host}:{d.master_port}", file=sys.stderr)
        return 1
    events.init.fire(environment=env, runner=runner, web_ui=None)
    hub = gevent.get_hub()  # SIGTERM (the master gone: PR_SET_PDEATHSIG) is handled below, not printed
    hub.NOT_ERROR = (*hub.NOT_ERROR, KeyboardInterrupt)
    try:
        runner.greenlet.join()
    except KeyboardInterrupt:
        runner.quit()
    finally:
        events.quitting.fire(environment=env, reverse=True)
        shared.close()
    return 0
