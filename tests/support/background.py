"""A subprocess a test starts ahead of time: `@pytest.mark.prestart(start)` on a test makes
tests/conftest.py call `start()` (→ a `Background`) once the session's tests are collected, and the
test's `prestarted` fixture waits for it. For long runs that mostly wait on wall-clock time (a sweep
of an emulator whose requests take seconds): they overlap the tests before them instead of adding
to the session's length. The test asserts on the result exactly as if it had run the command."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def children_running(pid: int, word: str) -> list:
    """The psutil children of `pid` whose command line has `word` (a child that has just exited, a
    zombie, has no command line any more: it is not counted, and not an error)."""
    import psutil

    found = []
    for child in psutil.Process(pid).children():
        try:
            if word in child.cmdline():
                found.append(child)
        except psutil.Error:
            continue
    return found


def signal_group(pid: int, signum: int, times: int, gap_s: float = 0.3) -> None:
    """`signum` to process group `pid`, `times` times `gap_s` apart: a user pressing Ctrl-C in a
    terminal (which signals the whole foreground group), once or again."""
    import os

    for _ in range(times):
        os.killpg(pid, signum)
        time.sleep(gap_s)


@contextmanager
def group_killed_on_exit(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """`proc` (started with start_new_session=True) and its process group killed if still running
    when the block ends: a test that failed midway leaves no child behind."""
    import os

    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def default_sigint() -> None:
    """Popen(preexec_fn=...): SIGINT back to its default (a background shell's SIG_IGN survives exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Background:
    """`command(dir)` run in a fresh temporary directory `dir`, its output to files there."""

    def __init__(self, command: Callable[[Path], list[str]], cwd: Path, timeout: float,
                 env: dict[str, str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pytest-prestart-"))
        self.timeout = timeout
        self.started = time.monotonic()
        self._out = open(self.dir / "stdout.txt", "w")  # noqa: SIM115 - closed in wait()/stop()
        self._err = open(self.dir / "stderr.txt", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(command(self.dir), cwd=cwd, env=env, stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL, text=True, preexec_fn=default_sigint)

    def wait(self) -> subprocess.CompletedProcess:
        """The finished run, as subprocess.run would give it (TimeoutExpired after `timeout` s from
        the start, as subprocess.run(timeout=...) would raise)."""
        try:
            self.proc.wait(max(0.0, self.timeout - (time.monotonic() - self.started)))
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        finally:
            self._out.close()
            self._err.close()
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode,
                                           (self.dir / "stdout.txt").read_text(),
                                           (self.dir / "stderr.txt").read_text())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()
        self._err.close()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
