"""The layout's rules (docs/development.md): importing the core has no side effects, and modules
stay small unless their docstring says why.

The import check runs in a child interpreter: this test process may have imported Locust (which
gevent-patches) through other tests already.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "harness"
RIM = ("harness.cli", "harness.load.locust", "harness.__main__")  # the Locust/gevent and CLI rims
MAX_LINES = 400


def _modules() -> list[str]:
    names = []
    for path in sorted(HARNESS.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if not any(name == rim or name.startswith(rim + ".") for rim in RIM):
            names.append(name)
    return names


CHILD = r"""
import importlib, json, signal, socket, sys, threading, time
before = (socket.socket, threading.Thread, time.sleep, signal.getsignal(signal.SIGINT),
          signal.getsignal(signal.SIGTERM), sys.getswitchinterval())
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
after = (socket.socket, threading.Thread, time.sleep, signal.getsignal(signal.SIGINT),
         signal.getsignal(signal.SIGTERM), sys.getswitchinterval())
patched = []
if "gevent.monkey" in sys.modules:
    import gevent.monkey
    patched = sorted(gevent.monkey.saved)
print(json.dumps({"locust": sorted(m for m in sys.modules if m == "locust" or m.startswith("locust.")),
                  "gevent_patched": patched, "changed": before != after}))
"""


def test_importing_the_core_patches_nothing() -> None:
    import json

    modules = _modules()
    assert "harness.load.plan" in modules and "harness.client.transport" in modules
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(modules)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["locust"] == [], out["locust"]  # Locust's import gevent-patches the process
    assert out["gevent_patched"] == []
    assert not out["changed"], "an import replaced socket/threading/time or a signal handler"


def test_modules_stay_small_or_say_why() -> None:
    long = []
    for path in sorted(HARNESS.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > MAX_LINES:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if "Length:" not in doc:
                long.append(f"{path.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    assert not long, long
