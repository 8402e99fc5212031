"""The configured headers reach every request the harness makes (the pre-flight's /health, /info,
/v1/models and its short request included), and a planted token appears in no output: records,
run log, manifest, reports, Locust's CSV/HTML, stdout/stderr, nor the process list."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.auth_server import AuthServer

from harness import exitcodes
from harness.load.preflight import PreflightError, check_target

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hf_plantedSECRET0123456789abcdef"


@pytest.fixture()
def server():
    srv = AuthServer(TOKEN)
    yield srv
    srv.close()


def test_preflight_sends_the_configured_headers_everywhere(server: AuthServer) -> None:
    pre = check_target(server.url, {"Authorization": f"Bearer {TOKEN}"}, None, None)
    assert pre.identity.model_id == "test/model" and pre.api == "generate_stream"
    paths = [(m, p) for m, p, _ in server.seen]
    assert ("GET", "/info") in paths and ("GET", "/health") in paths and ("POST", "/generate_stream") in paths
    assert all(h.get("Authorization") == f"Bearer {TOKEN}" for _, _, h in server.seen)


def test_without_the_token_the_preflight_says_which_flag_to_set(server: AuthServer) -> None:
    with pytest.raises(PreflightError) as info:
        check_target(server.url, {}, None, None)
    assert info.value.code == exitcodes.TARGET_UNUSABLE
    assert "HTTP 401" in str(info.value) and "--bearer-token-env" in str(info.value)


def test_a_planted_token_is_in_no_output_and_no_process_list(server: AuthServer, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "H13_TEST_TOKEN": TOKEN, "HF_TOKEN": TOKEN}
    cmd = [sys.executable, "-m", "harness", "sweep", "--url", server.url,
           "--bearer-token-env", "H13_TEST_TOKEN", "--results-dir", str(tmp_path / "r"), "--run-id", "run",
           "--steps", "2", "--warmup-min-s", "0",
           "--measure-min-s", "2", "--input-mean", "40", "--input-stddev", "0", "--output-mean", "4",
           "--prompt-pool-size", "32",
           "--no-plots"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    listings = []
    while proc.poll() is None:
        listings.append(subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout)
        time.sleep(0.5)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == exitcodes.OK, err[-2000:]
    assert TOKEN not in out and TOKEN not in err
    assert all(TOKEN not in listing for listing in listings)
    files = [p for p in (tmp_path / "r").rglob("*") if p.is_file()]
    assert any(p.name.startswith("records-") for p in files) and any(p.name == "locust.html" for p in files)
    for path in files:
        assert TOKEN.encode() not in path.read_bytes(), path
    assert any(h.get("Authorization") == f"Bearer {TOKEN}" for m, _, h in server.seen if m == "POST")
