"""SLO objectives and goodput of a step (harness.analysis.slo), pure: made-up records, no clock."""

from __future__ import annotations

import math

import pytest
from support.records import make_record

from harness.analysis.slo import good_request, objectives, slo_result
from harness.config.model import RunConfig, Slo


def rec(i: int, ttft_ms: float, itl_ms: float, tokens: int = 5, **kw):
    """A request with the given TTFT and mean ITL: tokens at ttft, ttft + itl, ..."""
    token_us = tuple(int((ttft_ms + k * itl_ms) * 1000) for k in range(tokens))
    e2e = token_us[-1] / 1e6 + 0.001
    return make_record(i, t_send=10.0, t_end=10.0 + e2e, token_us=token_us, output_tokens=tokens,
                       server_output_tokens=tokens, **kw)


def test_a_request_is_good_when_it_meets_every_threshold_set() -> None:
    slo = Slo(request_ttft_ms=100, request_itl_ms=20)
    assert good_request(rec(0, 100, 20), slo)  # at the limit: met (vLLM's slo >= value)
    assert not good_request(rec(1, 101, 10), slo)
    assert not good_request(rec(2, 50, 21), slo)
    assert not good_request(rec(3, 50, 10, status=500, error_type="http_500"), slo)
    assert good_request(rec(4, 50, 500, tokens=1), slo)  # one token: no ITL, passes that threshold
    assert not good_request(rec(5, 50, 10), Slo(request_e2e_s=0.05))  # E2E 0.091 s
    assert good_request(rec(6, 999, 999), Slo())  # no threshold: every successful request is good


def test_goodput_counts_good_requests_and_their_tokens_over_the_window() -> None:
    slo = Slo(request_ttft_ms=200)
    measured = [rec(i, 100, 10, tokens=8) for i in range(6)]
    measured += [rec(10 + i, 300, 10, tokens=8) for i in range(4)]
    r = slo_result(measured, censored=0, window_s=2.0, slo=slo, price_per_hour=3.6)
    assert r.good == 6
    assert r.goodput_rps == pytest.approx(3.0)
    assert r.goodput_tps == pytest.approx(6 * 8 / 2.0)
    # $3.6/h at 24 tokens/s: 3.6 / (24 × 3600) × 1e6 = $41.67 per 1M good tokens
    assert r.cost_per_million_good == pytest.approx(3.6 / (24 * 3600) * 1e6)
    assert r.objectives == () and r.passed and r.status() == "—"


def test_nothing_measured_has_no_goodput_and_misses_every_objective() -> None:
    r = slo_result([], censored=0, window_s=5.0, slo=Slo(ttft_p99_ms=500, error_rate=0.1), price_per_hour=1.0)
    assert math.isnan(r.goodput_rps) and math.isnan(r.cost_per_million_good)
    assert not r.passed and [o.key for o in r.missed] == ["ttft_p99_ms", "error_rate"]
    assert "n/a" in r.status()


def test_step_objectives_pass_and_fail_per_objective() -> None:
    measured = [rec(i, 100 + i, 20) for i in range(100)]  # TTFT 100 … 199 ms: p99 = 198.01
    slo = Slo(ttft_p99_ms=199, itl_p99_ms=19, e2e_p99_s=1.0, error_rate=0.0)
    got = {o.key: o for o in objectives(measured, 0, slo)}
    assert got["ttft_p99_ms"].value == pytest.approx(198.01) and got["ttft_p99_ms"].passed
    assert not got["itl_p99_ms"].passed and got["itl_p99_ms"].value == pytest.approx(20.0)
    assert got["e2e_p99_s"].passed and got["error_rate"].passed
    assert objectives(measured, 0, Slo(ttft_p99_ms=198))[0].passed is False


def test_censored_requests_count_as_errors() -> None:
    measured = [rec(i, 100, 10) for i in range(9)]
    (rate,) = objectives(measured, censored=1, slo=Slo(error_rate=0.05))
    assert rate.value == pytest.approx(0.1) and not rate.passed


def test_slo_settings_are_flags_and_variables() -> None:
    from harness.config.settings import by_name

    names = by_name()
    for name in ("ttft_p99_ms", "itl_p99_ms", "e2e_p99_s", "error_rate", "request_ttft_ms",
                 "request_itl_ms", "request_e2e_s", "kind", "start_load", "max_load", "early_stop"):
        assert names[name].path[0] in ("slo", "search")
    assert names["ttft_p99_ms"].flag == "--ttft-p99-ms" and names["kind"].env == "HARNESS_KIND"
    with pytest.raises(ValueError):
        RunConfig(slo={"error_rate": 2})
    with pytest.raises(ValueError):
        RunConfig(search={"start_load": 8, "max_load": 4})


def test_a_step_missing_an_slo_is_flagged_and_strict_exits_1() -> None:
    from harness import exitcodes
    from harness.analysis.attribution import Window
    from harness.config.model import Flags
    from harness.report.inputs import StepInfo
    from harness.report.steps import compute
    from harness.report.tables import markdown_table

    records = [rec(i, 300 + i, 10, phase="measure", wall_start=1000.0 + i * 0.1) for i in range(20)]
    info = StepInfo(step=0, users=4, window=Window(1000.0, 1002.0), close=1010.0)
    (met,) = compute(records, [info], 1.0, Flags(), slo=Slo(ttft_p99_ms=500, request_ttft_ms=310))
    assert met.slo is not None and met.slo.passed and met.slo.good == 11
    assert not any(f.startswith("SLO missed") for f in met.flags)
    (missed,) = compute(records, [info], 1.0, Flags(), slo=Slo(ttft_p99_ms=300))
    assert "SLO missed (TTFT p99 319 > 300 ms)" in missed.flags
    assert exitcodes.for_flags(missed.flags) == exitcodes.THRESHOLDS
    table = markdown_table([met, missed])
    assert "| SLO | pass | MISS: TTFT p99 319 > 300 ms |" in table
    assert "| Load: offered → achieved | 4 users → 10.00 req/s | 4 users → 10.00 req/s |" in table
    (plain,) = compute(records, [info], 1.0, Flags())  # no [slo]: no SLO rows
    assert plain.slo is None and "| SLO |" not in markdown_table([plain])
