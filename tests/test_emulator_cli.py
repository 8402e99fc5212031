"""Configuration precedence (preset < env < flags) and process life cycle."""

from __future__ import annotations

import pytest

from harness.emulator.cli import build_parser, make_config


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


@pytest.mark.integration
def test_sigterm_exits_cleanly_and_startup_delay_refuses_connections():
    import socket
    import time

    from harness.emulator.testing import EmulatorProcess

    t0 = time.monotonic()
    emu = EmulatorProcess(profile="fast", args=["--startup-delay-s", "1.0"]).start()
    try:
        assert time.monotonic() - t0 >= 1.0
        with socket.create_connection(("127.0.0.1", emu.port), timeout=5):
            pass
    finally:
        assert emu.stop() == 0


@pytest.mark.integration
def test_sigterm_during_startup_delay_exits_promptly():
    """Real TGI refuses connections while loading; stopping it then must still work at once."""
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "harness", "emulate", "--profile", "fast", "--port", "0",
                             "--startup-delay-s", "600"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(4)  # past imports and tokenizer loading, inside the delay
        assert proc.poll() is None
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert time.monotonic() - t0 < 30
        assert b"READY" not in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
