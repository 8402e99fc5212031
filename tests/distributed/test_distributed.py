"""Locust's own scale-out: a master and two workers (subprocesses) run locustfiles/sweep.py against the
emulator's fast profile. The master runs the shape and broadcasts each step tag; the workers' records
must carry it; the workers send their records to the master, which writes records-<worker>.jsonl
and the run log into its records dir, and `python -m harness report` must rebuild both steps from it."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.net import free_port

from harness.records.runlog import read_run_log
from harness.targets.emulator_process import EmulatorProcess

pytestmark = [pytest.mark.distributed, pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "locustfiles" / "sweep.py"
RUN_TIMEOUT_S = 120.0  # a hang guard: a loaded machine (parallel tests) takes 40 s+

SCENARIO = """\
name = "distributed"

[workload]
tokenizer = "llama3"
seed = 11111
input_mean = 50
input_stddev = 0
output_mean = 20
output_stddev = 0
prompt_pool_size = 40

[steps]
spawn_rate = 100
users = [2, 4]
warmup = { min_s = 1, max_s = 1 }
measure = { min_s = 4, max_s = 4 }
restart = true

[request]
api = "generate_stream"
timeout_s = 30

[distributed]
report_every_s = 1  # the workers' stats reports: a step's cool-down lasts this and 1 s

[output]
plots = false  # the master's own report: `harness report` rebuilds it below
"""



def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _wait_all(procs: list[subprocess.Popen], deadline: float) -> bool:
    while time.monotonic() < deadline:
        if all(p.poll() is not None for p in procs):
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, fast_emulator: EmulatorProcess) -> tuple[Path, float]:
    tmp = tmp_path_factory.mktemp("distributed")
    scenario, records, logs = tmp / "scenario.toml", tmp / "records", tmp / "logs"
    scenario.write_text(SCENARIO)
    logs.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "LOCUST_"))}
    env.update(HARNESS_SCENARIO=str(scenario), PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    port = free_port()
    locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "INFO"]
    procs: list[subprocess.Popen] = []
    t0 = time.monotonic()
    emu = fast_emulator  # the session's (tests/conftest.py); the run only sends requests to it
    master_cmd = [
        *locust,
        "--master",
        "--headless",
        "--expect-workers",
        "2",
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        str(port),
        "--host",
        emu.url,
        "--records-dir",
        str(records),
        "--input-mean",
        "50",
        "--input-stddev",
        "0",
        "--output-mean",
        "20",
        "--output-stddev",
        "0",
        "--timeout",
        "30",
    ]
    worker_cmd = [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    try:
        for name, cmd in [("master", master_cmd), ("worker0", worker_cmd), ("worker1", worker_cmd)]:
            out = open(logs / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT))
            out.close()
        finished = _wait_all(procs, t0 + RUN_TIMEOUT_S)
        elapsed = time.monotonic() - t0
        codes = [p.poll() for p in procs]
    finally:
        for p in procs:
            _stop(p)
    tail = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.iterdir()))
    assert finished, f"master/workers still running after {RUN_TIMEOUT_S} s\n{tail}"
    assert codes == [0, 0, 0], f"exit codes {codes}\n{tail}"
    return records, elapsed


def _records(records: Path) -> dict[Path, list[dict]]:
    files = sorted(records.glob("records-*.jsonl"))
    return {p: [json.loads(line) for line in p.read_text().splitlines()] for p in files}


def test_run_ends_by_itself_in_time(run: tuple[Path, float]) -> None:
    _, elapsed = run
    assert elapsed < RUN_TIMEOUT_S


def test_each_worker_wrote_records_tagged_by_the_master(run: tuple[Path, float]) -> None:
    records, _ = run
    files = _records(records)
    assert len(files) == 2, sorted(p.name for p in files)  # one per worker, none from the master
    assert all(files.values()), "a worker wrote an empty records file"
    for path, recs in files.items():
        steps = {(r["step"], r["users"]) for r in recs}
        assert {(0, 2), (1, 4)} <= steps, (path.name, steps)  # each worker ran users in both steps
        assert None not in {r["step"] for r in recs}, path.name  # no request sent before the first tag
        assert {r["phase"] for r in recs} >= {"warmup", "measure"}, path.name
    rows = [r for recs in files.values() for r in recs]
    assert {(r["step"], r["users"]) for r in rows} == {(0, 2), (1, 4)}
    for step in (0, 1):
        assert {r["phase"] for r in rows if r["step"] == step} >= {"warmup", "measure"}, step
    failed = {r["error_type"] for r in rows if r["error_type"] is not None}
    assert failed <= {"cancelled"}, failed
    assert len({r["worker"] for r in rows}) == 2


def test_master_wrote_the_steps_to_the_run_log(run: tuple[Path, float]) -> None:
    records, _ = run
    _, steps = read_run_log(records)
    assert steps is not None, "no steps in the run log"
    assert [(s["step"], s["users"]) for s in steps] == [(0, 2), (1, 4)]
    for s in steps:
        m = s["phases"]["measure"]
        assert m["end_wall"] - m["start_wall"] == pytest.approx(4, abs=1.5)
        # distributed: the client health is the workers' own (their lag and CPU samples, sent with
        # each stats report), the worst of them; the master's beside it
        client = s["client"]
        assert "master_cpu_percent" in client
        assert len(client["workers"]) == 2, client
        assert client["sched_lag_p99_ms"] is not None and client["sched_lag_samples"] > 100, client
        assert client["cpu_percent"] is not None and client["cpu_percent"] > 0, client


def test_warmup_starts_once_every_worker_runs_its_users(run: tuple[Path, float]) -> None:
    """The master's ramp waits for the workers' users: a worker's first step starts only after it has
    built its prompt pools (seconds), while Locust's master declares spawning complete after 1 s."""
    records, _ = run
    _, steps = read_run_log(records)
    assert steps is not None, "no steps in the run log"
    for path, recs in _records(records).items():
        for s in steps:
            first = min(r["wall_start"] for r in recs if r["step"] == s["step"])
            warmup = s["phases"]["warmup"]["start_wall"]
            assert first <= warmup + 0.25, (path.name, s["step"], first - warmup)


