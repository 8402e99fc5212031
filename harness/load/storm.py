"""Error storms: when to stop a run that only collects failures, and how hard a failing user retries.

A server that answers every request with the same error (a 404 on the wrong route, connection
refused after it died, a 401 without the token) is not being measured, it is being hammered: the
run stops with the error's type and a hint instead (exit 4, harness.exitcodes). Rules, per step:

- the first `first_n` finished requests of a step all failed with the same error (type + HTTP
  status), or
- later in a step, `first_n` failures in a row with the same error (`gone_n` when the error is a
  refused or reset connection: the server died), except HTTP 429 (an overloaded server refusing
  the extra users of a step is a measurement, not a storm), or
- every user's request of the step timed out without a single token: "no response from the
  server in <timeout> s".

Cancelled requests (a user stopped) are neither failures nor successes here. Pure: records in,
a verdict out; the Locust rim (harness.load.locust.guard) feeds it and stops the runner.

`Backoff`: a user whose requests fail at once (connection refused/reset, HTTP 429/503) would loop
thousands of times a second, each loop a record; it waits 50 ms, doubling up to 1 s, between such
failures.
Nothing is dropped (every request sent is still a record): fewer are sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.records.record import Record

FIRST_N = 50
GONE_N = 20
_FAST_FAILURES = ("connection", "truncated", "protocol")


@dataclass
class _Step:
    users: int = 0
    finished: int = 0
    ok: int = 0
    first_error: tuple[str, int | None] | None = None
    same: int = 0  # failures equal to first_error among the first FIRST_N, while all failed
    timeouts_silent: int = 0
    message: str = ""
    run_key: tuple[str, int | None] | None = None  # the current run of equal failures
    run_len: int = 0
    run_message: str = ""


def hint(error_type: str, status: int | None, api: str, timeout_s: float | None = None) -> str:
    """What to do about a storm of this error."""
    if status == 404 or status == 405:
        return {
            "generate_stream": "the server has no /generate_stream (not TGI?): use --api chat",
            "chat": "the server has no /v1/chat/completions: use --api generate_stream or completions",
            "completions": "the server has no /v1/completions: use --api chat or generate_stream",
        }.get(api, "wrong route: check --api")
    if status in (401, 403):
        return "the server refuses our credentials: set --bearer-token-env or --headers"
    if status == 422 or error_type == "validation":
        return "the server rejects the requests: check --model-name and the token budget against its limits"
    if status == 429 or error_type == "overloaded":
        return "the server refuses the load: fewer users, or a larger max_concurrent_requests"
    if status is not None and status >= 500:
        return "the server fails every request: see its log"
    if error_type == "connection":
        return "the server is gone or refuses connections: is it running? check --url"
    if error_type == "timeout":
        return f"no response from the server in {timeout_s:g} s" if timeout_s else "requests time out"
    return "see the records' error field"


def _storm(key: tuple[str, int | None], message: str, rec: Record, timeout_s: float | None) -> str:
    etype, status = key
    what = f"{etype} (HTTP {status})" if status is not None else etype
    return f"{what}: {message[:160]} — {hint(etype, status, rec.api, timeout_s)}; stopping"


@dataclass
class StormWatch:
    """Feed every record with `add`; `verdict` is None, or the one line to stop the run with."""

    first_n: int = FIRST_N
    gone_n: int = GONE_N
    timeout_s: float | None = None
    steps: dict[int | None, _Step] = field(default_factory=dict)
    verdict: str | None = None

    def _run_limit(self, error_type: str) -> int:
        return self.gone_n if error_type == "connection" else self.first_n

    def add(self, rec: Record) -> str | None:
        if rec.error_type == "cancelled" or self.verdict is not None:
            return self.verdict
        st = self.steps.get(rec.step)
        if st is None:
            st = self.steps[rec.step] = _Step(users=rec.users or 1)
        st.finished += 1
        if rec.ok:
            st.ok += 1
            st.run_key, st.run_len = None, 0
            return None
        key = (rec.error_type or "error", rec.status)
        if st.first_error is None:
            st.first_error = key
            st.message = rec.error or ""
        if st.ok == 0 and key == st.first_error and st.same == st.finished - 1:
            st.same += 1
        if key == st.run_key:
            st.run_len += 1
        else:
            st.run_key, st.run_len, st.run_message = key, 1, rec.error or ""
        if rec.error_type == "timeout" and rec.output_tokens == 0 and rec.status is None:
            st.timeouts_silent += 1
        where = "" if rec.step is None else f"step {rec.step + 1} ({st.users} users): "
        if st.ok == 0 and st.timeouts_silent == st.finished and st.finished >= st.users:
            self.verdict = (f"{where}no response from the server in {self.timeout_s or 0:g} s "
                            f"({st.finished} requests timed out without a token); stopping")
        elif st.same >= self.first_n:
            what = _storm(key, st.message, rec, self.timeout_s)
            self.verdict = f"{where}the first {st.same} requests all failed with {what}"
        elif st.ok and key[1] != 429 and st.run_len >= self._run_limit(key[0]):
            what = _storm(key, st.run_message, rec, self.timeout_s)
            self.verdict = f"{where}{st.run_len} requests in a row failed with {what}"
        return self.verdict


@dataclass
class Backoff:
    """Delay before a user's next request after failures that came back at once."""

    first_s: float = 0.05
    max_s: float = 1.0
    current: float = 0.0
    suppressed: int = 0  # how many waits were imposed (shown, never hidden)

    def after(self, rec: Record) -> float:
        """Seconds to wait after `rec` (0 after a success or a slow failure)."""
        refused = rec.status in (429, 503)  # the server asks for less (Retry-After is not kept)
        if (rec.error_type in _FAST_FAILURES or refused) and rec.output_tokens == 0:
            self.current = min(self.max_s, self.current * 2 if self.current else self.first_s)
            self.suppressed += 1
            return self.current
        self.current = 0.0
        return 0.0
