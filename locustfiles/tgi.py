"""Locust against TGI's native streaming route: `locust -f locustfiles/tgi.py --host http://HOST:PORT`.

Options (--input-tokens-mean, --records-dir, ...): see `harness.load.options` or `locust --help`.
"""

from harness.load.users import TgiStreamUser


class TgiUser(TgiStreamUser):
    """POST /generate_stream, one request after another; per-request records in --records-dir."""
