"""A headless Locust master and its workers against an emulator of their own, as one command, so a
test can start the whole run ahead of time (`prestart`, tests/support/background.py) and read what
it left behind: `python tests/support/locust_cluster.py DIR PROFILE WORKERS RUN_TIMEOUT_S
LOCUSTFILE [MASTER FLAGS...]`.

DIR gets logs/<process>.log for the master and each worker; the exit code is 0 when every process
exited 0 within RUN_TIMEOUT_S, else 1 (each process's code and log tail on stderr). The environment
is the caller's without HARNESS_* / LOCUST_* variables, plus HARNESS_SCENARIO if DIR holds
scenario.toml."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from harness.targets.emulator_process import EmulatorProcess  # noqa: E402
from support.net import free_port  # noqa: E402


def run(out: Path, profile: str, workers: int, timeout_s: float, locustfile: str, flags: list[str]) -> int:
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "LOCUST_"))}
    env.update(PYTHONUNBUFFERED="1")
    if (out / "scenario.toml").is_file():
        env["HARNESS_SCENARIO"] = str(out / "scenario.toml")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    port = free_port()
    locust = [sys.executable, "-m", "locust", "-f", locustfile, "--loglevel", "INFO"]
    procs: dict[str, subprocess.Popen] = {}
    with EmulatorProcess(profile=profile) as emu:
        master = [*locust, "--master", "--headless", "--expect-workers", str(workers), "--master-bind-host",
                  "127.0.0.1", "--master-bind-port", str(port), "--host", emu.url, *flags]  # fmt: skip
        worker = [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
        deadline = time.monotonic() + timeout_s
        try:
            for name, cmd in [("master", master)] + [(f"worker{i}", worker) for i in range(workers)]:
                with open(logs / f"{name}.log", "w") as fh:
                    procs[name] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh,
                                                   stderr=subprocess.STDOUT)
            while time.monotonic() < deadline and any(p.poll() is None for p in procs.values()):
                time.sleep(0.2)
            codes = {name: p.poll() for name, p in procs.items()}
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
                    p.wait(5)
    if all(code == 0 for code in codes.values()):
        return 0
    print(f"exit codes {codes}", file=sys.stderr)
    for log in sorted(logs.iterdir()):
        print(f"--- {log.name}\n{log.read_text()[-3000:]}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # Background.stop(): the finally stops all
    out_dir, profile_name, n, timeout, file, *rest = sys.argv[1:]
    sys.exit(run(Path(out_dir), profile_name, int(n), float(timeout), file, rest))
