"""The LLM tab of Locust's web UI: live TTFT/ITL/tokens/s charts, the step table, the run's report.

Locust's web UI is a prebuilt React bundle; its extension points are `extended_tabs` (a tab whose
panel shows an `extended_tables` table, if any) and routes on `environment.web_ui.app`. The tab
itself is Locust's (an "LLM" entry with no table); its content is drawn by our own script
(static/llm-tab.js, plain SVG, no chart library: Locust's bundled ECharts is not reachable from
outside the bundle), which the index page loads through a one-line `<script>` added to Locust's
HTML, and which shows itself while the LLM tab is selected (`?tab=llm`).

Routes (all under /llm/): `state` (JSON: phase, time left, series, step table, report link),
`static/<file>`, `report` (builds report.html with `harness report`'s own function once the run
has stopped, then redirects to it), `run/<file>` (the run directory's files).

Every figure comes from the records in this process's sink (harness.load.liveview.LiveView: the
report's own functions), never from Locust's bucketed response times. On a master that is what the
workers send it. The start form preselects our step sweep (first in the shape list).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import gevent
from flask import Blueprint, Response, redirect, request, send_from_directory
from locust.runners import STATE_RUNNING, STATE_SPAWNING, STATE_STOPPED, MasterRunner

from harness.analysis.attribution import Window
from harness.load.liveview import LiveView, Span
from harness.load.locust import webauth
from harness.load.locust.offloop import off_loop
from harness.load.locust.shapes import PlanShape, SweepShape
from harness.load.locust.users import run_dir, shared
from harness.report.inputs import StepInfo, steps_from_json

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")
TAB_KEY = "llm"
SAMPLE_EVERY_S = 1.0
PHASE_NAMES = {"stop": "stopping the previous step's users", "ramp": "ramp", "warmup": "warm-up",
               "measure": "measure", "cooldown": "cool-down (until the window's requests end)",
               "done": "done"}


class LlmTab:
    """The tab's state on one Locust environment (the master's or the single process's)."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.view = LiveView(spans=self.spans)
        self.test = 0  # which test of this UI session the series belong to
        self.stopped_sampled = True
        self.ended = False  # test_stop has fired (after the listeners wrote the run log's steps)

    # --- feeding ------------------------------------------------------------------------------

    def shape(self) -> PlanShape | None:
        shape = self.environment.shape_class
        return shape if isinstance(shape, PlanShape) else None

    def spans(self) -> list[Span]:
        shape = self.shape()
        return [Span(*s) for s in shape.wall_spans()] if shape else []

    def on_test_start(self, **_kw: Any) -> None:
        self.view.reset()
        self.test += 1
        self.stopped_sampled = False
        self.ended = False

    def on_test_stop(self, **_kw: Any) -> None:
        self.ended = True

    def sampler(self) -> None:
        while True:
            gevent.sleep(SAMPLE_EVERY_S)
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the live view must never take the run down
                log.exception("LLM tab: sampling failed")

    def tick(self) -> None:
        runner = self.environment.runner
        state = getattr(runner, "state", None)
        if state in (STATE_RUNNING, STATE_SPAWNING) or (state == STATE_STOPPED and not self.stopped_sampled):
            self.stopped_sampled = state == STATE_STOPPED
            point = self.view.sample(time.time(), self.in_flight())
            point["users"] = runner.user_count

    def in_flight(self) -> int | None:
        """Requests in flight, known only where the users run (a master sees the workers' users)."""
        return None if isinstance(self.environment.runner, MasterRunner) else shared.in_flight

    # --- reading ------------------------------------------------------------------------------

    def current(self) -> dict[str, Any] | None:
        shape = self.shape()
        if shape is None or shape.plan is None:
            return None
        plan = shape.plan
        now = shape.get_run_time()
        tick = plan.current()
        lo, hi = plan.time_left(now)
        if tick is None:
            last = plan.spans[-1] if plan.spans else None
            return {"step": last.step if last else None, "steps": len(plan.steps),
                    "users": last.users if last else None, "phase": "done",
                    "phase_name": PHASE_NAMES["done"], "phase_elapsed_s": 0, "left_s": [0, 0]}
        return {
            "step": tick.step,
            "steps": tick.steps,
            "users": tick.step_users,
            "phase": tick.phase,
            "phase_name": PHASE_NAMES.get(tick.phase, tick.phase),
            "phase_elapsed_s": now - plan.spans[-1].start,
            "left_s": [lo, None if hi == float("inf") else hi],
        }

    def infos(self) -> tuple[list[StepInfo], frozenset[int]]:
        """The report's StepInfo of each step whose window has opened (an open one ends now), and
        which of them are open."""
        shape = self.shape()
        if shape is None:
            return [], frozenset()
        data = shape.steps_json()
        closed = {i.step: i for i in steps_from_json(data)}
        out, still_open = [], set()
        for entry in data:
            m = entry["phases"].get("measure")
            if not m:
                continue
            if entry["step"] in closed:
                out.append(closed[entry["step"]])
            else:
                still_open.add(entry["step"])
                window = Window(m["start_wall"], max(time.time(), m["start_wall"]))
                out.append(StepInfo(step=entry["step"], users=entry["users"], window=window,
                                    min_requests=entry.get("min_requests", 0), rate=entry.get("rate"),
                                    spans=entry["phases"]))
        return out, frozenset(still_open)

    def state(self, since: float) -> dict[str, Any]:
        runner = self.environment.runner
        cfg = shared.config
        points = [p for p in self.view.points if p["t"] > since]
        tokens = [x for x in self.view.token_rate() if x[0] >= since - 120]
        infos, still_open = self.infos()
        return {
            "test": self.test,
            "state": runner.state,
            "now": time.time(),
            "distributed": isinstance(runner, MasterRunner),
            "current": self.current(),
            "spans": [s.__dict__ for s in self.spans()],
            "points": points,
            "tokens": tokens,
            "table": self.view.step_table(infos, cfg.target.price_per_hour, cfg.flags, still_open,
                                          slo=cfg.slo),
            "records": self.view.records,
            "run_dir": str(run_dir(cfg)) if self.test else None,
            "report": "llm/report" if self.ended else None,
        }


