"""Distributed cool-down: the master sums its workers' window counts, but a lost worker's open
requests (it will never report them ended) are not waited for, so the step closes on time.

Runs in a child interpreter: harness.load.locust imports locust, which gevent-patches the process
(see test_shape_rerun).
"""

from __future__ import annotations

from support.child import run_ok

CHILD = r"""
from locust.runners import STATE_MISSING, STATE_RUNNING, MasterRunner, WorkerNode

from harness.load import runstate
from harness.load.locust.shapes import PlanShape


class FakeMaster(MasterRunner):
    def __init__(self, clients):  # no sockets: only what window_counts reads
        self.clients = clients


def report(sent, ended, step=0):
    name = runstate.window_name(step)
    return {"stats": [{"name": name, "method": runstate.WINDOW_SENT, "num_requests": sent},
                      {"name": name, "method": runstate.WINDOW_ENDED, "num_requests": ended},
                      {"name": "/generate_stream", "method": "POST", "num_requests": 99}]}


a, b = WorkerNode("a", state=STATE_RUNNING), WorkerNode("b", state=STATE_RUNNING)
shape = PlanShape()
shape.runner = FakeMaster({"a": a, "b": b})
shape.worker_report("a", report(5, 3))
shape.worker_report("b", report(4, 4))
shape.worker_report("a", report(2, 1))  # deltas add up
assert shape.window_counts(0) == (11, 3), shape.window_counts(0)
assert shape.window_counts(1) == (0, 0)
a.state = STATE_MISSING  # lost: its 3 open requests will never be reported ended
assert shape.window_counts(0) == (11, 0)
a.state = STATE_RUNNING  # back: counted again
del shape.runner.clients["b"]
shape.worker_report("b", report(1, 0))  # a report from a worker no longer connected: not waited for
assert shape.window_counts(0) == (12, 3)
print("OK")
"""


def test_a_lost_workers_open_requests_are_not_waited_for():
    run_ok(CHILD)
