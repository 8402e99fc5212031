"""docker/compose.yaml against the real Docker engine: a master, two scaled workers and the
emulator, all from the locally built images, run a short sweep and leave a report on the host.

Uses `docker-compose` (Debian's 1.29) or else `docker compose` (v2); skipped when neither exists
(fails under CI=true, like the rest of the tier)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker" / "compose.yaml"
pytestmark = [pytest.mark.docker, pytest.mark.timeout(1500)]


def _compose_cli() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        v2 = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if v2.returncode == 0:
            return ["docker", "compose"]
    return None


@pytest.fixture(scope="module")
def compose_images(client) -> None:  # noqa: ANN001 - tests/docker/conftest.py's engine client
    proc = subprocess.run(["bash", str(REPO / "docker" / "build-images.sh"), "compose"],
                          capture_output=True, text=True, timeout=1400)
    assert proc.returncode == 0, f"docker/build-images.sh compose failed:\n{proc.stderr[-4000:]}"


def test_compose_runs_a_master_and_two_workers_to_a_report(compose_images, tmp_path: Path) -> None:  # noqa: ANN001
    cli = _compose_cli()
    if cli is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but neither docker-compose nor `docker compose` is installed")
        pytest.skip("neither docker-compose nor `docker compose` is installed")
    results = tmp_path / "results"
    results.mkdir()
    project = f"tlt{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "WORKERS": "2", "RESULTS_DIR": str(results), "MASTER_PORT": "0",
           "SWEEP_ARGS": "--steps 1,2 --warmup-min-s 1 --warmup-max-s 1 --measure-min-s 3 --measure-max-s 3 "
                         "--input-mean 60 --input-stddev 0 --output-mean 16 --output-stddev 0 --no-plots "
                         "--report-every-s 1"}
    base = [*cli, "-f", str(COMPOSE_FILE), "-p", project, "--profile", "emulator"]
    try:
        proc = subprocess.run([*base, "up", "--scale", "worker=2", "--exit-code-from", "master"],
                              env=env, capture_output=True, text=True, timeout=900)
    finally:
        subprocess.run([*base, "down", "-v", "--remove-orphans"], env=env, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    runs = [p for p in results.iterdir() if p.is_dir()]
    assert len(runs) == 1, sorted(results.iterdir())
    run = runs[0]
    rows = list(csv.DictReader(open(run / "summary.csv")))
    assert [int(r["users"]) for r in rows] == [1, 2]
    assert all(int(r["ok"]) > 0 for r in rows), rows
    files = sorted(run.glob("records-*.jsonl"))
    assert len(files) == 2, [p.name for p in files]  # one per worker container, written by the master
    workers = json.loads((run / "manifest.json").read_text())["workers"]
    assert len(workers) == 2 and all(w["clock"] for w in workers.values()), workers
