"""neuron-monitor reports (the Neuron Monitor User Guide's JSON schema) as samples, their storage,
and a step's NeuronCore utilization and device memory from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.emulator.neuron_monitor import report as standin_report
from harness.targets.neuron_monitor import ReportRecorder
from harness.telemetry import neuron
from harness.telemetry.series import read_scrapes
from harness.telemetry.server_steps import server_step

pytestmark = pytest.mark.unit


def documented(util0: float, util1: float, device: int, errors: int = 0) -> dict:
    """A report shaped like the user guide's examples (groups trimmed to what is read)."""
    return {
        "neuron_runtime_data": [{
            "pid": 1234, "address": "", "neuron_runtime_tag": "tgi", "error": "",
            "report": {
                "neuroncore_counters": {"period": 1.0, "error": "", "neuroncores_in_use": {
                    "0": {"neuroncore_utilization": util0, "flops": 1234567891011},
                    "1": {"neuroncore_utilization": util1, "flops": 1234567891021}}},
                "memory_used": {"period": 1.0, "error": "", "neuron_runtime_used_bytes": {
                    "host": 6997643264, "neuron_device": device,
                    "usage_breakdown": {"host": {"application_memory": 6996594688}}}, "loaded_models": []},
                "execution_stats": {"period": 1.0, "error": "",
                                    "error_summary": {"generic": errors, "numerical": 0, "transient": 0,
                                                      "model": 0, "runtime": 0, "hardware": 0},
                                    "execution_summary": {"completed": 123, "completed_with_err": 0},
                                    "latency_stats": {"total_latency": None, "device_latency": None}},
            },
        }],
        "system_data": {"vcpu_usage": {"period": 1.0, "error": ""}},
        "instance_info": {"instance_type": "inf2.xlarge", "error": ""},
        "neuron_hardware_info": {"neuron_device_type": "inferentia2", "neuroncore_per_device_count": 2,
                                 "error": ""},
    }


def test_samples_read_utilization_memory_and_errors_per_core() -> None:
    got = {(n, lab): v for n, lab, v in neuron.samples(documented(42.01, 63.02, 12519788544, errors=2))}
    assert got[(neuron.UTILIZATION, (("core", "0"), ("runtime", "tgi")))] == 42.01
    assert got[(neuron.UTILIZATION, (("core", "1"), ("runtime", "tgi")))] == 63.02
    assert got[(neuron.DEVICE_MEMORY, (("runtime", "tgi"),))] == 12519788544
    assert got[(neuron.HOST_MEMORY, (("runtime", "tgi"),))] == 6997643264
    assert got[(neuron.ERRORS, (("runtime", "tgi"), ("type", "generic")))] == 2
    assert got[(neuron.EXECUTIONS, (("outcome", "completed"), ("runtime", "tgi")))] == 123
    assert neuron.samples({"neuron_runtime_data": [], "system_data": {}}) == []  # no app: nothing


def test_the_emulators_standin_speaks_the_same_schema() -> None:
    rep = standin_report(occupancy=0.5, running=4, steps=10, period=1.0, cores=2, weights=16 * 2**30)
    got = {(n, dict(lab).get("core")): v for n, lab, v in neuron.samples(rep)}
    assert got[(neuron.UTILIZATION, "0")] == got[(neuron.UTILIZATION, "1")] == 50.0
    assert got[(neuron.DEVICE_MEMORY, None)] > 16 * 2**30


def test_recorded_reports_give_each_step_its_utilization_and_memory(tmp_path: Path) -> None:
    streamed = ReportRecorder(tmp_path / "streamed", "neuron-monitor")
    chunks = [b"42", b"42\n" + json.dumps(documented(10, 30, 100)).encode()[:50],
              json.dumps(documented(10, 30, 100)).encode()[50:] + b"\n"]
    pids: list[str] = []
    streamed.consume(chunks, first_line=pids.append)  # the pid line, then one report split in two
    assert pids == ["4242"] and streamed.reports == 1
    rec = ReportRecorder(tmp_path, "neuron-monitor")
    rec.line(json.dumps(documented(40, 60, 200, errors=1)), t=1000.0)
    rec.line(json.dumps(documented(80, 100, 300)), t=1001.0)
    rec.line("not json", t=1002.0)
    assert rec.summary()["unparsed_lines"] == 1
    scrapes = read_scrapes(tmp_path / neuron.NEURON_METRICS)
    v = server_step(None, 999.5, 1001.5, [], [], scrapes)
    assert v.neuron_reports == 2
    assert (v.neuroncore_util_mean, v.neuroncore_util_max) == (70.0, 90.0)  # (50 + 90) / 2, max 90
    assert (v.device_memory_mean, v.device_memory_max) == (250.0, 300.0)
    assert v.neuron_errors == 1
