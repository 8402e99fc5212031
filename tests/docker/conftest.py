"""Docker tier: one engine client and one image build per test session.

Without a Docker engine these tests are skipped, except in CI (CI=true), where they fail: CI must
start dockerd (see .ci/run)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from support.docker import EMULATOR_IMAGE

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def client():
    docker = pytest.importorskip("docker")
    try:
        cli = docker.from_env(timeout=60)
        cli.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but no Docker engine answers ({exc}); .ci/run must start dockerd")
        pytest.skip(f"no Docker engine: {exc}")
    return cli


@pytest.fixture(scope="session")
def emulator_image(client):
    """Build (or confirm, cached) the base and emulator images; never pulls."""
    proc = subprocess.run(["bash", str(REPO / "docker" / "build-images.sh"), "emulator"],
                          capture_output=True, text=True, timeout=1700)
    assert proc.returncode == 0, f"docker/build-images.sh failed:\n{proc.stderr[-4000:]}"
    client.images.get(EMULATOR_IMAGE)
    return EMULATOR_IMAGE


