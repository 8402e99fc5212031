"""`python -m harness sweep`: run a scenario's steps with Locust as a library and write results/<run-id>/.

Target: `--url URL` (a running server), `--server NAME` (a container from harness.targets.container), or by
default the emulator in a subprocess (`server.emulator_profile`, ephemeral port), stopped at the end.

The Locust rim of the sweep: `PlanShape` adapts the pure `harness.load.plan.SweepPlan` to Locust's
LoadTestShape, tags records through `harness.load.runstate` (and broadcasts the tag to workers in
master/worker mode), and keeps each phase's wall-clock span and the client's CPU for steps.json.

Step rule with the scenario's `[steps] restart = true` (`--restart-users`): at each step boundary
the shape first returns 0 users, so the runner (or, distributed, every worker) kills all users of
the previous step — their in-flight requests end as "cancelled" records that count in no step —
and at its next poll (~1 s later, once the runner reports no users) returns the step's N users at
a spawn rate of at least N, so all N start together and send their first requests at once. Those
first requests are tagged "warmup" (not "ramp"), so they count in distributed runs too, where
workers start sending before the master hears that spawning is complete.
Everything after the run — summary.md/csv, parquet, report.html — is `harness.report.build` on the files.
"""

from __future__ import annotations

# isort: off
import locust  # noqa: F401 - first: gevent monkey-patches sockets before anything else imports them
# isort: on

import argparse
import datetime as dt
import json
import logging
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any

import gevent
from locust import LoadTestShape
from locust.runners import MasterRunner, WorkerRunner

import harness
from harness.client.transport import stamp_source
from harness.config.scenario import (
    OVERRIDES,
    Scenario,
    ScenarioError,
    add_override_arguments,
    find_scenario,
    load_scenario,
    locust_args,
)
from harness.load import runstate
from harness.load.health import HEALTH_EVERY_S, HEALTH_KEY, ClientMonitor, WorkerHealth, summarize
from harness.load.plan import SweepPlan, fixed_plan

STEP_MESSAGE = "harness_step"
log = logging.getLogger(__name__)
WORKERS_SPAWN_MAX_S = 60.0  # a ramp waiting for workers to report their users ends anyway after this
DEFAULT_SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "default.toml"


# --- Locust shapes ------------------------------------------------------------------------------


