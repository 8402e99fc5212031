"""Faults in a share of the streams (disconnects, SSE error events, malformed lines, stalls): the run
completes, each request the server got is one record, every record parses, and the faulted ones
are failures with their kind's type.

One emulator serves every kind: `--fault` given once per kind, the faulted requests take the kinds
in turn (harness.emulator.faults.FaultPolicy), so one sweep meets them all and each kind is told
apart by the error type its records carry."""

from __future__ import annotations

import pytest
from support.sweeps import SHORT, accounted, sweep

from harness import exitcodes

pytestmark = pytest.mark.integration

# each kind of fault → the error type its records must carry (the stall: the client's timeout)
KINDS = {
    "stall_ms=8000;after=1": "timeout",
    "disconnect=3": "truncated",
    "error=generation;after=2": "generation",
    "error=incomplete_generation;after=1": "incomplete_generation",
    "error=overloaded": "overloaded",
    "error=validation": "validation",
    "malformed=2": "malformed",
}
TIMEOUT_S = 3


@pytest.fixture(scope="module")
def faulted_run(tmp_path_factory: pytest.TempPathFactory, emulator_factory):
    """One sweep against an emulator that faults a share of requests, cycling through KINDS."""
    kinds = [arg for spec in KINDS for arg in ("--fault", spec)]
    emu = emulator_factory("fast", *kinds, "--fault-rate", "0.5", "--faults-after", "1", "--seed", "7")
    before = emu.stats()["requests_total"]
    tmp_path = tmp_path_factory.mktemp("midstream")
    proc = sweep(tmp_path, "--url", emu.url, *SHORT, "--measure-min-s", "2", "--timeout-s", str(TIMEOUT_S))
    after = emu.stats()
    received = after["requests_total"] - before - 1  # the pre-flight's request
    return proc, received, tmp_path / "r" / "run", after["faults_drawn"]


def test_mid_stream_faults_are_failed_records_every_request_accounted(faulted_run) -> None:
    """The run completes (exit 0), each request the server got is one record, every record parses,
    the faulted ones are failures with a type, and nobody waited past timeout_s."""
    proc, received, run, _ = faulted_run
    assert proc.returncode == exitcodes.OK, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    records = accounted(run)
    settled = [r for r in records if r.error_type != "cancelled"]
    assert len(settled) <= received <= len(records)
    failed = [r for r in settled if not r.ok]
    assert failed and all(r.error_type for r in failed)
    assert {r.error_type for r in failed} <= set(KINDS.values())  # no failure but the injected ones
    assert max(r.t_end - r.t_send for r in records) < TIMEOUT_S + 1.0  # a stall ends at the timeout


@pytest.mark.parametrize("fault", list(KINDS))
def test_each_fault_kind_shows_as_its_error_type(faulted_run, fault: str) -> None:
    """Every kind is met in the run, as failed records of its own type (a stall: a timeout), and
    never more of them than the emulator dealt out that kind (the kinds take turns in KINDS order)."""
    proc, _, run, drawn = faulted_run
    assert proc.returncode == exitcodes.OK, proc.stderr[-2000:]
    types = [r.error_type for r in accounted(run) if not r.ok]
    dealt = len(range(list(KINDS).index(fault), drawn, len(KINDS)))
    assert 1 <= types.count(KINDS[fault]) <= dealt, (sorted(set(types)), dealt)
