"""Everything the suite hooks into Locust, registered explicitly by `register(events)`.

- Options: every setting of the configuration model (harness.config.settings) is a Locust option
  with its HARNESS_* variable, plus `--scenario`; Locust's own `--host` is the target URL and its
  `-r/--spawn-rate` stays Locust's. No option list is written here.
- The configuration is resolved once per test by the process that runs the shape (local runner
  or master) — scenario file < HARNESS_* < options, the server asked for its model id — and put on
  `parsed_options.harness_config`, which Locust sends to every worker with each spawn message
  (custom options travel that way), before the worker's test_start. So every process of a run,
  on every host, reads the same RunConfig.
- That process writes the run log (harness.records.runlog), then the report and the exact summary
  (harness.load.locust.endofrun); workers take the step tag from the master and send it their
  client health every second. Every process that sends requests runs one ClientMonitor (the live
  client-bound warning); `--stop-after-requests` is harness.load.locust.stopafter.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
from typing import Any

import gevent
import locust.runners
from locust.runners import MasterRunner, WorkerRunner

from harness.client.transport import stamp_source
from harness.config.layers import ConfigError, find_scenario, load_config
from harness.config.model import RunConfig
from harness.config.settings import ROLE_SETTINGS, add_arguments, from_namespace
from harness.load import runstate
from harness.load.headers import request_headers
from harness.load.health import HEALTH_EVERY_S, HEALTH_KEY, LiveWatch
from harness.load.locust import endofrun, interrupts, offloop, preflight_rim, spawnargs, stopafter, webui
from harness.load.locust.monitor import ClientMonitor
from harness.load.locust.shapes import STEP_MESSAGE, PlanShape
from harness.load.locust.shipping import MasterReceiver, WorkerShipper
from harness.load.locust.users import our_classes, run_dir, shared
from harness.load.manifest import build_manifest, run_id_for
from harness.records import runlog
from harness.report import atomic
from harness.targets.identity import identify

log = logging.getLogger(__name__)
LOCUST_OWN = ("url", "spawn_rate")  # Locust's --host and -r/--spawn-rate
LOCUST_ROLE = ROLE_SETTINGS  # Locust's own --master/--worker/... decide a locustfile run's role
WEB_UI_SECTIONS = ("request", "workload")
_registered: set[int] = set()
_environments: list[Any] = []  # the environment of each init (spawning_complete does not name it)


def register(events: Any) -> None:
    """Hook the suite into this Locust `events` object (idempotent)."""
    if id(events) in _registered:
        return
    _registered.add(id(events))
    events.init_command_line_parser.add_listener(_add_options)
    events.init.add_listener(_on_init)
    events.test_start.add_listener(_on_test_start)
    events.test_stopping.add_listener(_on_test_stopping)
    events.test_stop.add_listener(_on_test_stop)
    events.spawning_complete.add_listener(_on_spawned)
    events.worker_report.add_listener(_on_worker_report)
    events.quitting.add_listener(_on_quitting)
    events.quit.add_listener(endofrun.print_pending)
    PlanShape.before_test = staticmethod(prepare_test)


def _add_options(parser: Any, **_kw: Any) -> None:
    # On the parser itself, not a group: only Locust's parser takes include_in_web_ui.
    parser.add_argument("--scenario", env_var="HARNESS_SCENARIO", default=None,
                        help="scenario TOML file or a shipped name (default, seed); "
                             "scenario file < HARNESS_* < these options")
    add_arguments(parser, skip=LOCUST_OWN + LOCUST_ROLE, locust=True, web_ui=WEB_UI_SECTIONS)
    parser.add_argument("--harness-config", default=None, help=argparse.SUPPRESS)


def resolve_config(environment: Any, discover: bool = False, draw_seed: bool = True) -> RunConfig:
    """The run's configuration as this process must use it (module docstring; draw_seed: _prepare_guess)."""
    opts = environment.parsed_options
    given = getattr(opts, "harness_config", None)
    if given:
        return RunConfig.model_validate_json(given)
    path = getattr(opts, "scenario", None)
    # The web form sends every custom field; an empty one (an option without a default) is "not given".
    cli = {k: v for k, v in from_namespace(opts, skip=LOCUST_OWN + LOCUST_ROLE).items() if v != ""}
    if environment.host:
        cli["url"] = environment.host
    cfg = load_config(find_scenario(path) if path else None, cli=cli)
    if not cfg.output.records_dir and not cfg.output.run_id:
        cfg = cfg.model_copy(update={"output": cfg.output.model_copy(update={"run_id": run_id_for(cfg)})})
    cfg = cfg.with_run_seed() if draw_seed else cfg  # a new run: prompts no earlier run sent (manifest)
    if discover and cfg.target.url and (cfg.request.api is None or not cfg.request.model_name):
        cfg = preflight_rim.choose(environment, cfg)  # API and model from the server (its /info)
    return cfg