def test_report_rebuilds_both_steps(run: tuple[Path, float]) -> None:
    records, _ = run
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "report", str(records), "--no-plots"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = list(csv.DictReader(open(records / "summary.csv")))
    assert [int(r["users"]) for r in rows] == [2, 4]
    for row in rows:
        assert int(row["ok"]) > 0 and int(row["failed"]) == 0, row
        assert float(row["ttft_p50_s"]) > 0 and float(row["throughput_tps"]) > 0, row
        assert 15 <= float(row["mean_output_tokens"]) <= 20, row


def test_master_prints_the_progress_line_not_the_stats_table(run: tuple[Path, float]) -> None:
    records, _ = run
    log = (records.parent / "logs" / "master.log").read_text()
    assert "step 1/2 · 2 users" in log and "step 2/2 · 4 users" in log, log[-3000:]
    assert log.count("Aggregated") <= 2, log[-3000:]  # the final summary only, not a table every 2 s


def test_records_reach_the_masters_directory_with_clock_offsets(run: tuple[Path, float]) -> None:
    """The workers write nothing themselves (worker_records = master): every record file was written
    by the master from what the workers sent, and the run log lists each worker's clock offset."""
    records, _ = run
    assert not [p for p in records.iterdir() if p.is_dir()], sorted(records.iterdir())
    manifest, _ = read_run_log(records)
    assert manifest is not None
    workers = manifest["workers"]
    assert len(workers) == 2, workers
    names = sorted(p.name for p in records.glob("records-*.jsonl"))
    assert names == sorted("records-" + w.replace(":", "-") + ".jsonl" for w in workers)
    for info in workers.values():
        assert info["clock"]["exchanges"] >= 8 and info["clock"]["uncertainty_s"] >= 0, info
