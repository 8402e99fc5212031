"""The emulator as a process: SIGTERM/SIGINT at any stage of start-up, the start-up delay.

No test sleeps waiting for start-up: each waits for the line the emulator prints on stderr once
its signal handlers are in place (`emulate: loading tokenizer`, `emulate: start-up delay`), then
signals. Children get SIGINT at its default (default_sigint) or, to prove the emulator does not
rely on it, explicitly ignored: pytest itself may run with SIGINT ignored (a background shell).
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

from harness.targets.emulator_process import EmulatorProcess, default_sigint

PROMPT_S = 10.0  # "promptly": far below a tokenizer load under load, let alone the 600 s delay


def test_sigterm_exits_cleanly_and_startup_delay_refuses_connections():
    import socket

    t0 = time.monotonic()
    emu = EmulatorProcess(profile="fast", args=["--startup-delay-s", "1.0"]).start()
    try:
        assert time.monotonic() - t0 >= 1.0
        with socket.create_connection(("127.0.0.1", emu.port), timeout=5):
            pass
    finally:
        assert emu.stop() == 0


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Child:
    """`python -m harness emulate` with a 600 s start-up delay; stderr lines collected as they come."""

    def __init__(self, preexec: Callable[[], None]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "emulate", "--profile", "fast", "--port", "0",
             "--startup-delay-s", "600"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=preexec)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put("")  # EOF

    def wait_for(self, prefix: str, timeout: float = 180.0) -> None:
        """Block until a stderr line starts with `prefix` (the child is then at that stage)."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            self.seen.append(line)
            if line.startswith(prefix):
                return
            assert line, f"emulator exited before {prefix!r}: {''.join(self.seen)!r}"

    def stop_with(self, sig: int) -> tuple[int, float, str, str]:
        """Send `sig`; return (exit status, seconds to exit, stdout, all stderr)."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=60)
        elapsed = time.monotonic() - t0
        while True:
            line = self.lines.get(timeout=10)
            if not line:
                break
            self.seen.append(line)
        return rc, elapsed, self.proc.stdout.read(), "".join(self.seen)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_while_loading_the_tokenizer_exits_at_once(sig):
    """The handler is installed before the (seconds-long) tokenizer load, and interrupts it."""
    child = _Child(default_sigint)
    try:
        child.wait_for("emulate: loading tokenizer")
        rc, elapsed, out, err = child.stop_with(sig)
        assert rc == 0, err
        assert elapsed < PROMPT_S
        assert "READY" not in out and "Traceback" not in err
        assert "start-up delay" not in err, "the signal waited for the tokenizer load to finish"
    finally:
        child.kill()


@pytest.mark.parametrize(("sig", "preexec"),
                         [(signal.SIGTERM, default_sigint), (signal.SIGINT, _ignore_sigint)],
                         ids=["SIGTERM", "SIGINT-inherited-ignored"])
def test_stop_during_startup_delay_exits_promptly(sig, preexec):
    """Real TGI refuses connections while loading; stopping it then must still work at once, and
    SIGINT must work even when the emulator was started with SIGINT ignored."""
    child = _Child(preexec)
    try:
        child.wait_for("emulate: start-up delay")
        rc, elapsed, out, err = child.stop_with(sig)
        assert rc == 0, err
        assert elapsed < PROMPT_S
        assert "READY" not in out and "Traceback" not in err
    finally:
        child.kill()
