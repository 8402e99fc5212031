"""A distributed run across network namespaces: the master, two workers and the emulator each in
a namespace of their own (created here, joined by veth pairs to a bridge in a fifth; addresses
exist only inside them), the workers keeping local copies in separate directories.

Midway, worker w1's link goes down until the master marks it missing (no heartbeat for LIVENESS_S,
the master's `--heartbeat-liveness-s`; its batches wait or are sent again), then comes back. The master's
report must still equal an independent computation over the union of what the two workers recorded (their own
directories plus the master's run log and server telemetry), with no record twice, and the
manifest must list each worker's clock offset and its uncertainty, and w1's outage. Needs root
and `ip`.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from harness.report.build import build_report
from harness.report.tables import csv_rows, write_csv

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 150.0
NET = "10.231.77"
ROLES = {"master": 1, "w1": 2, "w2": 3, "emu": 4}
LIVENESS_S = 4  # [distributed] heartbeat_liveness_s (default 10): a shorter outage proves the same

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="needs root and iproute2's `ip` (network namespaces)",
)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


class Namespaces:
    """A bridge namespace and one namespace per role, each with eth0 = NET.<n>/24."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.hub = f"tlt-{tag}-hub"
        self.ns = {role: f"tlt-{tag}-{role}" for role in ROLES}
        self.created: list[str] = []

    def __enter__(self) -> Namespaces:
        try:
            for name in [self.hub, *self.ns.values()]:
                _ip("netns", "add", name)
                self.created.append(name)
            _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.hub, "link", "set", "br0", "up")
            for role, n in ROLES.items():
                ns, port = self.ns[role], f"p-{role}"
                _ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port,
                    "netns", self.hub)
                _ip("-n", self.hub, "link", "set", port, "master", "br0")
                _ip("-n", self.hub, "link", "set", port, "up")
                _ip("-n", ns, "addr", "add", f"{NET}.{n}/24", "dev", "eth0")
                _ip("-n", ns, "link", "set", "eth0", "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for name in reversed(self.created):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)
        self.created.clear()

    def popen(self, role: str, args: list[str], log: Path) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "LOCUST_"))}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        out = open(log, "w")  # noqa: SIM115 - the child holds it
        try:
            return subprocess.Popen(
                ["ip", "netns", "exec", self.ns[role], sys.executable, "-m", "harness", *args],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
            )
        finally:
            out.close()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _wait_http(ns: Namespaces, url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        probe = subprocess.run(["ip", "netns", "exec", ns.ns["master"], sys.executable, "-c",
                                f"import urllib.request; urllib.request.urlopen('{url}/info', timeout=2)"],
                               capture_output=True, timeout=30)
        if probe.returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"the emulator did not answer at {url}")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("netns")
    dirs = {role: tmp / role for role in ("master", "w1", "w2")}
    logs = tmp / "logs"
    logs.mkdir()
    url = f"http://{NET}.{ROLES['emu']}:8080"
    procs: dict[str, subprocess.Popen] = {}
    deadline = time.monotonic() + RUN_TIMEOUT_S
    with Namespaces() as ns:
        try:
            emu = ["emulate", "--profile", "fast", "--host", f"{NET}.{ROLES['emu']}", "--port", "8080"]
            procs["emu"] = ns.popen("emu", emu, logs / "emu.log")
            _wait_http(ns, url, deadline)
            procs["master"] = ns.popen("master", [
                "sweep", "--master", "--workers", "2", "--master-port", "5557", "--url", url,
                "--records-dir", str(dirs["master"]), "--steps", "2,4", "--warmup-min-s", "1",
                "--warmup-max-s", "1", "--measure-min-s", "8", "--measure-max-s", "8", "--input-mean", "50",
                "--input-stddev", "0", "--output-mean", "20", "--output-stddev", "0",
                "--prompt-pool-size", "40", "--no-plots", "--worker-records", "both",
                "--heartbeat-liveness-s", str(LIVENESS_S), "--report-every-s", "1", "--quiet"],
                logs / "master.log")
            for w in ("w1", "w2"):
                worker = ["sweep", "--worker", "--master-host", f"{NET}.{ROLES['master']}",
                          "--master-port", "5557", "--records-dir", str(dirs[w])]
                procs[w] = ns.popen(w, worker, logs / f"{w}.log")
            parts = ("master", "w1", "w2")
            while time.monotonic() < deadline and not any(
                    p.stat().st_size for p in dirs["master"].glob("records-*.jsonl")):
                time.sleep(0.1)
            _ip("-n", ns.ns["w1"], "link", "set", "eth0", "down")  # packets to and from w1 go nowhere
            master_log = logs / "master.log"
            while time.monotonic() < deadline and "lost (no heartbeat)" not in master_log.read_text():
                time.sleep(0.1)  # until the master marks w1 missing (LIVENESS_S and a bit)
            _ip("-n", ns.ns["w1"], "link", "set", "eth0", "up")
            while time.monotonic() < deadline and any(procs[r].poll() is None for r in parts):
                time.sleep(0.2)
            codes = {r: procs[r].poll() for r in ("master", "w1", "w2")}
        finally:
            for p in procs.values():
                _stop(p)
    tail = "\n".join(f"--- {p.name}\n{p.read_text()[-2500:]}" for p in sorted(logs.iterdir()))
    # back within LIVENESS_S of being marked missing: a stall, not a loss (harness.load.distributed): exit 0
    assert codes == {"master": 0, "w1": 0, "w2": 0}, f"{codes}\n{tail}"
    return {"dirs": dirs, "tmp": tmp, "tail": tail}


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_the_master_holds_exactly_what_both_workers_recorded(run: dict) -> None:
    dirs = run["dirs"]
    master = {p.name: _records(p) for p in dirs["master"].glob("records-*.jsonl")}
    workers = {p.name: _records(p) for w in ("w1", "w2") for p in dirs[w].glob("records-*.jsonl")}
    assert len(workers) == 2 and sorted(master) == sorted(workers), (sorted(master), run["tail"])
    for name, sent in workers.items():
        got = [r["request_id"] for r in master[name]]
        assert len(got) == len(set(got)), name  # no duplicates
        assert Counter(got) == Counter(r["request_id"] for r in sent), name
        assert {r["step"] for r in sent} == {0, 1}, name


