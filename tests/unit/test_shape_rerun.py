"""A second test started from the web UI sweeps from the first step again.

Runs in a child interpreter: harness.load.locust imports locust, which gevent-patches the process, and
must come before ssl/urllib3 — which other test modules in this process have imported already.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
from harness.load.locust.shapes import PlanShape
from harness.config.model import PhaseRule, StepSpec
from harness.load.plan import SweepPlan


class TwoSteps(PlanShape):
    def make_plan(self):
        rule = PhaseRule(min_s=1.0, max_s=1.0, min_requests=0)
        return SweepPlan([StepSpec(users=1, warmup=rule, measure=rule),
                          StepSpec(users=2, warmup=rule, measure=rule)], spawn_rate=10)


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
shape.reset_time()  # Locust calls this when the next test starts
assert shape.plan is not used and shape.plan.spans == [] and shape._cpu_at == []
first = shape.plan.tick(0.0, 0)
assert first is not None and first.step == 0 and first.users == 1

given = TwoSteps().make_plan()
kept = PlanShape(given)
kept.reset_time()
assert kept.plan is given  # a plan given to the constructor is kept
print("OK")
"""


def test_used_plan_is_rebuilt_when_a_new_test_starts():
    proc = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stdout + proc.stderr
