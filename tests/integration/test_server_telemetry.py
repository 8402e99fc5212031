"""The server's side of a sweep: the scraped /metrics give each step's queue and batch size, and
they agree with what the emulator itself says (/emulator/stats, polled independently by the test);
the emulator's neuron-monitor stand-in, run beside it natively, gives the NeuronCore rows; the
report rebuilds the server section from the saved samples alone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from harness.report.build import build_report
from harness.targets.neuron_monitor import ReportRecorder
from harness.telemetry.neuron import NEURON_METRICS

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
USERS, BATCH = 6, 2


def _poll_stats(url: str, out: list[tuple[float, int, int]], stop: threading.Event) -> None:
    while not stop.is_set():
        t0 = time.time()
        with urllib.request.urlopen(url + "/emulator/stats", timeout=5) as resp:
            stats = json.loads(resp.read())
        out.append(((t0 + time.time()) / 2, stats["queue_size"], stats["batch_size"]))
        stop.wait(0.05)


def test_step_queue_and_batch_agree_with_the_emulators_own_stats(emulator_factory, tmp_path: Path) -> None:
    emu = emulator_factory("fast", "--max-batch-size", str(BATCH))
    stats: list[tuple[float, int, int]] = []
    stop = threading.Event()
    poller = threading.Thread(target=_poll_stats, args=(emu.url, stats, stop), daemon=True)
    poller.start()
    # the stand-in as the container harness runs it, natively: its stdout stamped as it arrives
    recorder = ReportRecorder(tmp_path / "neuron", "neuron-monitor (stand-in)")
    monitor = subprocess.Popen([sys.executable, "-m", "harness.emulator.neuron_monitor", "--url", emu.url,
                                "--period-s", "0.5"], cwd=ROOT, stdout=subprocess.PIPE)
    lines = iter(monitor.stdout.readline, b"")
    reader = threading.Thread(target=recorder.consume, args=(lines,), daemon=True)
    reader.start()
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "harness", "sweep", "--url", emu.url, "--records-dir", str(run),
           "--steps", str(USERS), "--warmup-min-s", "1", "--measure-min-s", "4", "--output-mean", "200",
           "--input-mean", "100", "--input-stddev", "0", "--scrape-every-s", "0.25",
           "--prompt-pool-size", "64", "--quiet", "--no-plots"]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    finally:
        stop.set()
        poller.join(10)
        monitor.terminate()
        monitor.wait(10)
        reader.join(10)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (run / "server_metrics.jsonl").is_file() and (run / "server_metrics.parquet").is_file()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["telemetry"]["prometheus"]["scrapes"] > 0

    assert recorder.reports >= 8
    shutil.copy(recorder.path, run / NEURON_METRICS)
    (step,), md = build_report(run, with_plots=True)
    v = step.server
    assert v is not None and v.scrapes >= 8
    w = step.info.window
    inside = [(q, b) for t, q, b in stats if w.start <= t <= w.end]
    assert len(inside) >= 20
    own_queue = sum(q for q, _ in inside) / len(inside)
    own_batch = sum(b for _, b in inside) / len(inside)
    # both sample the same gauges at different instants: equal peaks, means within half a request
    assert v.batch_max == max(b for _, b in inside) == BATCH
    assert v.queue_max == max(q for q, _ in inside) >= USERS - BATCH - 1
    assert abs(v.batch_mean - own_batch) <= 0.5, (v.batch_mean, own_batch)
    assert abs(v.queue_mean - own_queue) <= 0.5, (v.queue_mean, own_queue)
    # the server counted what the client saw finish, and the queue time is there
    assert v.server_ok is not None and not v.count_mismatch, (v.server_ok, v.client_completed)
    assert v.timings["queue_time"].count > 0 and v.timings["prefill_time"].count > 0
    assert "## Server" in md and "Where the TTFT went" in md
    # NeuronCore utilization is the stand-in's batch occupancy: running slots ÷ MAX_BATCH_SIZE
    assert v.neuron_reports >= 6
    util = v.neuroncore_util_mean
    assert abs(util - 100 * v.batch_mean / BATCH) <= 15, (util, v.batch_mean)
    assert v.device_memory_max >= 16 * 2**30 and v.neuron_errors == 0
    assert "NeuronCore utilization" in md and "Neuron device memory" in md
    html = (run / "report.html").read_text()
    assert "<h2>Server</h2>" in html and "NeuronCore utilization over the run" in html
    assert (run / "neuron_metrics.parquet").is_file()


def test_a_server_without_the_endpoint_costs_one_manifest_line(fast_emulator, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "harness", "sweep", "--url", fast_emulator.url, "--records-dir", str(run),
           "--steps", "1", "--warmup-min-s", "0", "--measure-min-s", "2", "--output-mean", "10",
           "--input-mean", "50", "--input-stddev", "0", "--prompt-pool-size", "32",
           "--metrics-path", "/no-such-metrics", "--quiet", "--no-plots"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    prom = json.loads((run / "manifest.json").read_text())["telemetry"]["prometheus"]
    assert prom["scrapes"] == 0 and prom["note"].startswith("no Prometheus endpoint at ")
    assert "HTTP 404" in prom["note"]
    assert "## Server" not in (run / "summary.md").read_text()
