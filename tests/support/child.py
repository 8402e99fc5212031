"""Run a snippet in a child interpreter: tests of the Locust rim do, because importing locust
gevent-patches the process, and must come before ssl/urllib3, which other test modules in the
pytest process have imported already."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_ok(code: str, timeout: float = 120) -> None:
    """Run `code` with `python -c` from the repository root; it passes when it exits 0 and its
    output ends with "OK" (its last line, printed after its own asserts)."""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stdout + proc.stderr
