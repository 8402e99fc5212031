"""The sweep's in-process Locust run: a local runner driven by SweepShape, with Locust's CSV/HTML
(its live view) written beside the records, and the progress line fed from the record sink.

With `[distributed] workers = N` this process is the master (a MasterRunner; the workers are N
local child processes, or remote ones with `master = true`, harness.load.locust.cluster): the
workers send their records here, so the sink, the progress line and the run directory are the
same as in one process.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import gevent
from locust import events
from locust.argument_parser import get_parser
from locust.env import Environment
from locust.html import get_html_report
from locust.log import setup_logging
from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter, stats_history

from harness.config.model import RunConfig
from harness.load.locust import cluster, guard, interrupts
from harness.load.locust.listeners import register
from harness.load.locust.monitor import ClientMonitor
from harness.load.locust.shapes import PlanShape, SweepShape
from harness.load.locust.users import shared, user_class
from harness.report import atomic


def run_locust(cfg: RunConfig, url: str, run_dir: Path, shape: PlanShape | None = None,
               target_gone: Callable[[], str | None] | None = None) -> PlanShape:
    """Run the sweep in this process (local runner) and write Locust's CSV and HTML into run_dir.

    `shape`: another plan than the configuration's step list (the capacity search's SearchShape).

    `cfg` is the resolved configuration (output.records_dir = run_dir, request.model_name set);
    the listeners hand it to the users unchanged (harness_sweep marks it as already resolved).
    `target_gone`: a started server's death, one line or None (harness.load.locust.guard).
    """
    register(events)
    opts = get_parser(default_config_files=[]).parse_args(
        ["--headless", "--host", url, "--loglevel", "WARNING"]
    )
    opts.harness_config = cfg.model_dump_json()
    setup_logging(opts.loglevel)
    shape = shape if shape is not None else SweepShape()
    shared.configure(cfg)
    # No stop timeout: the last step's cool-down already waited for every request its window counts
    # (harness.analysis.attribution); the ones still in flight were sent in the cool-down.
    d = cfg.distributed
    # ApiUser follows request.api: the same class name on the master and every worker (Locust
    # dispatches users to workers by class name)
    env = Environment(
        user_classes=[user_class(None) if d.workers else user_class(cfg.request.api)],
        shape_class=shape,
        events=events,
        host=url,
        parsed_options=opts,
    )
    env.harness_sweep = True
    procs: list = []
    if d.workers:
        port = d.master_port if d.master else cluster.free_port()
        runner = env.create_master_runner("*" if d.master else "127.0.0.1", port)
        if d.master:
            print(f"master: waiting for {d.workers} workers on port {port} (on each: python -m "
                  f"harness sweep --worker --master-host THIS_HOST --master-port {port})", flush=True)
        else:
            procs = cluster.start_local_workers(d.workers, port)
    else:
        runner = env.create_local_runner()
    events.init.fire(environment=env, runner=runner, web_ui=None)
    # the listeners' monitor of this process (it also gives the live client-bound warning)
    shape.monitor = getattr(env, "harness_monitor", None) or ClientMonitor().start()
    history = gevent.spawn(stats_history, runner)
    csv_writer = StatsCSVFileWriter(env, PERCENTILES_TO_REPORT, str(run_dir / "locust"), full_history=False)

    def write_csv() -> None:  # a full disk: said once by the guard, never a greenlet's traceback
        try:
            csv_writer.stats_writer()
        except OSError as exc:
            where = run_dir / "locust_stats.csv"
            shared.io_error = shared.io_error or f"cannot write {where}: {exc.strerror}"

    csv_greenlet = gevent.spawn(write_csv)

    def show() -> None:
        while True:
            gevent.sleep(cfg.output.progress_every_s)
            line = shape.progress()
            if line is not None:
                print(line, flush=True)

    printer = gevent.spawn(show) if not cfg.output.quiet else None
    if shared.preparing is not None:  # prompt pools are built before the clock starts
        shared.preparing.join()
    shape.interrupted = False
    guard.start(env, cfg.request.timeout_s, target_gone=target_gone)
    hub = gevent.get_hub()  # a Ctrl-C is handled below: the hub need not print it as an error
    hub.NOT_ERROR = (*hub.NOT_ERROR, KeyboardInterrupt)
    # The first Ctrl-C arms the second in the signal handler itself: on a busy machine the main
    # greenlet may reach the `except` below only after a quick second press has arrived.
    interrupts.arm(shared.all_writers)
    try:
        if d.workers:
            cluster.wait_for_workers(runner, d.workers, d.connect_timeout_s, procs)
        runner.start_shape()
        runner.greenlet.join()
    except KeyboardInterrupt:
        # First Ctrl-C: users stop (their in-flight requests are recorded `cancelled`), the report
        # is written from what was recorded. A second one exits at once (interrupts.py).
        shape.interrupted = True
        interrupts.second_exits_at_once(*shared.all_writers())
        print("interrupted: stopping users and writing what was measured (Ctrl-C again: exit now)",
              file=sys.stderr, flush=True)
        if d.workers:  # the workers' users first, so their last records reach the drain (test_stop)
            runner.stop()
        runner.quit()
    finally:
        shape.storm = guard.verdict()
        shape.io_error = guard.io_error() or shared.write_error()
        guard.stop()
        shape.stop_clock()
        if printer is not None:
            printer.kill(block=False)
        shape.monitor.stop()
        csv_greenlet.kill()
        history.kill(block=False)
        try:
            if shape.io_error is None:
                _final_csv_write(csv_writer)
            csv_writer.close_files()
            if shape.io_error is None:
                atomic.write_text(run_dir / "locust.html", get_html_report(env, show_download_link=False))
        except OSError as exc:  # the disk filled up after the guard's last look
            shape.io_error = shape.io_error or f"cannot write the run directory {run_dir}: {exc.strerror}"
        events.quitting.fire(environment=env, reverse=True)  # users close their record writers
        if procs:
            cluster.stop_workers(procs)
    return shape




def _final_csv_write(writer: StatsCSVFileWriter) -> None:
    """Locust's CSV files with the final numbers, written now: one pass of its writer's loop
    (`StatsCSVFileWriter.stats_writer`), instead of waiting up to a second for the next one."""
    fh = writer.requests_csv_filehandle
    fh.seek(0)
    fh.truncate()
    writer.requests_csv_writer.writerow(writer.requests_csv_columns)
    writer._requests_data_rows(writer.requests_csv_writer)
    writer._stats_history_data_rows(writer.stats_history_csv_writer, time.time())
    for name in ("failures", "exceptions"):
        handle = getattr(writer, f"{name}_csv_filehandle")
        handle.seek(0)
        handle.truncate()
        getattr(writer, f"{name}_csv_writer").writerow(getattr(writer, f"{name}_columns"))
        getattr(writer, f"_{name}_data_rows")(getattr(writer, f"{name}_csv_writer"))
        handle.truncate()
    writer.requests_flush()
    writer.stats_history_flush()
    writer.failures_flush()
    writer.exceptions_flush()
