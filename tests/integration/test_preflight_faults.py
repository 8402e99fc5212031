"""A sweep pointed at a server that is down, of another kind, unhealthy, silent or failing: it stops
before the first step (or as soon as the storm is clear) with one line, no traceback, and the
exit code of harness.exitcodes; what it recorded up to then is complete and accounted for.

Each fault is the emulator's own (harness.emulator.faults.ServerFaults) or a closed port / a name
that does not resolve; every emulator here runs with `--faults-after 1` where the pre-flight's one
short request must pass and the run must then meet the fault."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.sweeps import ROOT, SHORT, closed_port, no_results, one_error_line, sweep

from harness import exitcodes

pytestmark = pytest.mark.integration


def test_connection_refused_is_exit_4_at_once(tmp_path: Path) -> None:
    proc = sweep(tmp_path, "--url", f"http://127.0.0.1:{closed_port()}", *SHORT)
    assert proc.returncode == exitcodes.TARGET_UNUSABLE
    assert "connection refused" in one_error_line(proc)
    no_results(tmp_path)


def test_a_name_that_does_not_resolve_is_exit_4(tmp_path: Path) -> None:
    proc = sweep(tmp_path, "--url", "http://no-such-host.invalid:8080", *SHORT)
    assert proc.returncode == exitcodes.TARGET_UNUSABLE
    assert "cannot resolve the host 'no-such-host.invalid'" in one_error_line(proc)
    no_results(tmp_path)


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "ftp://x", "http://", "http://a b:1"])
def test_a_malformed_url_is_exit_2(tmp_path: Path, url: str) -> None:
    proc = sweep(tmp_path, "--url", url, *SHORT)
    assert proc.returncode == exitcodes.BAD_INPUT
    assert "--url" in one_error_line(proc)
    no_results(tmp_path)


def test_a_missing_tokenizer_is_exit_2_naming_it(tmp_path: Path, fast_emulator) -> None:
    proc = sweep(tmp_path, "--url", fast_emulator.url, "--tokenizer", str(tmp_path / "nope"), *SHORT)
    assert proc.returncode == exitcodes.BAD_INPUT
    line = one_error_line(proc)
    assert str(tmp_path / "nope") in line and "tokenizer.json" in line
    assert proc.stderr.count("\n") <= 2
    no_results(tmp_path)


def test_a_hub_tokenizer_offline_is_exit_2_with_the_fix(tmp_path: Path, fast_emulator) -> None:
    env_before = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        proc = sweep(tmp_path, "--url", fast_emulator.url, "--tokenizer", "no-such-org/no-such-model", *SHORT)
    finally:
        if env_before is None:
            os.environ.pop("HF_HUB_OFFLINE")
        else:
            os.environ["HF_HUB_OFFLINE"] = env_before
    assert proc.returncode == exitcodes.BAD_INPUT
    line = one_error_line(proc)
    assert "no-such-org/no-such-model" in line and "HF_HUB_OFFLINE" in line


def test_token_budget_beyond_the_servers_limits_is_exit_2(tmp_path: Path, fast_emulator) -> None:
    info = fast_emulator.get_json("/info")
    too_long = str(info["max_input_tokens"] + 1)
    proc = sweep(tmp_path, "--url", fast_emulator.url, *SHORT, "--input-mean", too_long)
    assert proc.returncode == exitcodes.BAD_INPUT
    assert "max_input_tokens" in one_error_line(proc)
    no_results(tmp_path)


def test_an_unhealthy_server_is_exit_4(tmp_path: Path, faulty_emulator) -> None:
    emu = faulty_emulator(unhealthy=True)
    proc = sweep(tmp_path, "--url", emu.url, *SHORT)
    assert proc.returncode == exitcodes.TARGET_UNUSABLE
    assert "not healthy: /health answered HTTP 503" in one_error_line(proc)
    no_results(tmp_path)


def test_openai_only_server_gets_chat_by_default_and_a_hint_when_told_generate_stream(
        tmp_path: Path, faulty_emulator) -> None:
    emu = faulty_emulator(openai_only=True)
    proc = sweep(tmp_path, "--url", emu.url, *SHORT, "--api", "generate_stream")
    assert proc.returncode == exitcodes.TARGET_UNUSABLE
    line = one_error_line(proc)
    assert "HTTP 404" in line and "use --api chat" in line
    no_results(tmp_path)

    proc = sweep(tmp_path, "--url", emu.url, *SHORT, "--measure-min-s", "1")
    assert proc.returncode == exitcodes.OK, proc.stderr[-2000:]
    manifest = json.loads((tmp_path / "r" / "run" / "manifest.json").read_text())
    assert manifest["config"]["request"]["api"] == "chat"
    assert manifest["config"]["request"]["model_name"] == emu.get_json("/v1/models")["data"][0]["id"]


def test_a_server_that_never_answers_is_exit_4_within_the_timeouts(tmp_path: Path, faulty_emulator) -> None:
    emu = faulty_emulator(hang=True)
    proc = sweep(tmp_path, "--url", emu.url, *SHORT, timeout=60)
    assert proc.returncode == exitcodes.TARGET_UNUSABLE
    assert "no response from the server in 5 s" in one_error_line(proc)
    no_results(tmp_path)


def test_an_unwritable_results_directory_is_exit_2(tmp_path: Path, fast_emulator) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "harness", "sweep", "--results-dir", str(blocker / "r"),
                           "--url", fast_emulator.url, *SHORT], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == exitcodes.BAD_INPUT
    assert "cannot write the results directory" in one_error_line(proc)


def test_bad_emulator_arguments_are_exit_2_in_one_line(tmp_path: Path) -> None:
    proc = sweep(tmp_path, "--emulator-args=--no-such-flag", *SHORT)
    assert proc.returncode == exitcodes.BAD_INPUT
    line = one_error_line(proc)
    assert "exited with code 2" in line and "--no-such-flag" in line
    no_results(tmp_path)


def test_a_hub_tokenizer_without_a_network_fails_fast(tmp_path: Path, fast_emulator) -> None:
    """No HF_HUB_OFFLINE, the Hub unreachable (HF_ENDPOINT at a closed port): one line, exit 2 (the
    tokenizer looks at the endpoint first and then only in the cache, instead of retrying)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
           "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_HUB_OFFLINE", None)
    proc = subprocess.run([sys.executable, "-m", "harness", "sweep", "--results-dir", str(tmp_path / "r"),
                           "--url", fast_emulator.url, "--tokenizer", "no-such-org/no-such-model", *SHORT],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == exitcodes.BAD_INPUT
    line = one_error_line(proc)
    assert "no-such-org/no-such-model" in line and "the Hub did not answer" in line
