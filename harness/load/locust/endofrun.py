"""Every test of a locustfile run ends with its run log's steps, the report files and an exact summary.

Whatever runs the users — a shape of ours (StepSweep, FixedUsers) or Locust's own user count
(`--headless -u N`, the web UI's form, its "edit" button) — the process that runs the test (local
runner or master) writes the steps into the run log when the test stops, then rebuilds the report
from the records directory and the run log alone (harness.report.build: the sweep's very functions),
and logs the exact summary (harness.report.terminal) with the directory's path where Locust logs
its own table (stderr, --logfile, the web UI's log tab): headless, after that table (at Locust's
`quit` event); in the web UI, when the test stops.

`PlainRunClock` gives Locust's own user count steps as a sweep has: step 0 ramps from the test's
start until spawning completes, then measures until the test stops (test_stopping: before Locust
kills the users, whose requests end as `cancelled`); a new user count during the test (the web
UI's edit) closes the window and opens the next step's when its spawning completes. Its records
carry the step tags (broadcast to workers), so the report attributes them as a sweep's.

Distributed: the workers send their records to the master (harness.load.locust.shipping), which
drains them at test_stop, before the steps and the report are written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from locust.runners import MasterRunner

from harness.load import runstate
from harness.load.health import WorkerHealth, summarize
from harness.load.locust.monitor import ClientMonitor
from harness.load.locust.offloop import off_loop
from harness.load.locust.shapes import STEP_MESSAGE, PlanShape
from harness.load.locust.users import run_dir, shared

log = logging.getLogger(__name__)
# Locust's own table is logged here (plain format, stderr and --logfile, and the web UI's log tab)
table_log = logging.getLogger("locust.stats_logger")
_pending: list[Callable[[], str | None]] = []  # headless: built and logged at Locust's `quit`


class PlainRunClock:
    """The steps of a test whose user count is Locust's own (see the module docstring)."""

    def __init__(self, runner: Any, monitor: ClientMonitor | None) -> None:
        self.runner = runner
        self.monitor = monitor
        self.worker_health = WorkerHealth()
        self.spans: list[dict[str, Any]] = []

    def _cpu(self) -> float | None:
        return self.monitor.cpu_seconds() if self.monitor else None

    def _open(self, step: int, users: int, phase: str) -> None:
        self.spans.append({"step": step, "users": users, "phase": phase, "start_wall": time.time(),
                           "end_wall": None, "cpu_start_s": self._cpu(), "cpu_end_s": None})
        runstate.set_step(step, users, phase)
        if isinstance(self.runner, MasterRunner):
            self.runner.send_message(STEP_MESSAGE, [step, users, phase])

    def _close(self) -> None:
        if self.spans and self.spans[-1]["end_wall"] is None:
            self.spans[-1].update(end_wall=time.time(), cpu_end_s=self._cpu())

    def start(self, users: int) -> None:
        self.spans.clear()
        self._open(0, users, "ramp")

    def spawned(self, user_count: int) -> None:
        if not self.spans or self.spans[-1]["end_wall"] is not None:
            return
        last = self.spans[-1]
        user_count = user_count or last["users"]  # a master may report 0 before its workers do
        if last["phase"] == "ramp":
            self._close()
            self._open(last["step"], user_count, "measure")
        elif user_count != last["users"]:  # the user count was edited during the test
            self._close()
            self._open(last["step"] + 1, user_count, "measure")

    def stop(self) -> None:
        self._close()
        if self.spans:
            last = self.spans[-1]
            runstate.set_step(last["step"], last["users"], "done")

    def steps_json(self) -> list[dict[str, Any]]:
        """The run log's `steps`, in PlanShape.steps_json's form."""
        lags = self.monitor.lags if self.monitor else []
        out: dict[int, dict[str, Any]] = {}
        for span in self.spans:
            entry = out.setdefault(span["step"], {
                "step": span["step"], "users": span["users"], "min_requests": 0,
                "warmup_rule": "none", "measure_rule": "until the test stopped", "phases": {}})
            entry["users"] = span["users"]
            entry["phases"][span["phase"]] = {k: span[k] for k in ("start_wall", "end_wall", "cpu_start_s",
                                                                   "cpu_end_s")}
        for entry in out.values():
            m = entry["phases"].get("measure")
            if not m or m["end_wall"] is None:
                continue
            client = summarize(lags, m["start_wall"], m["end_wall"], m["cpu_start_s"], m["cpu_end_s"])
            workers = self.worker_health.summary(m["start_wall"], m["end_wall"])
            if workers is not None:  # distributed: the workers send the requests
                client = {"master_cpu_percent": client["cpu_percent"],
                          "master_sched_lag_p99_ms": client["sched_lag_p99_ms"], **workers}
            entry["client"] = client
        return [out[k] for k in sorted(out)]


def worker_health(environment: Any) -> WorkerHealth | None:
    """Where the master keeps its workers' health samples for the test that runs."""
    shape = environment.shape_class
    if isinstance(shape, PlanShape):
        return shape.worker_health
    clock = getattr(environment, "harness_clock", None)
    return clock.worker_health if clock is not None else None


def steps_at_stop(environment: Any) -> list[dict[str, Any]]:
    """The steps of the test that just stopped (its open span closed now)."""
    shape = environment.shape_class
    if isinstance(shape, PlanShape):
        shape.stop_clock()
        return shape.steps_json()
    clock = getattr(environment, "harness_clock", None)
    if clock is None:
        return []
    clock.stop()
    return clock.steps_json()


def report_at_stop(environment: Any) -> None:
    """Rebuild the report of the test that stopped and log its summary — headless, at Locust's
    `quit` instead (after its table; a headless master's workers have then been told to quit, and
    their last records reach the directory)."""
    if getattr(environment.parsed_options, "headless", False):
        _pending.append(lambda: _build(isinstance(environment.runner, MasterRunner)))
        return
    text = _build(False)
    if text:
        table_log.info(text)


def _build(wait_for_workers: bool) -> str | None:
    from harness.report.build import build_with_summary
    from harness.report.parquet import plain_rows_process

    plain_rows_process()  # a Locust process of ours hands pyarrow no pandas objects

    cfg = shared.config
    out = run_dir(cfg)
    if wait_for_workers:
        _settle(out)
    try:
        return off_loop(build_with_summary, out, cfg.output.plots)
    except Exception as exc:  # noqa: BLE001 - a report must never take Locust's shutdown down
        log.error("no report for %s: %s (python -m harness report %s)", out, exc, out)
        return None


def _settle(out: Any, quiet_s: float = 1.5, max_s: float = 15.0) -> None:
    """Wait until the records files in `out` stop growing (workers flush every 0.5 s and when
    they quit), at most max_s."""
    import gevent

    def sizes() -> dict[str, int]:
        return {p.name: p.stat().st_size for p in out.glob("records*.jsonl")}

    start, last, since = time.time(), sizes(), time.time()
    while time.time() - start < max_s:
        gevent.sleep(0.25)
        now = sizes()
        if now != last:
            last, since = now, time.time()
        elif time.time() - since >= quiet_s:
            return


def print_pending(**_kw: Any) -> None:
    """Locust's `quit` listener (headless: after its own table): the summaries report_at_stop kept."""
    while _pending:
        text = _pending.pop(0)()
        if text:
            table_log.info("\n" + text)
