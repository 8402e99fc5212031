"""Faults in a share of the streams (disconnects, SSE error events, malformed lines, stalls): the run
completes, each request the server got is one record, every record parses, and the faulted ones
are failures with a type."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.sweeps import SHORT, accounted, sweep

from harness import exitcodes

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("fault", [
    "disconnect=3", "error=generation;after=2", "error=incomplete_generation;after=1", "error=overloaded",
    "error=validation", "malformed=2", "stall_ms=8000;after=1",
])
def test_mid_stream_faults_are_failed_records_every_requestaccounted(tmp_path: Path, emulator_factory,
                                                                       fault: str) -> None:
    """A share of requests meets the fault: the run completes (exit 0), each request the server
    got is one record, every record parses, the faulted ones are failures with a type."""
    emu = emulator_factory("fast", "--fault", fault, "--fault-rate", "0.3", "--faults-after", "1",
                           "--seed", "7")
    before = emu.stats()["requests_total"]
    proc = sweep(tmp_path, "--url", emu.url, *SHORT, "--measure-min-s", "2", "--timeout-s", "3")
    assert proc.returncode == exitcodes.OK, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    received = emu.stats()["requests_total"] - before - 1  # the pre-flight's request
    records = accounted(tmp_path / "r" / "run")
    settled = [r for r in records if r.error_type != "cancelled"]
    assert len(settled) <= received <= len(records)
    failed = [r for r in settled if not r.ok]
    assert failed and all(r.error_type for r in failed)
    if fault.startswith("stall"):
        assert {r.error_type for r in failed} == {"timeout"}
        assert max(r.t_end - r.t_send for r in records) < 3 + 1.0  # nobody waited past timeout_s