class PlanShape(LoadTestShape):
    """A LoadTestShape driven by a SweepPlan; subclasses say how to build the plan."""

    abstract = True

    def __init__(self, plan: SweepPlan | None = None) -> None:
        super().__init__()
        self.plan = plan
        self.monitor: ClientMonitor | None = None
        self._wall0: float | None = None
        self._cpu_at: list[float | None] = []  # CPU seconds at the start of each span
        self._worker_cpu: list[tuple[float, float]] = []  # (wall, max worker CPU %), master only
        self.worker_health = WorkerHealth()  # master only: the workers' own lag and CPU samples
        self._cpu_end: float | None = None

    def make_plan(self) -> SweepPlan:
        raise NotImplementedError

    def reset_time(self) -> None:
        """Locust calls this when a test starts. A plan already used belongs to an earlier test (the
        web UI's "New" button): build it afresh, so the second test sweeps from the first step."""
        super().reset_time()
        self._wall0 = time.time()
        if self.plan is not None and self.plan.spans:
            try:
                self.plan = self.make_plan()
            except NotImplementedError:  # a plan given to the constructor: nothing to rebuild from
                return
            self._cpu_at.clear()
            self._worker_cpu.clear()
            self._cpu_end = None

    def completed(self) -> int:
        """Successful requests so far (Locust's Aggregated row counts each request once)."""
        total = self.runner.stats.total
        return total.num_requests - total.num_failures

    def tick(self) -> tuple[int, float] | None:
        current = self.plan.current() if self.plan else None
        if self._workers_behind(current):
            return current.users, current.spawn_rate  # hold the ramp (see _workers_behind)
        # A stop phase is over once the runner has no users left (the master counts its workers').
        stopped = current is not None and current.phase == "stop" and self.runner.user_count == 0
        return self._advance(spawned=stopped)

    def _workers_behind(self, current: Any) -> bool:
        """Distributed: a ramp is not over before the workers report the step's users. Locust's master
        fires spawning_complete (and the ramp's |Δusers| / spawn_rate seconds run out) after at most
        1 s, but a worker's first test_start builds its prompt pools before it starts any user, which
        takes seconds: without this the first step's warm-up and window opened with no users running."""
        return (
            isinstance(self.runner, MasterRunner)
            and current is not None
            and current.phase == "ramp"
            and self.runner.user_count < current.users
            and self.get_run_time() - self.plan.spans[-1].start < WORKERS_SPAWN_MAX_S
        )

    def _on_spawned(self, user_count: int, **_kw: Any) -> None:
        """Locust finished starting this step's users: the ramp is over now, not at the next tick.
        (The 0 users of a stop phase are checked at the next poll instead: users must be started by
        the shape worker, so ending the stop here would only open the ramp before the spawn.)"""
        current = self.plan.current() if self.plan else None
        if (
            current is not None
            and current.phase == "ramp"
            and user_count == current.users
            and not self._workers_behind(current)
        ):
            self._advance(spawned=True)

    def _advance(self, spawned: bool) -> tuple[int, float] | None:
        if self.plan is None:
            self.plan = self.make_plan()
            self.runner.environment.events.spawning_complete.add_listener(self._on_spawned)
            if self.monitor is None:  # a locustfile run (web UI, headless, master): watch this process
                self.monitor = ClientMonitor().start()
        if self._wall0 is None:
            self._wall0 = time.time() - self.get_run_time()
        now = self.get_run_time()
        tick = self.plan.tick(now, self.completed(), spawned=spawned)
        cpu = self.monitor.cpu_seconds() if self.monitor else None
        while len(self._cpu_at) < len(self.plan.spans):
            self._cpu_at.append(cpu)
        if isinstance(self.runner, MasterRunner) and self.runner.clients:
            usage = max(w.cpu_usage for w in self.runner.clients.values())
            self._worker_cpu.append((time.time(), usage))
        if tick is None:
            self._cpu_end = cpu
            last = self.plan.spans[-1]
            self._tag(last.step, last.users, "done")
            return None
        self._tag(tick.step, tick.step_users, tick.tag)
        return tick.users, tick.spawn_rate

    def _tag(self, step: int, users: int, phase: str) -> None:
        runstate.set_step(step, users, phase)
        if isinstance(self.runner, MasterRunner):
            self.runner.send_message(STEP_MESSAGE, [step, users, phase])

    def stop_clock(self) -> None:
        """Close an open span (a run stopped by hand or by Ctrl-C) at the current time."""
        if self.plan and self.plan.spans and self.plan.spans[-1].end is None:
            self.plan.spans[-1].end = self.get_run_time()
            self._cpu_end = self.monitor.cpu_seconds() if self.monitor else None

    def steps_json(self) -> list[dict[str, Any]]:
        """Each step's phases as wall-clock spans, plus the client's health during its window."""
        if self.plan is None or self._wall0 is None:
            return []
        lags = self.monitor.lags if self.monitor else []
        cpu_marks = [*self._cpu_at, getattr(self, "_cpu_end", None)]
        out: dict[int, dict[str, Any]] = {}
        for i, span in enumerate(self.plan.spans):
            spec = self.plan.steps[span.step]
            entry = out.setdefault(
                span.step,
                {
                    "step": span.step,
                    "users": span.users,
                    "min_requests": spec.measure.min_requests,
                    "warmup_rule": spec.warmup.describe(),
                    "measure_rule": spec.measure.describe(),
                    "phases": {},
                },
            )
            end_wall = None if span.end is None else self._wall0 + span.end
            entry["phases"][span.phase] = {
                "start_wall": self._wall0 + span.start,
                "end_wall": end_wall,
                "completed": span.completed,
                "cpu_start_s": cpu_marks[i],
                "cpu_end_s": cpu_marks[i + 1] if span.end is not None else None,
            }
        for entry in out.values():
            m = entry["phases"].get("measure")
            if not m or m["end_wall"] is None:
                continue
            client = summarize(lags, m["start_wall"], m["end_wall"], m["cpu_start_s"], m["cpu_end_s"])
            # distributed: the workers send the requests; the master's own health is beside the point
            own = self.worker_health.summary(m["start_wall"], m["end_wall"])
            workers = [c for t, c in self._worker_cpu if m["start_wall"] <= t < m["end_wall"]]
            if own is not None or workers:
                client = {"master_cpu_percent": client["cpu_percent"],
                          "master_sched_lag_p99_ms": client["sched_lag_p99_ms"], **(own or {})}
                if client.get("cpu_percent") is None and workers:  # Locust's 5 s sampling: better than none
                    client["cpu_percent"] = sum(workers) / len(workers)
                client.setdefault("cpu_percent", None)
                client.setdefault("sched_lag_p99_ms", None)
            entry["client"] = client
        return [out[k] for k in sorted(out)]


