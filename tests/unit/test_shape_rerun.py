"""Each test resolves its configuration before its plan's first tick, and a second test started
from the web UI sweeps from the first step again.

Runs in a child interpreter: harness.load.locust imports locust, which gevent-patches the process, and
must come before ssl/urllib3 — which other test modules in this process have imported already.
"""

from __future__ import annotations

from support.child import run_ok

CHILD = r"""
from harness.load.locust.shapes import PlanShape
from harness.config.model import PhaseRule, StepSpec
from harness.load.plan import SweepPlan


class TwoSteps(PlanShape):
    def make_plan(self):
        rule = PhaseRule(min_s=1.0, max_s=1.0, min_requests=0)
        return SweepPlan([StepSpec(users=1, warmup=rule, measure=rule),
                          StepSpec(users=2, warmup=rule, measure=rule)], spawn_rate=10)


from types import SimpleNamespace

prepared = []
PlanShape.before_test = staticmethod(prepared.append)  # what the listeners register


def fake_runner():
    events = SimpleNamespace(spawning_complete=SimpleNamespace(add_listener=lambda f: None))
    total = SimpleNamespace(num_requests=0, num_failures=0)
    return SimpleNamespace(environment=SimpleNamespace(events=events), user_count=0,
                           stats=SimpleNamespace(total=total), clients={})


shape = TwoSteps()
shape.runner = fake_runner()
shape.monitor = SimpleNamespace(cpu_seconds=lambda: 0.0, lags=[])
# Locust's order for one test: start_shape → reset_time → first tick → start() → test_start → reset_time
shape.reset_time()
assert shape.plan is None  # built lazily at the first tick
first = shape.tick()
assert prepared == [shape.runner.environment]  # the test's config is resolved before the first plan
assert first == (1, 10)
planned = shape.plan
shape.reset_time()  # start()'s call, after test_start: the first tick's plan stays
assert shape.plan is planned and len(prepared) == 1
now = 0.0
while shape.plan.tick(now, 0) is not None:  # run the first test to its end
    now += 0.5
    assert now < 100, "the plan never ended"
used = shape.plan
assert used.spans and used.current() is None
shape._cpu_at.append(1.0)
shape.reset_time()  # start_shape's call when the next test starts (the web UI's "New")
assert shape.plan is None and shape._cpu_at == []
assert shape.tick() == (1, 10) and shape.plan is not used and shape.plan.current().step == 0
assert len(prepared) == 2

given = TwoSteps().make_plan()
kept = PlanShape(given)
kept.reset_time()
assert kept.plan is given  # a plan given to the constructor is kept
print("OK")
"""


def test_plan_is_built_per_test_after_its_config_is_resolved():
    run_ok(CHILD)