def _on_init(environment: Any, **_kw: Any) -> None:
    _environments.append(environment)
    runner = environment.runner
    stopafter.register_messages(runner)
    if isinstance(runner, WorkerRunner):
        spawnargs.install()  # ≈ 0.5 s of loop-holding CPU per spawn message otherwise
        _worker_messages(environment, runner)
        shared.preparing = gevent.spawn(_prepare_guess, environment)
        return
    if not getattr(environment, "harness_sweep", False):  # the sweep handles Ctrl-C itself (runner.py)
        interrupts.arm(shared.all_writers)
    try:
        cfg = resolve_config(environment)
        request_headers(cfg.request, os.environ)
    except (ConfigError, ValueError) as exc:  # fail fast, one line, before any user starts
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)
    if isinstance(runner, MasterRunner):  # first: workers connect (and talk) while the checks below run
        _tolerate_busy_workers(runner, cfg.distributed.heartbeat_liveness_s)
        runner.register_message(HEALTH_KEY, _health_received)
        environment.harness_receiver = MasterReceiver(runner)
    if not environment.host and cfg.target.url:
        environment.host = cfg.target.url
    preflight_rim.check(environment, cfg)  # tokenizer and target usable, or one line and exit 2/4
    _progress_instead_of_stats(environment, cfg)
    webui.install(environment)  # the LLM tab, when this process serves the web UI
    if not isinstance(runner, MasterRunner):
        environment.harness_monitor = ClientMonitor().start()  # this process sends the requests
        shared.preparing = gevent.spawn(_prepare, cfg, 0, environment)


def _progress_instead_of_stats(environment: Any, cfg: RunConfig) -> None:
    """A headless locustfile run of our shape (a master, typically) prints the sweep's progress line
    every output.progress_every_s instead of Locust's stats table every 2 s (`--print-stats` keeps
    the table). `python -m harness sweep` prints its own."""
    opts = environment.parsed_options
    shape = environment.shape_class
    if (opts is None or not getattr(opts, "headless", False) or getattr(opts, "print_stats", False)
            or not isinstance(shape, PlanShape) or getattr(environment, "harness_sweep", False)
            or cfg.output.quiet):
        return
    opts.only_summary = True  # read by locust.main right after init

    def show() -> None:
        while True:
            gevent.sleep(cfg.output.progress_every_s)
            line = shape.progress()
            if line is not None:
                print(line, flush=True)

    gevent.spawn(show)


def _tolerate_busy_workers(runner: Any, liveness_s: int) -> None:
    """Locust's master marks a worker missing after 3 s without heartbeats (and ends the test with
    the last): a worker building its prompt pools on a busy machine missed that. [distributed]
    heartbeat_liveness_s (10 s) replaces it, also for workers that connected already; a worker
    still quits after Locust's 60 s without the master's heartbeats."""
    locust.runners.HEARTBEAT_LIVENESS = liveness_s
    for client in runner.clients.all:
        client.heartbeat = max(client.heartbeat, liveness_s)


def _worker_messages(environment: Any, runner: Any) -> None:
    def set_tag(environment: Any, msg: Any, **_: Any) -> None:
        # the step's start on this worker's clock: the open-loop schedules' common anchor
        runstate.set_tag(runstate.tag_from_master(msg.data, shared.clock_offset_s))

    runner.register_message(STEP_MESSAGE, set_tag)
    shared.is_worker = True
    shared.shipper = WorkerShipper(runner).start()  # measures the clock offset from now on
    monitor = environment.harness_monitor = ClientMonitor().start()

    def push() -> None:
        while True:
            gevent.sleep(HEALTH_EVERY_S)
            payload = monitor.drain()
            shift = shared.clock_offset_s  # samples on the master's clock, like the records
            for samples in payload.values():
                for sample in samples:
                    sample[0] += shift
            if payload["lags"] or payload["cpu"]:
                try:
                    runner.send_message(HEALTH_KEY, payload)
                except Exception as exc:  # noqa: BLE001 - the master is gone: nothing to report to
                    log.debug("client health not sent: %s", exc)

    gevent.spawn(push)


def _health_received(environment: Any, msg: Any, **_: Any) -> None:
    store = endofrun.worker_health(environment)
    if store is not None:
        store.add(str(msg.node_id), msg.data)


