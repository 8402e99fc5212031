"""The web UI off loopback: `python -m harness ui --web-host 0.0.0.0` with HARNESS_WEB_AUTH set asks
for basic auth on every request (Locust's pages and API, the LLM tab): none or wrong credentials
get 401 and start nothing; the right ones get in. The password is on no command line and in no
output. A plain `locust -f locustfiles/sweep.py --web-host 0.0.0.0` without it refuses every
request (403 saying how to set it). Bound to 0.0.0.0, reached only through 127.0.0.1."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest
from support.background import default_sigint
from support.net import free_port

from harness import exitcodes

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SECRET = "pl4nted-Pa55word"


def _status(url: str, auth: str | None = None, data: dict | None = None) -> int:
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _wait_up(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            _status(url)
            return
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "LOCUST_"))}
    env.update(PYTHONPATH=str(ROOT), TOKENIZERS_PARALLELISM="false", HARNESS_RESULTS_DIR=str(tmp_path / "r"),
               HARNESS_PROMPT_POOL_SIZE="20", **extra)
    return env


def test_ui_off_loopback_requires_basic_auth(tmp_path: Path, fast_emulator) -> None:
    port, log = free_port(), tmp_path / "ui.log"
    cmd = [sys.executable, "-m", "harness", "ui", "--web-host", "0.0.0.0", "--web-port", str(port),
           "--url", fast_emulator.url]
    with open(log, "w") as out:
        env = _env(tmp_path, HARNESS_WEB_AUTH=f"ops:{SECRET}")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=default_sigint)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_up(base + "/", proc, log)
        assert _status(base + "/") == 401
        assert _status(base + "/llm/state") == 401
        assert _status(base + "/stats/requests", auth="ops:wrong") == 401
        form = {"user_count": "1", "spawn_rate": "1", "host": fast_emulator.url, "user_classes": "SweepUser"}
        assert _status(base + "/swarm", data=form) == 401  # no credentials: no test started
        assert _status(base + "/", auth=f"ops:{SECRET}") == 200
        assert _status(base + "/llm/state", auth=f"ops:{SECRET}") == 200
        assert not (tmp_path / "r").exists()  # the refused /swarm started nothing
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        assert len(family) >= 2 and not any(SECRET in " ".join(p.cmdline()) for p in family)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    text = log.read_text()
    assert SECRET not in text and "basic auth from $HARNESS_WEB_AUTH" in text
    assert proc.returncode == exitcodes.TERMINATED, text[-2000:]


def test_plain_locust_off_loopback_without_login_refuses_everything(tmp_path: Path, fast_emulator) -> None:
    port, log = free_port(), tmp_path / "locust.log"
    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "sweep.py"), "--class-picker",
           "--web-host", "0.0.0.0", "--web-port", str(port), "--host", fast_emulator.url]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(tmp_path), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=default_sigint)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_up(base + "/", proc, log)
        assert _status(base + "/") == 403
        assert _status(base + "/swarm", data={"user_count": "1", "spawn_rate": "1"}) == 403
        assert _status(base + "/llm/state", auth="any:thing") == 403
        assert not (tmp_path / "r").exists()
    finally:
        proc.terminate()
        proc.wait(30)
    assert "HARNESS_WEB_AUTH" in log.read_text()  # the warning says how to open it
