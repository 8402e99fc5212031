"""The run header every output carries: configuration, versions, git commit, machine, target.

Built once at the start of a run by whichever process runs the load shape (the sweep, or a
locustfile's master/local runner) and written as the run log's header (harness.records.runlog).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import harness
from harness.config.model import RunConfig


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"harness": harness.__version__, "python": platform.python_version()}
    for name in (
        "locust",
        "gevent",
        "geventhttpclient",
        "numpy",
        "pandas",
        "pyarrow",
        "matplotlib",
        "psutil",
        "tokenizers",
        "huggingface_hub",
        "jinja2",
        "pydantic",
        "docker",
    ):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _git() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = (
            subprocess.run(
                ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5
            ).stdout.strip()
            != ""
        )
        return {"commit": commit or None, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _machine() -> dict[str, Any]:
    import psutil

    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }



def run_id_for(config: RunConfig) -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + config.name


def build_manifest(config: RunConfig, run_id: str, server: dict[str, Any], token_stamps: str,
                   source: str = "") -> dict[str, Any]:
    """The header: `config` is the resolved configuration (what was sent, e.g. request.model_name)."""
    return {
        "run_id": run_id,
        "created": dt.datetime.now(dt.UTC).isoformat(),
        "argv": sys.argv,
        "config": config.model_dump(mode="json"),
        "config_source": source,
        "versions": _versions(),
        "git": _git(),
        "machine": _machine(),
        "server": server,
        # how token arrivals were stamped (harness.client): kernel receive time or read time
        "token_stamps": token_stamps,
    }