def test_the_report_equals_one_computed_from_the_workers_records(run: dict) -> None:
    dirs, tmp = run["dirs"], run["tmp"]
    union = tmp / "union"
    union.mkdir()
    for p in dirs["master"].iterdir():  # the run log and the server telemetry: everything but records
        if p.is_file() and not p.name.startswith("records"):
            shutil.copy(p, union / p.name)
    for w in ("w1", "w2"):
        for p in dirs[w].glob("records-*.jsonl"):
            shutil.copy(p, union / p.name)
    independent, _ = build_report(union, write=False, with_plots=False)
    write_csv(union / "independent.csv", csv_rows(independent))
    mine = list(csv.DictReader(open(dirs["master"] / "summary.csv")))
    theirs = list(csv.DictReader(open(union / "independent.csv")))
    assert [int(r["users"]) for r in mine] == [2, 4]
    assert all(int(r["ok"]) > 0 for r in mine), mine
    assert mine == theirs


def test_each_workers_clock_offset_is_in_the_manifest(run: dict) -> None:
    manifest = json.loads((run["dirs"]["master"] / "manifest.json").read_text())
    workers = manifest["workers"]
    assert len(workers) == 2, workers
    for info in workers.values():
        clock = info["clock"]
        assert clock is not None and clock["exchanges"] >= 8, info
        assert 0 <= clock["uncertainty_s"] < 1.0 and abs(clock["offset_s"]) < 1.0, info
        assert info["records_received"] > 0, info
    w1 = next(p.name for p in run["dirs"]["w1"].glob("records-*.jsonl"))
    outage = [info for w, info in workers.items() if "records-" + w.replace(":", "-") + ".jsonl" == w1]
    assert len(outage) == 1, (w1, workers)
    # the master noticed w1's outage (no heartbeat for LIVENESS_S) and saw it come back
    assert outage[0]["lost"] and all(x["back_at"] is not None for x in outage[0]["lost"]), outage
