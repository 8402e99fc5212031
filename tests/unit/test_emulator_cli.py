"""Configuration precedence (preset < env < flags) and process life cycle."""

from __future__ import annotations

import pytest

from harness.cli.emulate import build_parser, make_config


def cfg(argv, env):
    return make_config(build_parser().parse_args(argv), env)


def test_env_like_the_container_then_flags_override():
    env = {
        "MODEL_ID": "m/x",
        "PORT": "9000",
        "MAX_BATCH_SIZE": "4",
        "MAX_INPUT_LENGTH": "1000",
        "MAX_TOTAL_TOKENS": "2048",
        "MAX_CONCURRENT_REQUESTS": "16",
        "HF_NUM_CORES": "2",
    }
    c = cfg([], env)
    p = c.profile
    assert (p.model_id, p.max_batch_size, p.max_input_tokens, p.max_total_tokens) == ("m/x", 4, 1000, 2048)
    assert p.max_concurrent_requests == 16 and c.port == 9000 and c.extra_info["HF_NUM_CORES"] == "2"
    env["MAX_INPUT_TOKENS"] = "1500"  # the current name wins over the legacy one
    assert cfg([], env).profile.max_input_tokens == 1500
    c = cfg(
        ["--port", "0", "--max-batch-size", "2", "--profile", "exact", "--ttft-ms", "7", "--itl-ms", "3"], env
    )
    assert c.port == 0 and c.profile.max_batch_size == 2 and (c.profile.ttft_ms, c.profile.itl_ms) == (7, 3)
    assert cfg([], {}).port == 8080 and cfg([], {}).host == "127.0.0.1"


def test_bad_config_is_rejected():
    with pytest.raises(ValueError):
        cfg(["--max-input-tokens", "5000"], {})
    with pytest.raises(ValueError):
        cfg(["--fault", "nonsense"], {})


def test_repeated_faults_take_turns():
    """`--fault` twice: the faulted requests cycle through the specs in order (one server, every kind)."""
    import random

    policy = cfg(["--fault", "disconnect=3", "--fault", "malformed=2"], {}).faults
    rng = random.Random(0)
    drawn = [policy.draw(rng, 8) for _ in range(5)]
    assert [(f.disconnect, f.malformed) for f in drawn] == [(3, None), (None, 2)] * 2 + [(3, None)]
    assert policy.drawn == 5
    assert cfg([], {}).faults.draw(rng, 8) is None  # no --fault: no fault


def test_server_faults_set_at_run_time_count_after_from_now():
    """POST /emulator/faults' body: the flags' settings; `after` counts from the requests so far."""
    from harness.emulator.faults import ServerFaults

    sf = ServerFaults.from_json({"http_status": 503, "retry_after": "2", "after": 1}, generation_requests=7)
    assert (sf.http_status, sf.retry_after, sf.http_body, sf.after) == (503, "2", True, 8)
    assert not sf.active(8) and sf.active(9)
    assert ServerFaults.from_json({}, 3) == ServerFaults(after=3)  # all off again
    for bad in ({"http_stauts": 503}, {"hang": 1}, {"http_status": "503"}, [1]):
        with pytest.raises(ValueError):
            ServerFaults.from_json(bad, 0)
