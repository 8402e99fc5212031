"""The step sweep (and a fixed-users shape) as a locustfile, for the web UI and master/worker runs.

    .venv/bin/locust -f locustfiles/sweep.py --scenario default --host URL --class-picker     # web UI :8089
    .venv/bin/locust -f locustfiles/sweep.py --master --headless --expect-workers 2 --scenario default \
        --host URL --records-dir results/dist                                                  # + workers:
    .venv/bin/locust -f locustfiles/sweep.py --worker --master-host 127.0.0.1

Every setting of the configuration is an option here too (`--help`), with its HARNESS_* variable;
the master resolves the configuration and Locust hands it to the workers. The shape runs on the
master and broadcasts each step tag to the workers. Records and the run log go to --records-dir
(default results/<run-id>), so `python -m harness report DIR` rebuilds the report.
"""

from locust import events

from harness.load.locust import shapes
from harness.load.locust.listeners import register
from harness.load.locust.users import ApiUser

register(events)


class SweepUser(ApiUser):
    """One streaming request after another on the configured route (request.api)."""


class StepSweep(shapes.SweepShape):
    """Users 1, 2, 4, ... with a warm-up and a measurement window per step (from the configuration)."""


class FixedUsers(shapes.FixedUsersShape):
    """The user count from the UI, held until stopped (10 s warm-up, then measured)."""
