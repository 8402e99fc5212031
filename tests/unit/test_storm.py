"""When an error storm stops a run (harness.load.storm), and how a failing user backs off."""

from __future__ import annotations

from support.records import make_record

from harness.load.storm import Backoff, StormWatch


def failed(error_type: str = "http_404", status: int | None = 404, step: int = 0, users: int = 4, **kw):
    kw = {"token_us": (), "output_tokens": 0, **kw}
    return make_record(step=step, users=users, error_type=error_type, status=status, error=f"HTTP {status}",
                       **kw)


def ok(step: int = 0, users: int = 4):
    return make_record(step=step, users=users)


def test_fifty_equal_failures_at_the_start_of_a_step_stop_with_a_hint() -> None:
    watch = StormWatch(first_n=50)
    for _ in range(49):
        assert watch.add(failed()) is None
    verdict = watch.add(failed())
    assert verdict is not None
    assert "first 50 requests all failed with http_404 (HTTP 404)" in verdict and "use --api chat" in verdict


def test_one_success_or_another_error_in_the_first_fifty_is_no_storm() -> None:
    for odd in (ok(), failed("overloaded", 429)):
        watch = StormWatch(first_n=50)
        watch.add(failed())
        watch.add(odd)
        for _ in range(60):
            watch.add(failed("overloaded", 429) if odd.status == 429 else failed())
        assert watch.verdict is None or odd.ok


def test_cancelled_requests_count_for_nothing() -> None:
    watch = StormWatch(first_n=3)
    for _ in range(10):
        watch.add(failed("cancelled", None))
    assert watch.verdict is None


def test_a_server_that_dies_mid_step_stops_after_twenty_refused_connections() -> None:
    watch = StormWatch(first_n=50, gone_n=20)
    for _ in range(30):
        watch.add(ok())
    watch.add(failed("truncated", 200))
    for _ in range(19):
        assert watch.add(failed("connection", None)) is None
    verdict = watch.add(failed("connection", None))
    assert verdict is not None and "20 requests in a row failed with connection" in verdict
    assert "is it running" in verdict


def test_an_overloaded_server_refusing_extra_users_mid_step_is_a_measurement() -> None:
    watch = StormWatch(first_n=50)
    watch.add(ok())
    for _ in range(500):
        watch.add(failed("overloaded", 429))
    assert watch.verdict is None


def test_every_users_request_timing_out_without_a_token_is_no_response() -> None:
    watch = StormWatch(timeout_s=5)
    for _ in range(3):
        assert watch.add(failed("timeout", None, users=4)) is None
    verdict = watch.add(failed("timeout", None, users=4))
    assert verdict is not None and "no response from the server in 5 s" in verdict


def test_steps_are_judged_apart() -> None:
    watch = StormWatch(first_n=5)
    for _ in range(4):
        watch.add(failed(step=0))
    for _ in range(4):
        watch.add(failed(step=1))
    assert watch.verdict is None


def test_backoff_doubles_after_fast_failures_and_resets_on_success() -> None:
    b = Backoff(first_s=0.05, max_s=1.0)
    waits = [b.after(failed("connection", None)) for _ in range(7)]
    assert waits == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert b.suppressed == 7
    assert b.after(ok()) == 0.0
    assert b.after(failed("http_503", 503)) == 0.05  # the server asks for less
    assert b.after(failed("generation", 200, token_us=(5,), output_tokens=1)) == 0.0  # slow failure