def _prepare_guess(environment: Any) -> None:
    """A worker builds its prompt pools for its own view of the config while it waits for the
    master's (test_start finds them built). With no seed no guess can match the master's drawn
    one: only the tokenizers load (test_start waits for this: a pool built in vain delays it)."""
    try:
        cfg = resolve_config(environment, draw_seed=False)
    except (ConfigError, ValueError):
        return
    if cfg.workload.seed is None:
        shared.configure(cfg)
        for cls in our_classes(environment):
            offloop.off_loop(shared.builder, cls.api_for(cfg).chat)
        return
    _prepare(cfg, int(getattr(environment.runner, "worker_index", 0) or 0), environment)


def _prepare(cfg: RunConfig, worker_index: int, environment: Any) -> None:
    shared.configure(cfg, worker_index)
    for cls in our_classes(environment):
        offloop.off_loop(shared.pool, cls.api_for(cfg).chat)
        for step, spec in enumerate(shared.steps):
            if spec.trace is not None:  # before the test: building prompts is not the test's load
                offloop.off_loop(shared.trace_prompts, step, cls.api_for(cfg).chat)


def prepare_test(environment: Any) -> RunConfig:
    """Resolve a new test's configuration (master or local runner) and start its run log.

    Called by the load shape at the first tick of a test — Locust's shape worker ticks *before*
    `start()` fires test_start, and the first tick's user count must come from this test's
    configuration (a stale one made the first spawn message of a distributed run 1 user) — or
    by test_start when no shape of ours runs. Marks the environment so test_start does not do it
    twice."""
    sweep = getattr(environment, "harness_sweep", False)  # the sweep resolved it and wrote the header
    if not sweep:
        environment.parsed_options.harness_config = None  # a new test (web UI): resolve afresh
    cfg = resolve_config(environment, discover=True)
    environment.parsed_options.harness_config = cfg.model_dump_json()  # → workers, with spawn
    if not sweep:
        _write_header(environment, cfg)
    shared.configure(cfg)
    for writer in shared.writers.values():  # the previous test's files (web UI: a new test)
        writer.close()
    shared.writers.clear()
    receiver = getattr(environment, "harness_receiver", None)
    shape = environment.shape_class
    if receiver is not None and isinstance(shape, PlanShape):
        shape.losses = receiver.losses
        shape.brief_loss_s = float(cfg.distributed.heartbeat_liveness_s)
    environment.harness_test_ready = True
    return cfg


def _on_test_start(environment: Any, **_kw: Any) -> None:
    """Resolve the config unless the shape did (master/local: and start the run log); build the
    prompt pools and open the writer before any user runs."""
    runner = environment.runner
    if not isinstance(runner, WorkerRunner):
        if getattr(environment, "harness_test_ready", False):
            cfg = shared.config
        else:
            cfg = prepare_test(environment)
        environment.harness_test_ready = False  # consumed: the next test resolves afresh
        environment.harness_test_started = True  # Locust fires test_stop at quit even without a test
        stopafter.arm(environment, cfg.request.stop_after_requests)
        monitor = getattr(environment, "harness_monitor", None)
        environment.harness_clock = None
        if not isinstance(environment.shape_class, PlanShape):  # Locust's own user count
            users = int(getattr(runner, "target_user_count", 0) or getattr(environment.parsed_options,
                                                                           "num_users", 0) or 0)
            environment.harness_clock = endofrun.PlainRunClock(runner, monitor)
            environment.harness_clock.start(users)
        _start_telemetry(environment, cfg)
        if isinstance(runner, MasterRunner):
            return
    else:
        cfg = resolve_config(environment)
        locust.runners.WORKER_REPORT_INTERVAL = cfg.distributed.report_every_s  # read at each report (shapes)
        mode = cfg.distributed.worker_records
        shipper = getattr(shared, "shipper", None)
        shared.forward = shipper.put if shipper is not None and mode != "local" else None
        shared.keep_local = mode != "master"
    if shared.preparing is not None:
        shared.preparing.join()
        shared.preparing = None
    _prepare(cfg, int(getattr(runner, "worker_index", 0) or 0), environment)
    try:
        request_headers(cfg.request, os.environ)
    except ValueError as exc:  # every user will fail at on_start: say it once, plainly
        log.error("no request will be sent: %s", exc)
    if shared.keep_local or shared.forward is None:
        shared.open_writer()
    if not getattr(environment, "harness_sweep", False):
        preflight_rim.guard_storms(environment, cfg)
    # Objects that live for the whole run, frozen, keep full GC passes (they stop every greenlet)
    # short. Gen-0 at 700: a 1024-stream run collected every few ms, pausing greenlets up to 8 ms
    # (bench/client_capacity.py); at 20,000 none fell in a 10 s window.
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, 20_000), gen1, max(gen2, 50))
    _watch(environment, cfg)  # after the pools are built: building them is not the test's load


