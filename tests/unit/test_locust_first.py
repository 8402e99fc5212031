"""`import harness.cli.locust_first` (the first import of sweep/search/worker processes) patches
sockets as `import locust` does, reads the installed entry points once, and puts
importlib.metadata.entry_points back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHILD = """
from importlib import metadata
standard = metadata.entry_points
seen = []
def counting(**params):
    seen.append(params)
    return standard(**params)
metadata.entry_points = counting
import harness.cli.locust_first
import socket, gevent.socket, locust
print(metadata.entry_points is counting, socket.socket is gevent.socket.socket, len(seen))
"""


def test_locust_first_patches_sockets_reads_entry_points_once_and_restores_them() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    restored, patched, lookups = proc.stdout.split()
    assert (restored, patched) == ("True", "True")
    assert lookups == "1"  # gevent asks ≈ 25 times; one full read answered them all
