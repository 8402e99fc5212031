"""`python -m harness sweep --workers 2`: the master starts two local workers, which send their
records to it. Two faults in one run (the master's heartbeat liveness is LIVENESS_S):

- worker A paused (SIGSTOP) until the master marks it missing, then resumed (SIGCONT): its
  connection stalls, batches may be sent again, and still the master's records of it are exactly
  its own local copy (`--worker-records both`): nothing lost, nothing twice; back within the
  liveness, it was a stall (in the manifest, no step flagged);
- once A is back, worker B killed (SIGKILL) mid-run: the run completes with A, the records B sent
  are kept, the step is flagged "degraded: lost worker" (B only), the manifest says which and when,
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
from support.background import children_running

from harness.targets.emulator_process import EmulatorProcess

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 240.0  # a hang guard: the parallel pass of make test slows these runs 2-3x
LIVENESS_S = 4  # [distributed] heartbeat_liveness_s: lost after 4 s without heartbeats (default 10)
SWEEP = ["--steps", "2,4", "--warmup-min-s", "1", "--warmup-max-s", "1", "--measure-min-s", "8",
         "--measure-max-s", "8", "--input-mean", "50", "--input-stddev", "0", "--output-mean", "20",
         "--output-stddev", "0", "--prompt-pool-size", "40", "--no-plots", "--quiet",
         "--worker-records", "both", "--heartbeat-liveness-s", str(LIVENESS_S), "--report-every-s", "1"]


def _workers(proc: subprocess.Popen, deadline: float) -> list[psutil.Process]:
    while time.monotonic() < deadline:
        found = children_running(proc.pid, "--worker")
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


def _wait_for_log(log: Path, text: str, deadline: float) -> None:
    """Until the sweep's log says `text` (the master's "worker <id> lost" / "is back" warnings)."""
    while time.monotonic() < deadline:
        if text in log.read_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"the sweep never logged {text!r}")


def _sweep(tmp: Path, emulator: EmulatorProcess) -> tuple[subprocess.CompletedProcess, Path, int, int]:
    run_dir, log_path = tmp / "run", tmp / "sweep.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "LOCUST_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "harness", "sweep", "--workers", "2", "--url", emulator.url,
           "--records-dir", str(run_dir), *SWEEP]
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        paused, killed = _workers(proc, deadline)
        _wait_for_records(run_dir, deadline)
        paused.send_signal(signal.SIGSTOP)
        _wait_for_log(log_path, f":{paused.pid} lost", deadline)  # missing to the master
        paused.send_signal(signal.SIGCONT)
        _wait_for_log(log_path, f":{paused.pid} is back", deadline)
        killed.kill()  # mid-run: the second step ends at least 8 s later
        proc.wait(max(1.0, deadline - time.monotonic()))
    except (AssertionError, subprocess.TimeoutExpired) as exc:
        raise AssertionError(f"{exc}\n{log_path.read_text()[-3000:]}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
    out = log_path.read_text()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, ""), run_dir, paused.pid, killed.pid


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["request_id"] for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def faulted(tmp_path_factory: pytest.TempPathFactory, fast_emulator: EmulatorProcess):
    return _sweep(tmp_path_factory.mktemp("faulted"), fast_emulator)


def test_a_paused_worker_loses_and_duplicates_nothing(faulted) -> None:  # noqa: ANN001
    proc, run_dir, paused, _ = faulted
    assert proc.returncode == 3, proc.stdout[-3000:]  # the other worker's kill; the pause alone is 0
    masters = sorted(run_dir.glob("records-*.jsonl"))
    assert len(masters) == 2, proc.stdout[-3000:]
    for path in masters:
        got = _ids(path)
        assert got, path.name
        dupes = [k for k, n in Counter(got).items() if n > 1]
        assert not dupes, (path.name, dupes[:5])
        worker = path.stem.removeprefix("records-")
        assert (run_dir / f"worker-{worker}" / path.name).is_file(), sorted(p.name for p in run_dir.iterdir())
    workers = json.loads((run_dir / "manifest.json").read_text())["workers"]
    [mine] = [w for w in workers if w.endswith(f":{paused}")]
    key = mine.replace(":", "-")
    got = _ids(run_dir / f"records-{key}.jsonl")
    assert set(got) == set(_ids(run_dir / f"worker-{key}" / f"records-{key}.jsonl"))  # all it made, once
    # the master noticed the pause (missing, then back) and listed it: a stall, not a loss
    [stall] = workers[mine]["lost"]
    assert stall["back_at"] is not None and 0 < stall["back_at"] - stall["lost_at"] < LIVENESS_S, stall
    rows = list(csv.DictReader(open(run_dir / "summary.csv")))
    assert not [r for r in rows if mine in r["flags"]], [r["flags"] for r in rows]


def test_a_killed_worker_degrades_the_run(faulted) -> None:  # noqa: ANN001
    proc, run_dir, _, pid = faulted
    assert proc.returncode == 3, proc.stdout[-3000:]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    workers = manifest["workers"]
    dead = [w for w in workers if w.endswith(f":{pid}")]
    assert len(dead) == 1, workers
    assert workers[dead[0]]["lost"] and workers[dead[0]]["lost"][0]["lost_at"] > 0, workers
    alive = [w for w in workers if w not in dead]
    assert alive and all(x["back_at"] is not None for x in workers[alive[0]]["lost"]), workers  # its pause
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
    assert dead[0] in flagged[0]["flags"] and alive[0] not in flagged[0]["flags"]
    assert all(int(r["ok"]) > 0 for r in rows), rows  # the other worker carried on
    assert "degraded" in proc.stdout
