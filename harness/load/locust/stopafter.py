"""`--stop-after-requests N` on Locust: each process's RequestBudget (harness.load.budget), armed at
each test's start, and the test stopped once the budget is spent and nothing is in flight.

Local runner: the process's budget is N; when it is done, the test stops (headless: Locust quits,
as at the end of `--run-time`; web UI: the test stops and the UI stays). Distributed: at test
start the master splits N across its active workers and sends each its share (a custom message,
sent before Locust's spawn messages, on the same socket, so it arrives first); each worker says
when its share is done, and the master stops the test when all have. A worker that runs no user
never spends its share: with fewer users than workers, the master warns and the test ends by time.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent
from locust.runners import MasterRunner, WorkerRunner

from harness.load.budget import RequestBudget, split
from harness.load.locust.users import shared

log = logging.getLogger(__name__)
QUOTA_MESSAGE = "harness_request_quota"  # master → worker: this test's share (None: no budget)
DONE_MESSAGE = "harness_quota_done"  # worker → master: share sent, nothing in flight


def register_messages(runner: Any) -> None:
    """At init: the custom messages of this runner's role."""
    if isinstance(runner, WorkerRunner):
        def quota(environment: Any, msg: Any, **_: Any) -> None:
            share = msg.data
            tell = (lambda: _send_done(runner)) if share is not None else None
            shared.budget = RequestBudget(share, on_done=tell)

        runner.register_message(QUOTA_MESSAGE, quota)
    elif isinstance(runner, MasterRunner):
        def done(environment: Any, msg: Any, **_: Any) -> None:
            state = getattr(environment, "harness_quota", None)
            if state is None:
                return
            state["done"].add(str(msg.node_id))
            if state["done"] >= state["workers"] and not state["stopping"]:
                state["stopping"] = True
                log.info("--stop-after-requests: %d requests sent and ended on every worker: "
                         "stopping the test", state["total"])
                gevent.spawn(_stop_test, environment)

        runner.register_message(DONE_MESSAGE, done)


def _send_done(runner: Any) -> None:
    if shared.writer is not None:
        shared.writer.flush()  # the master may read the records directory as soon as it stops the test
    try:
        runner.send_message(DONE_MESSAGE, None)
    except Exception as exc:  # noqa: BLE001 - the master is gone: nothing to tell
        log.debug("quota done not sent: %s", exc)


def arm(environment: Any, limit: int | None) -> None:
    """At test start on the local runner or the master: this test's budget (None: none)."""
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        workers = [w.id for w in runner.clients.ready + runner.clients.running + runner.clients.spawning]
        shares = split(limit, len(workers)) if limit is not None else [None] * len(workers)
        for node, share in zip(workers, shares, strict=True):
            runner.send_message(QUOTA_MESSAGE, share, client_id=node)
        environment.harness_quota = None
        if limit is not None:
            environment.harness_quota = {"workers": {str(w) for w in workers}, "done": set(),
                                         "stopping": False, "total": limit}
            users = int(getattr(runner, "target_user_count", 0) or 0)
            if 0 < users < len(workers):
                log.warning("--stop-after-requests %d is split over %d workers but only %d users run: "
                            "a worker without users never sends its share", limit, len(workers), users)
        return

    def done() -> None:
        log.info("--stop-after-requests: %d requests sent and ended: stopping the test", limit)
        gevent.spawn(_stop_test, environment)

    shared.budget = RequestBudget(limit, on_done=done if limit is not None else None)


def _stop_test(environment: Any) -> None:
    """Stop as Locust's own --run-time does: headless quits, the web UI stops the test and stays."""
    runner = environment.runner
    opts = environment.parsed_options
    if getattr(opts, "headless", False) or getattr(environment, "web_ui", None) is None:
        runner.quit()
    else:
        runner.stop()
