"""A second test started from the web UI sweeps from the first step again."""

from __future__ import annotations

from harness.scenario import PhaseRule, StepSpec
from harness.shape import SweepPlan
from harness.sweep import PlanShape


class TwoSteps(PlanShape):
    def make_plan(self) -> SweepPlan:
        rule = PhaseRule(min_s=1.0, max_s=1.0, min_requests=0)
        return SweepPlan([StepSpec(users=1, warmup=rule, measure=rule),
                          StepSpec(users=2, warmup=rule, measure=rule)], spawn_rate=10)


def test_used_plan_is_rebuilt_when_a_new_test_starts():
    shape = TwoSteps()
    shape.reset_time()
    assert shape.plan is None  # built lazily at the first tick
    shape.plan = shape.make_plan()
    now = 0.0
    while shape.plan.tick(now, 0) is not None:  # run the first test to its end
        now += 0.5
        assert now < 100, "the plan never ended"
    used = shape.plan
    assert used.spans and used.current() is None
    shape._cpu_at.append(1.0)
    shape.reset_time()
    assert shape.plan is not used and shape.plan.spans == [] and shape._cpu_at == []
    first = shape.plan.tick(0.0, 0)
    assert first is not None and first.step == 0 and first.users == 1


def test_plan_given_to_the_constructor_is_kept():
    plan = TwoSteps().make_plan()
    shape = PlanShape(plan)
    shape.reset_time()
    assert shape.plan is plan
