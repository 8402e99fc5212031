"""A sweep pointed at a server that is down, of another kind, unhealthy, silent or failing: it stops
before the first step (or as soon as the storm is clear) with one line, no traceback, and the
exit code of harness.exitcodes; what it recorded up to then is complete and accounted for.

Each fault is the emulator's own (harness.emulator.faults.ServerFaults) or a closed port / a name
that does not resolve; every emulator here runs with `--faults-after 1` where the pre-flight's one
short request must pass and the run must then meet the fault."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness import exitcodes
from harness.records.record import read_records

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SHORT = ["--steps", "2", "--warmup-min-s", "0", "--measure-min-s", "30", "--input-mean", "60",
         "--input-stddev", "0", "--output-mean", "8", "--quiet", "--no-plots", "--timeout-s", "5"]


def sweep(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "harness", "sweep", "--results-dir", str(tmp_path / "r"),
                           "--run-id", "run", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) >= 1, proc.stderr[-3000:]
    return lines[0]


def no_results(tmp_path: Path) -> None:
    """No run directory full of n/a: nothing was created."""
    assert not (tmp_path / "r" / "run").exists()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once we return: nothing listens there


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


def test_an_unhealthy_server_is_exit_4(tmp_path: Path, emulator_factory) -> None:
    emu = emulator_factory("fast", "--unhealthy")
    proc = sweep(tmp_path, "--url", emu.url, *SHORT)
    assert proc.returncode == exitcodes.TARGET_UNUSABLE
    assert "not healthy: /health answered HTTP 503" in one_error_line(proc)
    no_results(tmp_path)


def test_openai_only_server_gets_chat_by_default_and_a_hint_when_told_generate_stream(
        tmp_path: Path, emulator_factory) -> None:
    emu = emulator_factory("fast", "--openai-only")
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


def test_a_server_that_never_answers_is_exit_4_within_the_timeouts(tmp_path: Path, emulator_factory) -> None:
    emu = emulator_factory("fast", "--hang")
    proc = sweep(tmp_path, "--url", emu.url, *SHORT, timeout=60)
    assert proc.returncode == exitcodes.TARGET_UNUSABLE
    assert "no response from the server in 5 s" in one_error_line(proc)
    no_results(tmp_path)


def _accounted(run: Path) -> list:
    """Every request sent is one parseable record; ok + failed + cancelled = all of them."""
    records = [r for p in run.glob("records-*.jsonl") for r in read_records(p)]
    ok = sum(r.ok for r in records)
    cancelled = sum(r.error_type == "cancelled" for r in records)
    failed = sum(not r.ok and r.error_type != "cancelled" for r in records)
    assert ok + failed + cancelled == len(records) > 0
    return records


@pytest.mark.parametrize("status,extra", [
    (503, ["--retry-after", "2"]), (500, []), (422, []), (424, ["--no-http-body"]), (429, []),
])
def test_an_error_storm_mid_run_stops_with_its_type_and_exit_4(tmp_path: Path, emulator_factory,
                                                               status: int, extra: list[str]) -> None:
    emu = emulator_factory("fast", "--http-status", str(status), "--faults-after", "1", *extra)
    proc = sweep(tmp_path, "--url", emu.url, *SHORT)
    assert proc.returncode == exitcodes.TARGET_UNUSABLE, proc.stderr[-2000:]
    line = one_error_line(proc)
    assert f"HTTP {status}" in line and "the first 50 requests all failed" in line
    run = tmp_path / "r" / "run"
    records = _accounted(run)
    failed = [r for r in records if r.status == status]
    assert len(failed) >= 50
    assert (run / "summary.md").is_file()  # the report is written from what was recorded
    lines = [json.loads(x) for x in (run / "run.jsonl").read_text().splitlines()]
    assert any(x.get("facts", {}).get("stopped") for x in lines)


def test_a_server_that_dies_mid_run_is_exit_4_and_bounded(tmp_path: Path, emulator_factory) -> None:
    """Connection refused mid-run: users back off, the storm stops the run, no flood of records."""
    from harness.targets.emulator_process import EmulatorProcess

    emu = EmulatorProcess(profile="fast").start()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "sweep", "--results-dir", str(tmp_path / "r"),
                             "--run-id", "run", "--url", emu.url, *SHORT], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run = tmp_path / "r" / "run"
    try:
        import time

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(run.glob("records-*.jsonl")):
            time.sleep(0.2)
        time.sleep(1.0)
        emu.stop()
        out, err = proc.communicate(timeout=120)
    finally:
        emu.stop()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == exitcodes.TARGET_UNUSABLE, err[-2000:]
    assert "Traceback" not in err
    assert "the server is gone" in err or "connection" in err
    records = _accounted(run)
    assert len(records) < 5000  # a refused-connection loop writes thousands a second without backoff


def test_an_unwritable_results_directory_is_exit_2(tmp_path: Path, fast_emulator) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "harness", "sweep", "--results-dir", str(blocker / "r"),
                           "--url", fast_emulator.url, *SHORT], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == exitcodes.BAD_INPUT
    assert "cannot write the results directory" in one_error_line(proc)


@pytest.mark.parametrize("fault", [
    "disconnect=3", "error=generation;after=2", "error=incomplete_generation;after=1", "error=overloaded",
    "error=validation", "malformed=2", "stall_ms=8000;after=1",
])
def test_mid_stream_faults_are_failed_records_every_request_accounted(tmp_path: Path, emulator_factory,
                                                                       fault: str) -> None:
    """A share of requests meets the fault: the run completes (exit 0), each request the server
    got is one record, every record parses, the faulted ones are failures with a type."""
    emu = emulator_factory("fast", "--fault", fault, "--fault-rate", "0.3", "--faults-after", "1",
                           "--seed", "7")
    before = emu.stats()["requests_total"]
    proc = sweep(tmp_path, "--url", emu.url, *SHORT, "--measure-min-s", "6", "--timeout-s", "3")
    assert proc.returncode == exitcodes.OK, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    received = emu.stats()["requests_total"] - before - 1  # the pre-flight's request
    records = _accounted(tmp_path / "r" / "run")
    settled = [r for r in records if r.error_type != "cancelled"]
    assert len(settled) <= received <= len(records)
    failed = [r for r in settled if not r.ok]
    assert failed and all(r.error_type for r in failed)
    if fault.startswith("stall"):
        assert {r.error_type for r in failed} == {"timeout"}
        assert max(r.t_end - r.t_send for r in records) < 3 + 1.0  # nobody waited past timeout_s


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
