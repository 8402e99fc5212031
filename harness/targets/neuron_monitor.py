"""neuron-monitor for the run, in the server's container (`docker exec`), its reports saved beside
the records as `neuron_metrics.jsonl` (format: harness.telemetry.series; figures:
harness.telemetry.neuron).

The sweep starts it when the server profile is `neuronx-tgi` ([telemetry] neuron_monitor), before
the first step, and stops it after the last. Each report line is stamped with `time.time()` when it
arrives, in the sweep's process: the clock of the step windows. A container without neuron-monitor
(or without devices) produces no report: the manifest says so (`telemetry.neuron`), the run goes on.

The exec runs `sh -c 'echo $$; exec neuron-monitor'`: the first line is the monitor's pid inside the
container, so stopping it is a `kill` of that one pid (docker has no call to end an exec).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.telemetry.neuron import NEURON_METRICS, samples
from harness.telemetry.series import ChangeEncoder


class ReportRecorder:
    """Writes neuron-monitor's report lines, as they arrive, to the run's neuron_metrics.jsonl."""

    def __init__(self, run_dir: Path, command: str) -> None:
        self.path = Path(run_dir) / NEURON_METRICS
        self.encoder = ChangeEncoder()
        self.reports = 0
        self.bad_lines = 0
        self.hardware: dict[str, Any] | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", encoding="utf-8") as fh:
            fh.write(json.dumps({"kind": "source", "source": "neuron-monitor", "command": command}) + "\n")

    def line(self, text: str, t: float | None = None) -> None:
        """One line of neuron-monitor's stdout (a whole JSON report)."""
        t = time.time() if t is None else t
        try:
            report = json.loads(text)
        except ValueError:
            self.bad_lines += 1
            return
        if not isinstance(report, dict):
            self.bad_lines += 1
            return
        self.reports += 1
        if self.hardware is None and isinstance(report.get("neuron_hardware_info"), dict):
            self.hardware = report["neuron_hardware_info"]
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(self.encoder.line(t, samples(report), {})) + "\n")

    def consume(self, chunks: Iterable[bytes], first_line: Any = None) -> None:
        """Split a byte stream into lines; the first goes to `first_line` when given."""
        buf = b""
        for chunk in chunks:
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                text = raw.decode("utf-8", "replace").strip()
                if not text:
                    continue
                if first_line is not None:
                    first_line(text)
                    first_line = None
                else:
                    self.line(text)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reports": self.reports, "file": NEURON_METRICS}
        if self.hardware:
            out["hardware"] = self.hardware
        if self.bad_lines:
            out["unparsed_lines"] = self.bad_lines
        if not self.reports:
            out["note"] = "neuron-monitor produced no report (not in the image, or no Neuron device)"
        return out


class ContainerNeuronMonitor:
    """neuron-monitor running in a container for the length of a run."""

    def __init__(self, api: Any, container_id: str, run_dir: Path, command: str = "neuron-monitor") -> None:
        self.api, self.container_id, self.command = api, container_id, command
        self.recorder = ReportRecorder(run_dir, command)
        self.pid: str | None = None
        self.exec_id: str | None = None
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ContainerNeuronMonitor:
        try:
            self.exec_id = self.api.exec_create(
                self.container_id, ["sh", "-c", f"echo $$; exec {self.command}"], stdout=True, stderr=False
            )["Id"]
            stream = self.api.exec_start(self.exec_id, stream=True)
        except Exception as exc:  # noqa: BLE001 - telemetry never fails a run
            self.error = f"docker exec failed: {exc}"
            return self
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True, name="neuron-monitor")
        self._thread.start()
        return self

    def _read(self, stream: Iterable[bytes]) -> None:
        def pid(text: str) -> None:
            self.pid = text if text.isdigit() else None

        try:
            self.recorder.consume(stream, first_line=pid)
        except Exception as exc:  # noqa: BLE001 - the container went away mid-run
            self.error = f"reading neuron-monitor: {exc}"

    def stop(self) -> dict[str, Any]:
        """End neuron-monitor (kill its pid in the container); what the manifest says about it."""
        if self.pid is not None:
            try:
                kill = self.api.exec_create(self.container_id, ["kill", self.pid])["Id"]
                self.api.exec_start(kill)
            except Exception:  # noqa: BLE001,S110 - the container may already be gone
                pass
        if self._thread is not None:
            self._thread.join(5)
        out = {"command": self.command, **self.recorder.summary()}
        if self.exec_id is not None:
            try:
                code = self.api.exec_inspect(self.exec_id).get("ExitCode")
                if code not in (None, 0) and not self.recorder.reports:
                    out["exit_code"] = code
            except Exception:  # noqa: BLE001,S110
                pass
        if self.error:
            out["error"] = self.error
        return out