class SweepShape(PlanShape):
    """The scenario's step sweep; in a locustfile the scenario comes from $HARNESS_SCENARIO."""

    def __init__(self, scenario: Scenario | None = None) -> None:
        super().__init__()
        self.scenario = scenario

    def make_plan(self) -> SweepPlan:
        if self.scenario is None:
            path = os.environ.get("HARNESS_SCENARIO") or str(DEFAULT_SCENARIO)
            self.scenario = load_scenario(find_scenario(path))
        return SweepPlan(self.scenario.steps, self.scenario.spawn_rate, restart=self.scenario.restart_users)


class FixedUsersShape(PlanShape):
    """Constant users (the web UI's user count, default 8) until stopped; one step, all measured
    after a 10 s warm-up."""

    use_common_options = True

    def make_plan(self) -> SweepPlan:
        opts = getattr(self.runner.environment, "parsed_options", None)
        users = int(getattr(opts, "num_users", None) or 8)
        rate = float(getattr(opts, "spawn_rate", None) or users)
        return fixed_plan(users, rate, warmup_s=10.0)


def on_init(environment: Any, **_kw: Any) -> None:
    """Locustfiles add this as an init listener. Workers take their step tag from the master and
    send it their own scheduling lag and CPU samples every HEALTH_EVERY_S; the master keeps them."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner):

        def set_tag(environment: Any, msg: Any, **_: Any) -> None:
            step, users, phase = msg.data
            runstate.set_step(step, users, phase)

        runner.register_message(STEP_MESSAGE, set_tag)
        monitor = ClientMonitor().start()

        def push() -> None:
            while True:
                gevent.sleep(HEALTH_EVERY_S)
                payload = monitor.drain()
                if payload["lags"] or payload["cpu"]:
                    try:
                        runner.send_message(HEALTH_KEY, payload)
                    except Exception as exc:  # noqa: BLE001 - the master is gone: nothing to report to
                        log.debug("client health not sent: %s", exc)

        gevent.spawn(push)
    elif isinstance(runner, MasterRunner):

        def received(environment: Any, msg: Any, **_: Any) -> None:
            shape = environment.shape_class
            if isinstance(shape, PlanShape):
                shape.worker_health.add(str(msg.node_id), msg.data)

        runner.register_message(HEALTH_KEY, received)


def write_steps_on_stop(environment: Any, **_kw: Any) -> None:
    """Locustfile runs: save steps.json next to the records so `harness report DIR` can use it."""
    shape = environment.shape_class
    records_dir = getattr(environment.parsed_options, "records_dir", None)
    if isinstance(shape, PlanShape) and records_dir and not isinstance(environment.runner, WorkerRunner):
        shape.stop_clock()
        Path(records_dir).mkdir(parents=True, exist_ok=True)
        (Path(records_dir) / "steps.json").write_text(json.dumps(shape.steps_json(), indent=1))


# --- the run ------------------------------------------------------------------------------------


def run_locust(
    sc: Scenario, url: str, run_dir: Path, quiet: bool = False, progress_every: float = 5.0
) -> SweepShape:
    """Run the sweep in this process (local runner) and write Locust's CSV and HTML into run_dir."""
    from locust import events
    from locust.argument_parser import get_parser
    from locust.env import Environment
    from locust.html import get_html_report
    from locust.log import setup_logging
    from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter, stats_history

    from harness.load import users
    from harness.load.progress import RecordTail, progress_line

    opts = get_parser(default_config_files=[]).parse_args(locust_args(sc, url, run_dir))
    setup_logging(opts.loglevel)
    shape = SweepShape(sc)
    shape.monitor = ClientMonitor().start()
    # No stop timeout: requests still in flight when the last window closes count in no step's
    # statistics (harness.analysis.metrics.measured_records), so waiting for them would only cost time.
    env = Environment(
        user_classes=[users.user_class(sc.api)],
        shape_class=shape,
        events=events,
        host=url,
        parsed_options=opts,
    )
    runner = env.create_local_runner()
    events.init.fire(environment=env, runner=runner, web_ui=None)
    history = gevent.spawn(stats_history, runner)
    csv_writer = StatsCSVFileWriter(env, PERCENTILES_TO_REPORT, str(run_dir / "locust"), full_history=False)
    csv_greenlet = gevent.spawn(csv_writer.stats_writer)
    tail = RecordTail(run_dir)

    def show() -> None:
        while True:
            gevent.sleep(progress_every)
            tail.poll()
            plan, tick = shape.plan, shape.plan.current() if shape.plan else None
            if tick is None or plan is None:
                continue
            now = shape.get_run_time()
            span = plan.spans[-1]
            line = progress_line(
                tick.step,
                tick.steps,
                tick.users,
                tick.phase,
                now - span.start,
                tail.steps.get(tick.step),
                plan.time_left(now),
            )
            print(line, flush=True)

    printer = gevent.spawn(show) if not quiet else None
    if users.shared.preparing is not None:  # prompt pools are built before the clock starts
        users.shared.preparing.join()
    try:
        runner.start_shape()
        runner.greenlet.join()
    except KeyboardInterrupt:
        print("interrupted: stopping users and writing what was measured", file=sys.stderr)
        runner.quit()
    finally:
        shape.stop_clock()
        if printer is not None:
            printer.kill(block=False)
        shape.monitor.stop()
        gevent.sleep(1.2)  # one more CSV write with the final numbers
        csv_greenlet.kill()
        history.kill(block=False)
        csv_writer.close_files()
        (run_dir / "locust.html").write_text(get_html_report(env, show_download_link=False))
        events.quitting.fire(environment=env, reverse=True)  # users close their record writers
    return shape


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"harness": harness.__version__, "python": platform.python_version()}
    for name in (
        "locust",
        "gevent",
        "geventhttpclient",
        "numpy",
        "pandas",
        "pyarrow",
        "matplotlib",
        "psutil",
        "transformers",
        "tokenizers",
        "docker",
    ):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _git() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = (
            subprocess.run(
                ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5
            ).stdout.strip()
            != ""
        )
        return {"commit": commit or None, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _machine() -> dict[str, Any]:
    import psutil

    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def get_json(url: str, timeout: float = 10.0) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


def run_id_for(sc: Scenario) -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + sc.name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m harness sweep", description="Sweep user counts against TGI; write results/<run-id>/."
    )
    ap.add_argument("--scenario", default=None, help="TOML file or a name in scenarios/ (default: built-ins)")
    ap.add_argument("--results-dir", default="results", help="parent directory of the run directory")
    ap.add_argument("--run-id", default=None, help="default: UTC time and scenario name")
    ap.add_argument("--emulator-args", default="", help="extra emulator flags, e.g. '--error-rate 0.2'")
    ap.add_argument("--no-pull", action="store_true", help="--server: never pull the image")
    ap.add_argument("--keep-server", action="store_true", help="--server: leave the container running")
    ap.add_argument("--progress-every", type=float, default=5.0, help="seconds between progress lines")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    ap.add_argument("--no-plots", action="store_true", help="report without plots")
    ap.add_argument("--strict", action="store_true", help="exit 3 when any step is flagged")
    add_override_arguments(ap)
    args = ap.parse_args(argv)
    cli = {o.name: getattr(args, o.name) for o in OVERRIDES}
    try:
        sc = load_scenario(find_scenario(args.scenario) if args.scenario else None, cli=cli)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    chosen_url = args.url or os.environ.get("HARNESS_URL")
    chosen_server = args.server or os.environ.get("HARNESS_SERVER")
    if chosen_url and chosen_server:
        print(
            "error: give --url (a running server) or --server (a container to start), not both",
            file=sys.stderr,
        )
        return 2

    token_env = os.environ.get("LOCUST_BEARER_TOKEN_ENV")
    if token_env and not os.environ.get(token_env, "").strip():
        print(f"error: LOCUST_BEARER_TOKEN_ENV names {token_env}, which is unset or empty", file=sys.stderr)
        return 2

    run_id = args.run_id or run_id_for(sc)
    run_dir = Path(args.results_dir) / run_id
    if run_dir.exists() and any(run_dir.iterdir()):
        print(f"error: {run_dir} already exists and is not empty", file=sys.stderr)
        return 2
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "run_id": run_id,
        "created": dt.datetime.now(dt.UTC).isoformat(),
        "argv": sys.argv,
        "scenario": sc.to_dict(),
        "versions": _versions(),
        "git": _git(),
        "machine": _machine(),
        # how token arrivals were stamped (harness.client.transport): kernel receive time or read time
        "token_stamps": stamp_source(os.environ.get("LOCUST_STAMPS", "kernel"), chosen_url),
    }
    server: dict[str, Any] = {}
    emulator = container = None
    try:
        if chosen_server:
            try:
                from harness.targets.container import ManagedServer
                from harness.targets.servers import ServerConfigError, settings_from_scenario
            except ImportError as exc:
                print(f"error: --server needs harness.targets.container (docker-py): {exc}", file=sys.stderr)
                return 2
            settings = settings_from_scenario(sc.server, profile=chosen_server)
            problems = settings.validate()
            if problems:
                print("error: server settings: " + "; ".join(problems), file=sys.stderr)
                return 2
            try:
                container = ManagedServer(
                    settings, run_id=run_id, results_dir=run_dir, no_pull=args.no_pull, keep=args.keep_server
                ).start()
            except (ServerConfigError, RuntimeError, OSError) as exc:
                print(f"error: server did not start: {exc}", file=sys.stderr)
                return 1
            url = container.url
            server = {"kind": chosen_server, "url": url, "description": f"container {settings.profile}"}
        elif chosen_url:
            url = chosen_url.rstrip("/")
            server = {"kind": "url", "url": url, "description": url}
        else:
            from harness.targets.emulator_process import EmulatorProcess

            extra = shlex.split(args.emulator_args)
            if "MAX_BATCH_SIZE" in sc.server.env and "--max-batch-size" not in extra:
                extra += ["--max-batch-size", sc.server.env["MAX_BATCH_SIZE"]]
            if sc.server.model_id and "--model-id" not in extra:
                extra += ["--model-id", sc.server.model_id]
            print(f"starting the emulator ({sc.server.emulator_profile}) ...", flush=True)
            emulator = EmulatorProcess(profile=sc.server.emulator_profile, args=extra).start()
            url = emulator.url
            server = {
                "kind": "emulator",
                "url": url,
                "profile": sc.server.emulator_profile,
                "args": extra,
                "description": f"the emulator ({sc.server.emulator_profile})",
            }
        server["info"] = get_json(url + "/info")
        manifest["server"] = server
        (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str))
        print(f"sweep {sc.name}: users {', '.join(map(str, sc.users))} against {url} → {run_dir}", flush=True)
        shape = run_locust(sc, url, run_dir, quiet=args.quiet, progress_every=args.progress_every)
        steps = shape.steps_json()
        (run_dir / "steps.json").write_text(json.dumps(steps, indent=1))
        manifest["client"] = [
            {"step": s["step"], "users": s["users"], **(s.get("client") or {})} for s in steps
        ]
        if emulator is not None:
            server["emulator_stats"] = get_json(url + "/emulator/stats")
        if container is not None:
            server["container"] = container.manifest()
    finally:
        if emulator is not None:
            emulator.stop()
        if container is not None:
            container.stop()
            server.setdefault("container", container.manifest())
        if manifest.get("server"):
            (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str))

    from harness.report import build as report

    reports, _ = report.build_report(run_dir, with_plots=not args.no_plots)
    print()
    print(report.markdown_table(reports))
    print(f"\nreport: {run_dir / 'report.html'}")
    if args.strict and any(r.flags for r in reports):
        return 3
    return 0
