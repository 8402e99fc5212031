"""The greenlet that scrapes the server's Prometheus endpoint during a run (master or local runner).

It runs in the process that runs the load shape, so its timestamps (`time.time()`, the midpoint of
each scrape's request and response) are on the clock of the step windows. Samples go to
`server_metrics.jsonl` in the run directory, change-only (format: harness.telemetry.series); the
report turns them into per-step server figures and `server_metrics.parquet`. A server without the
endpoint costs one line in the manifest (`telemetry.prometheus`), never the run.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from harness.telemetry.prometheus import Reader
from harness.telemetry.series import SERVER_METRICS, ChangeEncoder


class PrometheusScraper:
    """Scrapes `url` every `every_s` seconds into `run_dir/server_metrics.jsonl` until stopped."""

    def __init__(self, url: str, run_dir: Path, every_s: float = 1.0, headers: dict[str, str] | None = None):
        self.url, self.every_s, self.headers = url, every_s, headers or {}
        self.path = Path(run_dir) / SERVER_METRICS
        self.encoder = ChangeEncoder()
        self.reader = Reader()
        self.scrapes = 0
        self.errors = 0
        self.note = ""
        self._greenlet: Any = None

    def start(self) -> PrometheusScraper:
        import gevent

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", encoding="utf-8") as fh:
            fh.write(json.dumps({"kind": "source", "source": "prometheus", "url": self.url,
                                 "every_s": self.every_s, "buckets": "per-bucket"}) + "\n")
        self._greenlet = gevent.spawn(self._loop)
        return self

    def scrape_once(self, pause: Any = None) -> dict[str, Any]:
        """One scrape as the file's line (an `error` line when it failed). `pause` (gevent.sleep(0)
        in the loop) lets the users' greenlets run between parsing and encoding: a TGI scrape costs
        a few ms of CPU here (~4,000 lines), and splitting it keeps any one pause of the hub short."""
        t0 = time.time()
        try:
            req = urllib.request.Request(self.url, headers=self.headers)
            with urllib.request.urlopen(req, timeout=max(2.0, self.every_s)) as resp:
                text = resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return {"t": round(time.time(), 6), "error": f"HTTP {exc.code}", "status": exc.code}
        except (OSError, ValueError) as exc:
            return {"t": round(time.time(), 6), "error": f"{type(exc).__name__}: {exc}"}
        t = (t0 + time.time()) / 2
        exp = self.reader.read(text)
        if pause is not None:
            pause()
        if not exp.samples:
            return {"t": round(t, 6), "error": "no Prometheus samples in the response"}
        return self.encoder.line(t, exp.samples, exp.types)

    def _loop(self) -> None:
        import gevent

        next_at = time.monotonic()
        while True:
            line = self.scrape_once(pause=lambda: gevent.sleep(0))
            if "error" in line:
                self.errors += 1
                if self.scrapes == 0 and line.get("status") in (404, 405):
                    self.note = f"no Prometheus endpoint at {self.url} ({line['error']})"
                    self._write(line)
                    return  # a server without /metrics: said once, not retried every second
            else:
                self.scrapes += 1
            self._write(line)
            next_at += self.every_s
            gevent.sleep(max(0.0, next_at - time.monotonic()))

    def _write(self, line: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")

    def stop(self) -> dict[str, Any]:
        """End the scraping; what the manifest says about it."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=5)
            self._greenlet = None
        if self.scrapes == 0 and not self.note:
            self.note = f"no scrape of {self.url} succeeded"
        out: dict[str, Any] = {"url": self.url, "every_s": self.every_s, "scrapes": self.scrapes,
                               "errors": self.errors, "file": SERVER_METRICS}
        if self.note:
            out["note"] = self.note
        return out
