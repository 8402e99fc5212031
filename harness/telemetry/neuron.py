"""AWS neuron-monitor's JSON reports as samples, stored like the Prometheus scrapes.

neuron-monitor (aws-neuron-tools) prints one complete JSON report per period to stdout; its schema
is the Neuron Monitor User Guide's ("The JSON output format"): `neuron_runtime_data` holds one entry
per Neuron application (`pid`, `neuron_runtime_tag`, `error`, `report`), whose `report` has the
application metric groups — `neuroncore_counters.neuroncores_in_use["<core>"].neuroncore_utilization`
(percent over the period), `memory_used.neuron_runtime_used_bytes.{host,neuron_device}` (bytes now),
`execution_stats.{error_summary,execution_summary}` (counts in the period); `system_data` holds the
system groups. Each group has `period` (s) and `error` (a string, "" when none).

`samples` flattens one report into (name, labels, value) triples named `neuron_*`, so the report
is saved by the same change-only encoder as a scrape (`neuron_metrics.jsonl`) and read back with
harness.telemetry.series. Per-period counts are saved as they come (`*_period`): a window's total
is their sum over the reports inside it, not a delta.
"""

from __future__ import annotations

import math
from typing import Any

from harness.telemetry.prometheus import Labels
from harness.telemetry.series import Scrapes

NEURON_METRICS = "neuron_metrics.jsonl"
UTILIZATION = "neuron_neuroncore_utilization_percent"
DEVICE_MEMORY = "neuron_device_memory_used_bytes"
HOST_MEMORY = "neuron_host_memory_used_bytes"
ERRORS = "neuron_execution_errors_period"
EXECUTIONS = "neuron_executions_period"


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def samples(report: dict[str, Any]) -> list[tuple[str, Labels, float]]:
    """The figures a load test reads from one neuron-monitor report (absent groups: nothing)."""
    out: list[tuple[str, Labels, float]] = []
    for app in report.get("neuron_runtime_data") or []:
        if not isinstance(app, dict):
            continue
        tag = str(app.get("neuron_runtime_tag") or app.get("pid") or "")
        rep = app.get("report") or {}
        cores = (rep.get("neuroncore_counters") or {}).get("neuroncores_in_use") or {}
        for core, data in cores.items():
            v = _num((data or {}).get("neuroncore_utilization"))
            if v is not None:
                out.append((UTILIZATION, (("core", str(core)), ("runtime", tag)), v))
        used = (rep.get("memory_used") or {}).get("neuron_runtime_used_bytes") or {}
        for key, name in (("neuron_device", DEVICE_MEMORY), ("host", HOST_MEMORY)):
            v = _num(used.get(key))
            if v is not None:
                out.append((name, (("runtime", tag),), v))
        stats = rep.get("execution_stats") or {}
        for kind, v in (stats.get("error_summary") or {}).items():
            if (n := _num(v)) is not None:
                out.append((ERRORS, (("runtime", tag), ("type", str(kind))), n))
        for outcome, v in (stats.get("execution_summary") or {}).items():
            if (n := _num(v)) is not None:
                out.append((EXECUTIONS, (("outcome", str(outcome)), ("runtime", tag)), n))
    return out


def core_utilization(scrapes: Scrapes, start: float, end: float) -> list[float]:
    """Mean utilization over the NeuronCores in use, at each report inside [start, end] (percent)."""
    keys = scrapes.keys(UTILIZATION)
    out = []
    for t in scrapes.times_in(start, end):
        vals = [v for k in keys if (v := scrapes.value_at(k, t)) is not None]
        if vals:
            out.append(sum(vals) / len(vals))
    return out


def period_total(scrapes: Scrapes, name: str, start: float, end: float) -> float | None:
    """Sum of a per-period count over the reports inside the window (None: never reported)."""
    keys = scrapes.keys(name)
    if not keys:
        return None
    total = 0.0
    for t in scrapes.times_in(start, end):
        total += sum(v for k in keys if (v := scrapes.value_at(k, t)) is not None and not math.isnan(v))
    return total
