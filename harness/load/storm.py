"""Error storms: when to stop a run that only collects failures, and how hard a failing user retries.

A server that answers every request with the same error (a 404 on the wrong route, connection
refused after it died, a 401 without the token) is not being measured, it is being hammered: the
run stops with the error's type and a hint instead (exit 4, harness.exitcodes). Rules, per step:

- the first `first_n` finished requests of a step all failed with the same error (type + HTTP
  status), or
- every user's request of the step timed out without a single token: "no response from the
  server in <timeout> s".

Cancelled requests (a user stopped) are neither failures nor successes here. Pure: records in,
a verdict out; the Locust rim (harness.load.locust.guard) feeds it and stops the runner.

`Backoff`: a user whose requests fail at once (connection refused/reset) would loop thousands of
times a second, each loop a record; it waits 50 ms, doubling up to 1 s, between such failures.
Nothing is dropped (every request sent is still a record): fewer are sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.records.record import Record

FIRST_N = 50
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


@dataclass
class StormWatch:
    """Feed every record with `add`; `verdict` is None, or the one line to stop the run with."""

    first_n: int = FIRST_N
    timeout_s: float | None = None
    steps: dict[int | None, _Step] = field(default_factory=dict)
    verdict: str | None = None

    def add(self, rec: Record) -> str | None:
        if rec.error_type == "cancelled" or self.verdict is not None:
            return self.verdict
        st = self.steps.get(rec.step)
        if st is None:
            st = self.steps[rec.step] = _Step(users=rec.users or 1)
        st.finished += 1
        if rec.ok:
            st.ok += 1
            return None
        key = (rec.error_type or "error", rec.status)
        if st.first_error is None:
            st.first_error = key
            st.message = rec.error or ""
        if st.ok == 0 and key == st.first_error and st.same == st.finished - 1:
            st.same += 1
        if rec.error_type == "timeout" and rec.output_tokens == 0 and rec.status is None:
            st.timeouts_silent += 1
        where = "" if rec.step is None else f"step {rec.step + 1} ({st.users} users): "
        if st.ok == 0 and st.timeouts_silent == st.finished and st.finished >= st.users:
            self.verdict = (f"{where}no response from the server in {self.timeout_s or 0:g} s "
                            f"({st.finished} requests timed out without a token); stopping")
        elif st.same >= self.first_n:
            etype, status = key
            what = f"{etype} (HTTP {status})" if status is not None else etype
            self.verdict = (f"{where}the first {st.same} requests all failed with {what}: "
                            f"{st.message[:160]} — {hint(etype, status, rec.api, self.timeout_s)}; stopping")
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
        if rec.error_type in _FAST_FAILURES and rec.output_tokens == 0:
            self.current = min(self.max_s, self.current * 2 if self.current else self.first_s)
            self.suppressed += 1
            return self.current
        self.current = 0.0
        return 0.0
