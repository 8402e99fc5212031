"""The run log, `run.jsonl`: what a run's records need beside them to rebuild every report file.

One header line (the manifest: configuration, versions, machine, server identity), then, as the
run goes, `steps` lines (each step's phases as wall-clock spans and the client's health in its
window; the last one wins) and `end` lines (facts known only at the end, merged into the
manifest: emulator stats, the container's image and log). `records-*.jsonl` plus this file are
the whole truth of a run: `python -m harness report DIR` rewrites manifest.json, steps.json and
every summary from them alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RUN_LOG = "run.jsonl"


def _append(run_dir: str | os.PathLike[str], line: dict[str, Any], truncate: bool = False) -> None:
    path = Path(run_dir) / RUN_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w" if truncate else "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, default=str) + "\n")


def write_header(run_dir: str | os.PathLike[str], manifest: dict[str, Any]) -> None:
    """Start the run log (a second test in the same directory starts it afresh)."""
    _append(run_dir, {"kind": "header", "manifest": manifest}, truncate=True)


def write_steps(run_dir: str | os.PathLike[str], steps: list[dict[str, Any]]) -> None:
    _append(run_dir, {"kind": "steps", "steps": steps})


def write_end(run_dir: str | os.PathLike[str], **facts: Any) -> None:
    """Facts known only at the end, merged into the manifest's top level (dicts merged one deep)."""
    _append(run_dir, {"kind": "end", "facts": facts})


def read_run_log(
    run_dir: str | os.PathLike[str],
) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
    """(manifest, steps) from the run log; (None, None) without one. A torn last line is skipped."""
    path = Path(run_dir) / RUN_LOG
    if not path.is_file():
        return None, None
    manifest: dict[str, Any] | None = None
    steps: list[dict[str, Any]] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        kind = entry.get("kind")
        if kind == "header":
            manifest, steps = dict(entry["manifest"]), None
        elif kind == "steps":
            steps = entry["steps"]
        elif kind == "end" and manifest is not None:
            for key, value in entry["facts"].items():
                if isinstance(value, dict) and isinstance(manifest.get(key), dict):
                    manifest[key] = {**manifest[key], **value}
                else:
                    manifest[key] = value
    return manifest, steps
