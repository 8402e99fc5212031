"""A stand-in for AWS `neuron-monitor` inside the emulator's image, so the Neuron path runs in tests.

It prints what the real tool prints — one complete JSON report a line per period, in the schema
of the Neuron Monitor User Guide (harness.telemetry.neuron) — with the figures derived from the
emulator's own state, read from its `/emulator/stats` ten times a period:

- NeuronCore utilization: the batch's occupancy, mean running slots ÷ MAX_BATCH_SIZE over the
  period, the same on every core (tensor-parallel shards step together), HF_NUM_CORES cores;
- device memory: the model's weights (16 GiB: an 8B-parameter model in bf16) plus a KV cache
  share per running request;
- execution_summary.completed: the engine steps (prefills + decodes) finished in the period.

Nothing here pretends to be measured hardware: the report's `neuron_hardware_info` says
`"neuron_device_type": "emulated"`. Run as `neuron-monitor` in the image (a wrapper script) or
`python -m harness.emulator.neuron_monitor --url http://127.0.0.1:PORT`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from typing import Any

KV_BYTES_PER_REQUEST = 64 * 1024 * 1024


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return json.loads(resp.read())


def _period_from_config(path: str | None) -> float | None:
    """The `period` of a neuron-monitor config file ("1s", "500ms"), if one is given."""
    if not path:
        return None
    with open(path, encoding="utf-8") as fh:
        text = str(json.load(fh).get("period", "1s"))
    return float(text[:-2]) / 1000 if text.endswith("ms") else float(text.rstrip("s"))


def report(occupancy: float, running: float, steps: int, period: float, cores: int, weights: int) -> dict:
    """One report in neuron-monitor's JSON schema."""
    util = round(100.0 * occupancy, 2)
    return {
        "neuron_runtime_data": [{
            "pid": os.getppid(), "address": "", "neuron_runtime_tag": "emulator", "error": "",
            "report": {
                "neuroncore_counters": {
                    "period": period, "error": "",
                    "neuroncores_in_use": {str(i): {"neuroncore_utilization": util, "flops": 0}
                                           for i in range(cores)},
                },
                "memory_used": {
                    "period": period, "error": "", "loaded_models": [],
                    "neuron_runtime_used_bytes": {
                        "host": 0, "neuron_device": int(weights + running * KV_BYTES_PER_REQUEST),
                    },
                },
                "execution_stats": {
                    "period": period, "error": "",
                    "error_summary": dict.fromkeys(
                        ("generic", "numerical", "transient", "model", "runtime", "hardware"), 0),
                    "execution_summary": {"completed": steps, "completed_with_err": 0,
                                          "completed_with_num_err": 0, "timed_out": 0,
                                          "incorrect_input": 0, "failed_to_queue": 0},
                    "latency_stats": {"total_latency": None, "device_latency": None},
                },
            },
        }],
        "system_data": {},
        "instance_info": {"instance_type": "emulated", "error": ""},
        "neuron_hardware_info": {"neuron_device_type": "emulated", "neuroncore_per_device_count": cores,
                                 "neuron_device_count": 1, "error": ""},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="neuron-monitor", description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--config-file", help="a neuron-monitor config (only its period is read)")
    ap.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('PORT', '80')}")
    ap.add_argument("--period-s", type=float, default=None)
    ap.add_argument("--reports", type=int, default=0, help="stop after this many (0: run until killed)")
    args = ap.parse_args(argv)
    period = args.period_s or _period_from_config(args.config_file) or 1.0
    config = _get(args.url + "/emulator/config")
    profile = config.get("profile") or {}
    max_batch = max(1, int(profile.get("max_batch_size") or 1))
    cores = int(os.environ.get("HF_NUM_CORES") or profile.get("num_cores") or 2)
    weights = 16 * 2**30
    last_steps = None
    n = 0
    while not args.reports or n < args.reports:
        t_end = time.monotonic() + period
        batches: list[int] = []
        stats: dict[str, Any] = {}
        while True:
            try:
                stats = _get(args.url + "/emulator/stats")
                batches.append(int(stats.get("batch_size") or 0))
            except OSError:
                pass
            left = t_end - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(period / 10, left))
        steps_now = int(stats.get("engine_prefills", 0)) + int(stats.get("engine_decodes", 0))
        steps = 0 if last_steps is None else max(0, steps_now - last_steps)
        last_steps = steps_now
        running = sum(batches) / len(batches) if batches else 0.0
        line = report(running / max_batch, running, steps, period, cores, weights)
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        n += 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
