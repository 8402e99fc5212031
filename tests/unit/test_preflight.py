"""The pure parts of the pre-flight (harness.load.preflight): API choice, limits, token budget."""

from __future__ import annotations

from harness import exitcodes
from harness.load.preflight import Budget, PreflightError, budget_problems, check_url, choose_api, limits
from harness.targets.identity import Identity

TGI = Identity(info={"model_id": "m", "max_total_tokens": 4096, "max_input_tokens": 4000,
                     "max_concurrent_requests": 128}, models=["m"])
VLLM = Identity(info=None, models=["org/model"])


def test_api_is_tgi_native_on_tgi_and_chat_elsewhere_unless_given() -> None:
    assert choose_api(TGI, None) == "generate_stream"
    assert choose_api(VLLM, None) == "chat"
    assert choose_api(TGI, "completions") == "completions"


def test_limits_from_tgi_info_and_vllm_models() -> None:
    assert limits(TGI, {}) == {"max_input_tokens": 4000, "max_total_tokens": 4096,
                               "max_concurrent_requests": 128}
    assert limits(VLLM, {"data": [{"id": "org/model", "max_model_len": 2048}]}) == {"max_total_tokens": 2048}
    old = Identity(info={"model_id": "m", "max_total_tokens": 2048, "max_input_length": 1024})
    assert limits(old, {})["max_input_tokens"] == 1024


def test_budget_beyond_the_limits_on_average_is_an_error_in_the_tails_a_warning() -> None:
    lim = limits(TGI, {})
    errors, warnings = budget_problems(Budget(550, 150, 150, 0, 16), lim)
    assert errors == [] and warnings == []
    errors, _ = budget_problems(Budget(4001, 0, 100, 0, 1), lim)
    assert len(errors) == 2 and "max_input_tokens 4000" in errors[0]
    errors, warnings = budget_problems(Budget(3500, 200, 100, 0, 256), lim)
    assert errors == []
    assert any("max_input_tokens" in w for w in warnings)
    assert any("max_concurrent_requests" in w for w in warnings)


def test_a_malformed_url_is_bad_input() -> None:
    for url in ("http://", "ftp://host", "http://h:99999"):
        try:
            check_url(url)
        except PreflightError as exc:
            assert exc.code == exitcodes.BAD_INPUT and "--url" in str(exc)
        else:
            raise AssertionError(url)
