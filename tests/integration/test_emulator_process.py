"""The emulator as a process: SIGTERM, the start-up delay."""

from __future__ import annotations


def test_sigterm_exits_cleanly_and_startup_delay_refuses_connections():
    import socket
    import time

    from harness.targets.emulator_process import EmulatorProcess

    t0 = time.monotonic()
    emu = EmulatorProcess(profile="fast", args=["--startup-delay-s", "1.0"]).start()
    try:
        assert time.monotonic() - t0 >= 1.0
        with socket.create_connection(("127.0.0.1", emu.port), timeout=5):
            pass
    finally:
        assert emu.stop() == 0


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
