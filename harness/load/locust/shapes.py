"""Locust load shapes driven by the pure step plan (harness.load.plan.SweepPlan).

`PlanShape` adapts a SweepPlan to Locust's LoadTestShape: it polls the plan about once a second,
tags records through `harness.load.runstate` (and broadcasts the tag to workers in master/worker
mode, see harness.load.locust.listeners), and keeps each phase's wall-clock span and the client's
CPU, from which `steps_json` gives each step's windows and client health for the run log.

Window counts: users count the requests they send inside a step's measurement window, and when
each of those ends, in Locust stats entries (harness.load.runstate.window_name), which a master
receives summed over its workers; the plan closes a request-count window and the cool-down on them.

Step rule with `[steps] restart = true`: at each step boundary the shape first returns 0 users, so
the runner (or, distributed, every worker) kills all users of the previous step — their in-flight
requests end as "cancelled" records that count in no step — and at its next poll (~1 s later,
once the runner reports no users) returns the step's N users at a spawn rate of at least N, so
all N start together and send their first requests at once. Those first requests carry the tag of
the phase after the ramp ("warmup", or "measure" without a warm-up: they open the window), so they
count in distributed runs too, where workers start sending before the master hears that spawning
is complete.
"""

from __future__ import annotations

import math
import time
from typing import Any

from locust import LoadTestShape
from locust.runners import STATE_MISSING, MasterRunner

from harness.load import runstate
from harness.load.distributed import BRIEF_LOSS_S, degraded_steps
from harness.load.health import WorkerHealth, summarize
from harness.load.locust.monitor import ClientMonitor
from harness.load.locust.users import shared
from harness.load.plan import SweepPlan, fixed_plan
from harness.load.progress import progress_line

STEP_MESSAGE = "harness_step"
WORKERS_SPAWN_MAX_S = 60.0  # a ramp waiting for workers to report their users ends anyway after this
# Distributed, the window counts reach the master with the workers' stats reports: a cool-down lasts at
# least one report interval ([distributed] report_every_s) and this, so requests sent just before the
# window closed are seen.
DISTRIBUTED_COOLDOWN_EXTRA_S = 1.0