def _write_header(environment: Any, cfg: RunConfig) -> None:
    url = environment.host or cfg.target.url
    ident = identify(url, request_headers(cfg.request, os.environ)) if url else None
    server: dict[str, Any] = {"kind": "url", "url": url, "description": url}
    if ident is not None:
        server.update(info=ident.info, models=ident.models, model_id=ident.model_id)
    out = run_dir(cfg)
    manifest = build_manifest(cfg, out.name, server, stamp_source(cfg.request.stamps, url),
                              source=f"locustfile ({getattr(environment.parsed_options, 'scenario', None)})")
    runlog.write_header(out, manifest)
    atomic.write_text(out / "manifest.json", json.dumps(manifest, indent=1, default=str) + "\n")
    print(f"records and run log: {out}", file=sys.stderr, flush=True)


def _watch(environment: Any, cfg: RunConfig) -> None:
    """The live client-bound warning of this test, in the process that sends the requests."""
    monitor = getattr(environment, "harness_monitor", None)
    if monitor is not None:
        monitor.watch = LiveWatch(cfg.flags.max_client_cpu_percent, cfg.flags.max_sched_lag_ms)


def _ours_to_report(environment: Any) -> bool:
    """This process ends the test's run log (local runner or master), unless the sweep CLI does,
    and a test did start (Locust fires test_stop when it quits without one, from the web UI)."""
    sweep = getattr(environment, "harness_sweep", False)
    started = getattr(environment, "harness_test_started", False)
    return started and not isinstance(environment.runner, WorkerRunner) and not sweep


def _on_spawned(user_count: int, **_kw: Any) -> None:
    for environment in _environments:
        clock = getattr(environment, "harness_clock", None)
        if clock is not None:
            clock.spawned(user_count)


def _on_worker_report(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
    """Master: each worker's window counts, kept apart so a lost worker's open requests are not
    waited for (PlanShape.window_counts)."""
    for environment in _environments:
        shape = environment.shape_class
        if isinstance(shape, PlanShape) and isinstance(environment.runner, MasterRunner):
            shape.worker_report(client_id, data)


def _on_test_stopping(environment: Any, **_kw: Any) -> None:
    """Before Locust stops the users: the window ends now, not when their requests are cancelled."""
    if _ours_to_report(environment):
        endofrun.steps_at_stop(environment)


def _start_telemetry(environment: Any, cfg: RunConfig) -> None:
    """Scrape the server's Prometheus metrics for this test (the process that runs the shape)."""
    url = environment.host or cfg.target.url
    every = cfg.telemetry.scrape_every_s
    if not url or every <= 0:
        return
    try:
        headers = request_headers(cfg.request, os.environ)
    except ValueError:
        headers = {}
    from harness.load.locust.scraper import PrometheusScraper

    target = url.rstrip("/") + "/" + cfg.telemetry.metrics_path.lstrip("/")
    environment.harness_scraper = PrometheusScraper(target, run_dir(cfg), every, headers).start()


def _stop_telemetry(environment: Any) -> None:
    scraper = getattr(environment, "harness_scraper", None)
    if scraper is None:
        return
    environment.harness_scraper = None
    runlog.write_end(run_dir(shared.config), telemetry={"prometheus": scraper.stop()})


def _on_test_stop(environment: Any, **_kw: Any) -> None:
    shared.flush()
    monitor = getattr(environment, "harness_monitor", None)
    if monitor is not None:
        monitor.watch = None
    receiver = getattr(environment, "harness_receiver", None)
    if receiver is not None and getattr(environment, "harness_test_started", False):
        receiver.drain()  # master: every live worker's last records first
        runlog.write_end(run_dir(shared.config), workers=receiver.workers_json())
    if not isinstance(environment.runner, WorkerRunner):
        _stop_telemetry(environment)
    if not _ours_to_report(environment):
        return
    environment.harness_test_started = False
    runlog.write_steps(run_dir(shared.config), endofrun.steps_at_stop(environment))
    if shared.prompt_stats:  # a local runner built the prompts itself (workers keep their own)
        runlog.write_end(run_dir(shared.config), prompts=shared.prompt_stats)
    endofrun.report_at_stop(environment)


def _on_quitting(environment: Any, **_kw: Any) -> None:
    if not getattr(environment, "harness_sweep", False) and not isinstance(environment.runner, WorkerRunner):
        interrupts.arm(shared.all_writers, now=True)  # shutting down: a Ctrl-C now exits at once
    shared.close()