def install(environment: Any) -> LlmTab | None:
    """Add the LLM tab to this environment's web UI (none: nothing to do)."""
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is None:
        return None
    webauth.protect(web_ui)  # off loopback: basic auth (HARNESS_WEB_AUTH), or every request refused
    tab = LlmTab(environment)
    shared.subscribe(tab.view.add)
    environment.events.test_start.add_listener(tab.on_test_start)
    environment.events.test_stop.add_listener(tab.on_test_stop)  # after listeners.py's: steps written
    gevent.spawn(tab.sampler)
    _routes(web_ui.app, tab)
    web_ui.template_args["extended_tabs"] = [{"title": "LLM", "key": TAB_KEY}]
    _preselect_sweep(web_ui)
    return tab


def _preselect_sweep(web_ui: Any) -> None:
    """Put the step sweep first in the start form's shape list (the form selects the first)."""
    update = web_ui.update_template_args

    def update_and_reorder() -> None:
        update()
        names = web_ui.template_args.get("available_shape_classes") or []
        shapes = web_ui.environment.available_shape_classes or {}
        sweeps = [n for n in names if isinstance(shapes.get(n), SweepShape)]
        web_ui.template_args["available_shape_classes"] = sweeps + [n for n in names if n not in sweeps]

    web_ui.update_template_args = update_and_reorder
    update_and_reorder()


def _routes(app: Any, tab: LlmTab) -> None:
    bp = Blueprint("harness_llm", __name__, url_prefix="/llm")

    @bp.route("/state")
    def state() -> Response:
        since = float(request.args.get("since", 0) or 0)
        return Response(json.dumps(_finite(tab.state(since))), mimetype="application/json")

    @bp.route("/static/<path:name>")
    def static(name: str) -> Response:
        return send_from_directory(STATIC, name, max_age=0)

    @bp.route("/report")
    def report() -> Any:
        out = run_dir(shared.config)
        html = out / "report.html"
        if not out.is_dir():
            return Response(f"no run directory {out}", status=404)
        newest = max((p.stat().st_mtime for p in out.glob("*.jsonl")), default=0)
        if not html.exists() or html.stat().st_mtime < newest:
            from harness.report.build import build_report
            from harness.report.parquet import plain_rows_process

            plain_rows_process()  # a Locust process of ours hands pyarrow no pandas objects
            off_loop(build_report, out)
        return redirect("run/report.html")

    @bp.route("/run/<path:name>")
    def run_file(name: str) -> Response:
        return send_from_directory(run_dir(shared.config).resolve(), name, max_age=0)

    app.register_blueprint(bp)

    @app.after_request
    def add_script(response: Response) -> Response:
        if request.path == "/" and response.mimetype == "text/html" and not response.direct_passthrough:
            body = response.get_data(as_text=True)
            tag = '<script src="./llm/static/llm-tab.js"></script>'
            response.set_data(body.replace("</body>", tag + "</body>", 1))
        return response


def _finite(value: Any) -> Any:
    """NaN and infinities as null (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