class PlanShape(LoadTestShape):
    """A LoadTestShape driven by a SweepPlan; subclasses say how to build the plan."""

    abstract = True
    # Set by harness.load.locust.listeners.register: resolves a new test's configuration. Locust's
    # shape worker ticks before it fires test_start, so the first tick of a test calls it.
    before_test: Any = None

    def __init__(self, plan: SweepPlan | None = None) -> None:
        super().__init__()
        self.plan = plan
        self.monitor: ClientMonitor | None = None
        self._wall0: float | None = None
        self._cpu_at: list[float | None] = []  # CPU seconds at the start of each span
        self._worker_cpu: list[tuple[float, float]] = []  # (wall, max worker CPU %), master only
        self.worker_health = WorkerHealth()  # master only: the workers' own lag and CPU samples
        self.losses: list[dict[str, Any]] = []  # master only: workers lost (shipping.MasterReceiver)
        self.brief_loss_s = BRIEF_LOSS_S  # master only: [distributed] heartbeat_liveness_s
        self._cpu_end: float | None = None
        self._done_at: float | None = None  # monotonic time the plan ended
        self._ticked = False  # a tick since the last reset_time (see reset_time)
        self._new_test = True
        self._cut_short: int | None = None  # the step whose window stop_clock closed early
        # master only: each worker's window counts, {client id: {(window name, SENT|ENDED): n}}
        self._window_by_worker: dict[str, dict[tuple[str, str], int]] = {}

    def make_plan(self) -> SweepPlan:
        raise NotImplementedError

    def reset_time(self) -> None:
        """Locust calls this twice per test: from start_shape (before the shape's first tick: a new
        test, whose plan is built afresh at that tick — the web UI's "New" button sweeps from the
        first step again) and from start() after test_start (the plan of this test's first tick
        stays; only the clocks are re-anchored)."""
        super().reset_time()
        self._wall0 = time.time()
        if not self._ticked:
            self._new_test = True
            if type(self).make_plan is not PlanShape.make_plan:  # else a plan given to the constructor
                self.plan = None
            self._cpu_at.clear()
            self._worker_cpu.clear()
            self._cpu_end = None
            self._done_at = None
            self._cut_short = None
            self._window_by_worker.clear()
        self._ticked = False

    def completed(self) -> int:
        """Successful requests so far (Locust's Aggregated row counts each request once)."""
        total = self.runner.stats.total
        return total.num_requests - total.num_failures

    def worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        """Master: a worker's stats report (Locust's `worker_report` event; entries are deltas since
        its last report); its window counts are kept per worker, see `window_counts`."""
        mine = self._window_by_worker.setdefault(client_id, {})
        for entry in data.get("stats") or ():
            key = (entry.get("name"), entry.get("method"))
            if key[1] in (runstate.WINDOW_SENT, runstate.WINDOW_ENDED):
                mine[key] = mine.get(key, 0) + int(entry.get("num_requests") or 0)

    def window_counts(self, step: int) -> tuple[int, int]:
        """(sent, still open) of requests sent in step `step`'s window, from the users' live counts
        (harness.load.locust.users; distributed: summed over the workers' stats reports).

        Distributed, a lost worker (gone, or missing its heartbeats) never reports its open requests
        as ended: they are not waited for (its records that did arrive count as usual, the rest are
        missing and the step is flagged degraded by harness.load.locust.shipping)."""
        name = runstate.window_name(step)
        if isinstance(self.runner, MasterRunner) and self._window_by_worker:
            sent_key, ended_key = (name, runstate.WINDOW_SENT), (name, runstate.WINDOW_ENDED)
            clients = self.runner.clients
            n_sent = n_open = 0
            for client_id, counts in self._window_by_worker.items():
                sent = counts.get(sent_key, 0)
                n_sent += sent
                node = clients.get(client_id)
                if node is not None and node.state != STATE_MISSING:
                    n_open += max(sent - counts.get(ended_key, 0), 0)
            return n_sent, n_open
        entries = self.runner.stats.entries
        sent = entries.get((name, runstate.WINDOW_SENT))
        ended = entries.get((name, runstate.WINDOW_ENDED))
        n_sent = sent.num_requests if sent is not None else 0
        n_ended = ended.num_requests if ended is not None else 0
        return n_sent, max(n_sent - n_ended, 0)

    def tick(self) -> tuple[int, float] | None:
        self._ticked = True
        if self._new_test:
            self._new_test = False
            if self.before_test is not None and self.runner is not None:
                self.before_test(self.runner.environment)
        current = self.plan.current() if self.plan else None
        if self._workers_behind(current):
            return self._target(current), current.spawn_rate  # hold the ramp (see _workers_behind)
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
            and self.runner.user_count < self._target(current)
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
            and user_count == self._target(current)
            and not self._workers_behind(current)
        ):
            self._advance(spawned=True)

    def _advance(self, spawned: bool) -> tuple[int, float] | None:
        if self.plan is None:
            self.plan = self.make_plan()
            self.runner.environment.events.spawning_complete.add_listener(self._on_spawned)
            if self.monitor is None:  # a locustfile run (web UI, headless, master): watch this process
                env = self.runner.environment
                self.monitor = getattr(env, "harness_monitor", None) or ClientMonitor().start()
        if self._wall0 is None:
            self._wall0 = time.time() - self.get_run_time()
        now = self.get_run_time()
        current = self.plan.current()
        sent, open_ = self.window_counts(current.step) if current is not None else (0, 0)
        tick = self.plan.tick(now, self.completed(), spawned=spawned, window_sent=sent, window_open=open_)
        cpu = self.monitor.cpu_seconds() if self.monitor else None
        while len(self._cpu_at) < len(self.plan.spans):
            self._cpu_at.append(cpu)
        if isinstance(self.runner, MasterRunner) and self.runner.clients:
            usage = max(w.cpu_usage for w in self.runner.clients.values())
            self._worker_cpu.append((time.time(), usage))
        if tick is None:
            if self._done_at is None:
                self._done_at = time.monotonic()
                self._cpu_end = cpu
                last = self.plan.spans[-1]
                self._tag(last.step, last.users, "done")
            if self._workers_still_running():
                return 0, 1000.0
            return None
        users = self._target(tick)
        # an open-loop step's schedules run on its ramp's start (when its drivers are started), a
        # trace's on its window's (its drivers wait for every load generator's, harness.load.plan)
        mine = [sp for sp in self.plan.spans if sp.step == tick.step]
        first = "measure" if self.plan.steps[tick.step].trace is not None else "ramp"
        start = next((sp.start for sp in mine if sp.phase == first), mine[0].start)
        self._tag(tick.step, tick.step_users, tick.tag, self.drivers(), self._wall0 + start)
        # an open-loop step's drivers start at once
        return users, tick.spawn_rate if users == tick.users else max(tick.spawn_rate, float(users))

    def _workers_still_running(self) -> bool:
        """Distributed: the sweep's end first stops every worker's users (their last requests end
        as records, which reach the master before it drains the workers): Locust's headless quit
        would otherwise stop the master before the workers, and their last records would be lost."""
        return (
            isinstance(self.runner, MasterRunner)
            and self.runner.user_count > 0
            and self._done_at is not None
            and time.monotonic() - self._done_at < WORKERS_SPAWN_MAX_S
        )

    def drivers(self) -> int:
        """Load generators that share an open-loop step's rate: the workers, or this process."""
        if isinstance(self.runner, MasterRunner):
            return max(1, len(self.runner.clients))
        return 1

    def _target(self, tick: Any) -> int:
        """The users Locust must run for a tick: an open-loop step runs one arrival driver per load
        generator (harness.load.locust.arrivals) instead of its nominal single user."""
        if tick.users and self.plan is not None and self.plan.steps[tick.step].rate is not None:
            return self.drivers()
        return tick.users

    def _tag(
        self, step: int, users: int, phase: str, drivers: int = 1, start_wall: float | None = None
    ) -> None:
        runstate.set_step(step, users, phase, drivers, start_wall)
        if isinstance(self.runner, MasterRunner):
            self.runner.send_message(STEP_MESSAGE, [step, users, phase, drivers, start_wall])

    def progress(self) -> str | None:
        """The sweep's progress line now (None before the plan's first tick or after its end);
        the live figures come from the record sink (`shared.live`), a master's too."""
        plan = self.plan
        tick = plan.current() if plan else None
        if tick is None or plan is None:
            return None
        now = self.get_run_time()
        spec = plan.steps[tick.step]
        load = tick.users if spec.rate is None else spec.label  # "20 req/s", "trace synthetic"
        steps = None if getattr(plan, "adaptive", False) else tick.steps  # a search: not known ahead
        return progress_line(tick.step, steps, load, tick.phase, now - plan.spans[-1].start,
                             shared.live.steps.get(tick.step), plan.time_left(now))

    def stop_clock(self) -> None:
        """Close an open span (a run stopped by hand or by Ctrl-C) at the current time; a
        measurement window whose rule had not ended (a finite one) is marked cut short."""
        if self.plan and self.plan.spans and self.plan.spans[-1].end is None:
            span = self.plan.spans[-1]
            span.end = self.get_run_time()
            if span.phase == "measure" and math.isfinite(self.plan.steps[span.step].measure.max_s):
                self._cut_short = span.step
            self._cpu_end = self.monitor.cpu_seconds() if self.monitor else None

    def wall_spans(self) -> list[tuple[int, int, str, float, float | None]]:
        """Every phase so far as (step, users, phase, start, end or None) on the wall clock."""
        if self.plan is None or self._wall0 is None:
            return []
        w0 = self._wall0
        return [(s.step, s.users, s.phase, w0 + s.start, None if s.end is None else w0 + s.end)
                for s in self.plan.spans]

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
                    **({"rate": spec.rate, "arrival": spec.arrival, "burstiness": spec.burstiness,
                        "max_concurrency": spec.max_concurrency} if spec.rate is not None else {}),
                    **({"trace": spec.trace, "speed": spec.speed} if spec.trace is not None else {}),
                    "min_requests": spec.measure.min_requests,
                    "warmup_rule": spec.warmup.describe(),
                    "measure_rule": spec.measure.describe(),
                    "phases": {},
                },
            )
            end_wall = None if span.end is None else self._wall0 + span.end
            entry["phases"][span.phase] = {
                "tag": span.tag,
                "start_wall": self._wall0 + span.start,
                "end_wall": end_wall,
                "completed": span.completed,
                "cpu_start_s": cpu_marks[i],
                "cpu_end_s": cpu_marks[i + 1] if span.end is not None else None,
            }
            if span.phase == "measure" and span.step == self._cut_short:
                entry["phases"]["measure"]["cut_short"] = True
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
        steps = [out[k] for k in sorted(out)]
        for step, flags in degraded_steps(steps, self.losses, self.brief_loss_s).items():
            out[step]["degraded"] = flags
        return steps


class SweepShape(PlanShape):
    """The configuration's step sweep (the run's RunConfig, resolved by the listeners)."""

    def make_plan(self) -> SweepPlan:
        cfg = shared.config
        distributed = isinstance(self.runner, MasterRunner)
        cooldown_min = cfg.distributed.report_every_s + DISTRIBUTED_COOLDOWN_EXTRA_S if distributed else 0.0
        return SweepPlan(
            cfg.plan_steps(), cfg.steps.spawn_rate, restart=cfg.steps.restart, cooldown_min_s=cooldown_min,
            stop_min_s=cfg.steps.stop_min_s,
        )


class FixedUsersShape(PlanShape):
    """Constant users (the web UI's user count, default 8) until stopped; one step, all measured
    after a 10 s warm-up."""

    use_common_options = True

    def make_plan(self) -> SweepPlan:
        opts = getattr(self.runner.environment, "parsed_options", None)
        users = int(getattr(opts, "num_users", None) or 8)
        rate = float(getattr(opts, "spawn_rate", None) or users)
        return fixed_plan(users, rate, warmup_s=10.0)
