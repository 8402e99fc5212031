"""The step sweep (and a fixed-users shape) as a locustfile, for the web UI and master/worker runs.

    HARNESS_SCENARIO=scenarios/default.toml locust -f locustfiles/sweep.py --host URL --class-picker
    locust -f locustfiles/sweep.py --master --headless --host URL --records-dir results/x   # + workers:
    locust -f locustfiles/sweep.py --worker --master-host 127.0.0.1

The scenario's steps, windows and HARNESS_* overrides come from $HARNESS_SCENARIO (default
scenarios/default.toml); the users' options (--api, --input-tokens-mean, --records-dir, ...) are
Locust options. The shape runs on the master and broadcasts each step tag to the workers. At the end
steps.json is written into --records-dir, so `python -m harness report DIR` rebuilds the report.
"""

from locust import events

from harness.load import sweep
from harness.load.users import ApiUser

events.init.add_listener(sweep.on_init)
events.test_stop.add_listener(sweep.write_steps_on_stop)


class SweepUser(ApiUser):
    """One streaming request after another on the route chosen by --api."""


class StepSweep(sweep.SweepShape):
    """Users 1, 2, 4, ... with a warm-up and a measurement window per step (from the scenario)."""


class FixedUsers(sweep.FixedUsersShape):
    """The user count from the UI, held until stopped (10 s warm-up, then measured)."""
