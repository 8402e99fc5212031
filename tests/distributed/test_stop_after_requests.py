"""`--stop-after-requests` across a master and two workers (Locust's own user count, locustfiles/tgi.py):
the master splits N between the workers, the total sent is exactly N, nothing is cancelled, the test
stops by itself, and the master's end-of-test summary counts every worker's records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.net import free_port

pytestmark = [pytest.mark.distributed, pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]
N = 51
RUN_TIMEOUT_S = 90.0



def test_stop_after_requests_is_exact_across_workers(tmp_path, fast_emulator):
    records, logs = tmp_path / "records", tmp_path / "logs"
    logs.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "LOCUST_"))}
    env.update(PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    port = free_port()
    locustfile = str(ROOT / "locustfiles" / "tgi.py")
    locust = [sys.executable, "-m", "locust", "-f", locustfile, "--loglevel", "INFO"]
    master = [*locust, "--master", "--headless", "--expect-workers", "2", "--master-bind-host", "127.0.0.1",
              "--master-bind-port", str(port), "--host", fast_emulator.url, "-u", "4", "-r", "4",
              "-t", "300s", "--records-dir", str(records), "--prompt-pool-size", "40", "--output-mean", "30",
              "--stop-after-requests", str(N), "--only-summary", "--no-plots"]
    worker = [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    procs = []
    try:
        for name, cmd in [("master", master), ("worker0", worker), ("worker1", worker)]:
            with open(logs / f"{name}.log", "w") as out:
                procs.append(subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=out,
                                              stderr=subprocess.STDOUT))
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while time.monotonic() < deadline and any(p.poll() is None for p in procs):
            time.sleep(0.2)
        codes = [p.poll() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
    tail = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.iterdir()))
    assert codes == [0, 0, 0], f"exit codes {codes}\n{tail}"
    per_file = {p.name: [json.loads(ln) for ln in p.read_text().splitlines()]
                for p in records.glob("records-*.jsonl")}
    assert len(per_file) == 2, tail
    assert sorted(len(v) for v in per_file.values()) == [N // 2, N - N // 2], tail
    rows = [r for v in per_file.values() for r in v]
    assert [r for r in rows if r["error_type"] is not None] == []  # none cancelled, none failed
    text = (logs / "master.log").read_text()
    assert "stopping the test" in text and "--run-time limit reached" not in text
    assert f"requests sent {N}: ok {N}, failed 0, cancelled 0" in text, tail
