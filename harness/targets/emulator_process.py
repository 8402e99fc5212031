"""`EmulatorProcess`: run the emulator in a subprocess for tests of any part of the project.

    with EmulatorProcess(profile="fast") as emu:
        requests.post(emu.url + "/generate_stream", json=...)
        emu.stats()  # GET /emulator/stats as a dict

Starts `sys.executable -m harness emulate --port 0 ...`, waits for the `READY http://HOST:PORT`
line, and on exit sends SIGTERM and waits (SIGKILL after a grace period). Stdlib only, so it is
safe to import from Locust/gevent tests too.

The child runs in its own session (process group): a Ctrl-C at the terminal reaches only the
harness, which stops its users first (in-flight requests are then `cancelled`, not errors of a
server that was killed under them), writes its report, and only then stops the emulator. On Linux
the child also gets SIGTERM when its parent dies (PR_SET_PDEATHSIG), so a killed harness leaves no
emulator behind. Its SIGINT is reset to the default, whatever this process has: a test run from a
background shell (or CI) ignores SIGINT, and SIG_IGN would pass on through exec.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]


def default_sigint() -> None:
    """Popen preexec_fn: SIGINT back to SIG_DFL in the child (an inherited SIG_IGN would stay)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def child_setup() -> None:
    """Popen preexec_fn of children we own: default SIGINT, SIGTERM when the parent dies."""
    default_sigint()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


class EmulatorProcess:
    def __init__(
        self,
        profile: str = "fast",
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        timeout: float = 90.0,
        python: str | None = None,
    ) -> None:
        self.profile = profile
        self.args = list(args or [])
        self.env = dict(env or {})
        self.host = host
        self.timeout = timeout
        self.python = python or sys.executable
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.port = 0
        self._stderr: list[str] = []

    @property
    def cmd(self) -> list[str]:
        return [self.python, "-m", "harness", "emulate", "--profile", self.profile, "--host", self.host,
                "--port", "0", *self.args]

    def start(self) -> EmulatorProcess:
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env, cwd=str(_ROOT), preexec_fn=child_setup,
                                     start_new_session=True)
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        lines: list[str] = []
        result: list[str] = []

        def read() -> None:
            for line in self.proc.stdout:
                lines.append(line)
                if line.startswith("READY "):
                    result.append(line.split(None, 1)[1].strip())
                    break

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(self.timeout)
        if not result:
            code = self.proc.poll()
            if code is None and not reader.is_alive():  # stdout closed: the process is exiting
                try:
                    code = self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    code = None
            self.stop()
            if code is not None:  # it exited: say why in its own last line (argparse, a bad profile)
                time.sleep(0.2)  # let the stderr reader take the last lines
                last = [ln.strip() for ln in self.stderr.splitlines() if ln.strip()]
                why = last[-1] if last else "no output"
                raise RuntimeError(f"the emulator exited with code {code}: {why}")
            raise RuntimeError(f"emulator did not become ready in {self.timeout}s; stdout={''.join(lines)!r} "
                               f"stderr={self.stderr[-2000:]!r}")
        self.url = result[0]
        self.port = int(self.url.rsplit(":", 1)[1])
        # keep draining stdout so the child never blocks on a full pipe
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        return self

    def _drain_stderr(self) -> None:
        for line in self.proc.stderr:
            self._stderr.append(line)
            del self._stderr[:-200]

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def stop(self, grace: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def crashed(self) -> str | None:
        """None while the emulator runs (or was never started); else one line: how it ended."""
        code = None if self.proc is None else self.proc.poll()
        if code is None:
            return None
        if code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exit code {code}"
        last = [ln.strip() for ln in self.stderr.splitlines() if ln.strip()]
        return f"the emulator crashed mid-run ({how}, pid {self.proc.pid})" + (f": {last[-1][:200]}" if
                                                                              code > 0 and last else "")

    def get_json(self, path: str, timeout: float = 10.0) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict:
        """GET /emulator/stats: lateness_ms{p50,p99,max,...}, token_events, active_streams, ..."""
        return self.get_json("/emulator/stats")

    def reset(self) -> dict:
        req = urllib.request.Request(self.url + "/emulator/reset", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def set_faults(self, **faults: object) -> dict:
        """POST /emulator/faults: the server-wide faults from now on (`after=1`: from the next
        generation request but one); the keys are ServerFaults' fields, absent ones at default."""
        req = urllib.request.Request(self.url + "/emulator/faults", data=json.dumps(faults).encode(),
                                     method="POST", headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
