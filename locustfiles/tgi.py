"""Locust against TGI's native streaming route: `locust -f locustfiles/tgi.py --host http://HOST:PORT`.

Options: every configuration setting (`--input-mean`, `--records-dir`, `--scenario`, ...): `--help`.
"""

from locust import events

from harness.load.locust.listeners import register
from harness.load.locust.users import TgiStreamUser

register(events)


class TgiUser(TgiStreamUser):
    """POST /generate_stream, one request after another; per-request records in --records-dir."""
