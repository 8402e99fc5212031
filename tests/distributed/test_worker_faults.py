"""`python -m harness sweep --workers 2`: the master starts two local workers, which send their
records to it. Two faults, each in its own run:

- a worker paused (SIGSTOP) for longer than Locust's heartbeat, then resumed (SIGCONT): its
  connection stalls, batches may be sent again, and still the master's records of each worker are
  exactly the worker's own local copy (`--worker-records both`): nothing lost, nothing twice;
- a worker killed (SIGKILL) mid-step: the run completes with the other, the records the dead one
  sent are kept, the step is flagged "degraded: lost worker", the manifest says which and when,
  and the sweep exits with 3.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from harness.targets.emulator_process import EmulatorProcess

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 240.0  # a hang guard: the parallel pass of make test slows these runs 2-3x
SWEEP = ["--steps", "2,4", "--warmup-min-s", "1", "--warmup-max-s", "1", "--measure-min-s", "8",
         "--measure-max-s", "8", "--input-mean", "50", "--input-stddev", "0", "--output-mean", "20",
         "--output-stddev", "0", "--no-plots", "--quiet", "--worker-records", "both"]


def _workers(proc: subprocess.Popen, deadline: float) -> list[psutil.Process]:
    while time.monotonic() < deadline:
        found = [c for c in psutil.Process(proc.pid).children() if "--worker" in c.cmdline()]
        if len(found) == 2:
            return found
        time.sleep(0.1)
    raise AssertionError("the sweep did not start two workers")


def _wait_for_records(run_dir: Path, deadline: float, files: int = 2) -> None:
    while time.monotonic() < deadline:
        if len([p for p in run_dir.glob("records-*.jsonl") if p.stat().st_size > 0]) >= files:
            return
        time.sleep(0.1)
    raise AssertionError("no records reached the master")


def _sweep(tmp: Path, emulator: EmulatorProcess, fault) -> tuple[subprocess.CompletedProcess, Path, int]:  # noqa: ANN001
    run_dir = tmp / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "LOCUST_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "harness", "sweep", "--workers", "2", "--url", emulator.url,
           "--records-dir", str(run_dir), *SWEEP]
    log = open(tmp / "sweep.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        workers = _workers(proc, deadline)
        _wait_for_records(run_dir, deadline)
        victim = fault(workers)
        proc.wait(max(1.0, deadline - time.monotonic()))
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{(tmp / 'sweep.log').read_text()[-3000:]}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
    out = (tmp / "sweep.log").read_text()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, ""), run_dir, victim


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["request_id"] for line in path.read_text().splitlines() if line.strip()]


def _pause(workers: list[psutil.Process]) -> int:
    victim = workers[0]
    victim.send_signal(signal.SIGSTOP)
    time.sleep(5.0)  # Locust's master marks a worker missing after ~3 s without heartbeats
    victim.send_signal(signal.SIGCONT)
    return victim.pid


def _kill(workers: list[psutil.Process]) -> int:
    time.sleep(3.0)  # a few seconds of records first, inside the first step (8 s window)
    victim = workers[0]
    victim.kill()
    return victim.pid


@pytest.fixture(scope="module")
def paused(tmp_path_factory: pytest.TempPathFactory, fast_emulator: EmulatorProcess):
    return _sweep(tmp_path_factory.mktemp("paused"), fast_emulator, _pause)


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory, fast_emulator: EmulatorProcess):
    return _sweep(tmp_path_factory.mktemp("killed"), fast_emulator, _kill)


def test_a_paused_worker_loses_and_duplicates_nothing(paused) -> None:  # noqa: ANN001
    proc, run_dir, _ = paused
    assert proc.returncode in (0, 3), proc.stdout[-3000:]
    masters = sorted(run_dir.glob("records-*.jsonl"))
    assert len(masters) == 2, proc.stdout[-3000:]
    for path in masters:
        got = _ids(path)
        assert got, path.name
        dupes = [k for k, n in Counter(got).items() if n > 1]
        assert not dupes, (path.name, dupes[:5])
        worker = path.stem.removeprefix("records-")
        local = run_dir / f"worker-{worker}" / path.name
        assert local.is_file(), sorted(p.name for p in run_dir.iterdir())
        assert set(got) == set(_ids(local)), path.name  # every record the worker made, once


def test_a_killed_worker_degrades_the_run(killed) -> None:  # noqa: ANN001
    proc, run_dir, pid = killed
    assert proc.returncode == 3, proc.stdout[-3000:]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    workers = manifest["workers"]
    dead = [w for w in workers if w.endswith(f":{pid}")]
    assert len(dead) == 1, workers
    assert workers[dead[0]]["lost"] and workers[dead[0]]["lost"][0]["lost_at"] > 0, workers
    alive = [w for w in workers if w not in dead]
    assert alive and not workers[alive[0]]["lost"], workers
    assert all(w["clock"] and w["clock"]["uncertainty_s"] >= 0 for w in workers.values()), workers
    # the records the dead worker sent are kept (each once, each one it made)
    name = "records-" + dead[0].replace(":", "-") + ".jsonl"
    sent = _ids(run_dir / name)
    assert sent and len(sent) == len(set(sent))
    # its local copy is written every 0.5 s, its batches sent every 0.25 s: whatever the copy holds
    # from before its last second reached the master (the last moments may be in either alone)
    copy = run_dir / f"worker-{dead[0].replace(':', '-')}" / name
    local = [json.loads(line) for line in copy.read_text().splitlines() if line.strip()]
    last = max(r["wall_start"] + r["t_end"] - r["t_send"] for r in local)
    settled = {r["request_id"] for r in local if r["wall_start"] + r["t_end"] - r["t_send"] <= last - 1.0}
    assert settled and settled <= set(sent)
    rows = list(csv.DictReader(open(run_dir / "summary.csv")))
    assert [int(r["users"]) for r in rows] == [2, 4]
    flagged = [r for r in rows if "degraded: lost worker" in r["flags"]]
    assert len(flagged) == 1, [r["flags"] for r in rows]
    assert dead[0] in flagged[0]["flags"]
    assert all(int(r["ok"]) > 0 for r in rows), rows  # the other worker carried on
    assert "degraded" in proc.stdout
