"""Worker → master records and clocks over Locust's messaging (the bookkeeping: harness.load.distributed).

Worker (`WorkerShipper`): measures its clock offset to the master as soon as it connects (a burst
of ping/pong exchanges, then one every CLOCK_EVERY_S; the minimum-RTT exchange wins), shifts its
records' send times and health samples onto the master's clock, and sends its records in batches
every SEND_EVERY_S until the master acknowledges each batch. When the outbox is full, the user
that produced a record waits (backpressure, never loss). Asked to drain (the master's test_stop),
it sends what is left and says so once every batch is acknowledged.

Master (`MasterReceiver`): hands each new record to `shared.sink` — which writes one records file
per worker into the master's run directory and feeds the live view, exactly as in one process —
acknowledges every batch (again for a resend, written once), keeps each worker's clock estimate,
watches for workers that go missing (a lost worker: `losses`, which flag their steps), and at
test_stop waits until every live worker has drained (at most DRAIN_TIMEOUT_S).
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

import gevent
from locust.runners import STATE_MISSING

from harness.load.distributed import (
    ACK_MESSAGE,
    CLOCK_MESSAGE,
    DRAIN_MESSAGE,
    DRAINED_MESSAGE,
    PING_MESSAGE,
    PONG_MESSAGE,
    RECORDS_MESSAGE,
    ClockEstimate,
    Inbox,
    Outbox,
)
from harness.load.locust.users import shared
from harness.records.record import Record

log = logging.getLogger(__name__)
SEND_EVERY_S = 0.25
CLOCK_BURST = 8
CLOCK_EVERY_S = 5.0
DRAIN_TIMEOUT_S = 60.0
WATCH_EVERY_S = 0.5



def _clock_id() -> str | None:
    """This kernel's boot id (Linux): processes, network namespaces and containers of one host
    share it, and with it one system clock (CLOCK_REALTIME is not namespaced)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


CLOCK_ID = _clock_id()

class WorkerShipper:
    """A worker's side (see the module docstring). `start()` once the runner exists."""

    def __init__(self, runner: Any, batch_size: int = 200, max_records: int = 100_000) -> None:
        self.runner = runner
        self.outbox = Outbox(shared.worker, batch_size, max_records)
        self.clock = ClockEstimate()
        self._ids = itertools.count()
        self._loop: Any = None
        runner.register_message(ACK_MESSAGE, self._on_ack)
        runner.register_message(PONG_MESSAGE, self._on_pong)
        runner.register_message(DRAIN_MESSAGE, self._on_drain, concurrent=True)

    def start(self) -> WorkerShipper:
        if self._loop is None:
            self._loop = gevent.spawn(self._run)
        return self

    def put(self, record: Record) -> None:
        """shared.forward: queue one record (the caller waits while the outbox is full)."""
        self.outbox.worker = record.worker  # this process's id (changes if Locust forked it)
        while self.outbox.full():
            gevent.sleep(0.05)
        self.outbox.put(record.to_json())

    def _send(self, kind: str, data: Any) -> bool:
        try:
            self.runner.send_message(kind, data)
            return True
        except Exception as exc:  # noqa: BLE001 - the connection is down: the batch stays unacknowledged
            log.debug("%s not sent: %s", kind, exc)
            return False

    def _ping(self) -> None:
        self._send(PING_MESSAGE, {"id": next(self._ids), "t0": time.time()})

    def _run(self) -> None:
        for _ in range(CLOCK_BURST):
            self._ping()
            gevent.sleep(0.05)
        last_ping = time.monotonic()
        while True:
            gevent.sleep(SEND_EVERY_S)
            self.send_batches()
            if time.monotonic() - last_ping >= CLOCK_EVERY_S:
                last_ping = time.monotonic()
                self._ping()

    def send_batches(self) -> None:
        for batch in self.outbox.batches(time.monotonic()):
            self._send(RECORDS_MESSAGE, batch)

    def _on_ack(self, environment: Any, msg: Any, **_: Any) -> None:
        self.outbox.ack(msg.data or ())

    def _on_pong(self, environment: Any, msg: Any, **_: Any) -> None:
        data = msg.data or {}
        if CLOCK_ID is not None and data.get("clock") == CLOCK_ID and not self.clock.exact:
            self.clock.same_clock()
        if self.clock.add(float(data["t0"]), float(data["tm"]), time.time()) is None:
            return
        shared.clock_offset_s = self.clock.offset_s
        if self.clock.exchanges >= CLOCK_BURST:  # from the end of the first burst on, each update
            self._send(CLOCK_MESSAGE, {"worker": shared.worker, **(self.clock.best() or {})})

    def _on_drain(self, environment: Any, msg: Any, **_: Any) -> None:
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        self.send_batches()
        while not self.outbox.drained() and time.monotonic() < deadline:
            gevent.sleep(SEND_EVERY_S)
            self.send_batches()
        self._send(DRAINED_MESSAGE, {"worker": shared.worker, "last_seq": self.outbox.last_seq,
                                     "drained": self.outbox.drained(), "sent": self.outbox.sent,
                                     "resent": self.outbox.resent, "round": (msg.data or {}).get("round")})


class MasterReceiver:
    """The master's side (see the module docstring)."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.inbox = Inbox()
        self.clocks: dict[str, dict[str, Any]] = {}  # record worker id → its estimate
        self.nodes: dict[str, str] = {}  # record worker id → Locust node id
        self.losses: list[dict[str, Any]] = []  # {"worker", "node", "lost_at", "back_at"}
        self._missing: dict[str, dict[str, Any]] = {}  # node → its open loss
        self._drained: dict[str, dict[str, Any]] = {}
        self._round = 0
        runner.register_message(RECORDS_MESSAGE, self._on_records)
        runner.register_message(PING_MESSAGE, self._on_ping)
        runner.register_message(CLOCK_MESSAGE, self._on_clock)
        runner.register_message(DRAINED_MESSAGE, self._on_drained)
        self._watch = gevent.spawn(self._watch_loop)

    def _on_records(self, environment: Any, msg: Any, **_: Any) -> None:
        batch = msg.data
        lines = self.inbox.accept(batch)
        if isinstance(batch, dict):
            self.nodes[str(batch.get("worker"))] = str(msg.node_id)
        if lines:
            for line in lines:
                shared.sink(Record.from_json(line))
        if isinstance(batch, dict) and "seq" in batch:
            self.runner.send_message(ACK_MESSAGE, [batch["seq"]], client_id=msg.node_id)

    def _on_ping(self, environment: Any, msg: Any, **_: Any) -> None:
        data = dict(msg.data or {})
        data["tm"] = time.time()
        data["clock"] = CLOCK_ID
        self.runner.send_message(PONG_MESSAGE, data, client_id=msg.node_id)

    def _on_clock(self, environment: Any, msg: Any, **_: Any) -> None:
        data = dict(msg.data or {})
        worker = str(data.pop("worker", msg.node_id))
        self.clocks[worker] = {**data, "node": str(msg.node_id)}
        self.nodes[worker] = str(msg.node_id)

    def _on_drained(self, environment: Any, msg: Any, **_: Any) -> None:
        data = msg.data or {}
        if data.get("round") == self._round:
            self._drained[str(msg.node_id)] = data

    def _worker_of(self, node: str) -> str:
        return next((w for w, n in self.nodes.items() if n == node), node)

    def _watch_loop(self) -> None:
        while True:
            gevent.sleep(WATCH_EVERY_S)
            self.watch()

    def watch(self) -> None:
        """Note workers that went missing (no heartbeat for ~3 s) and those that came back."""
        now = time.time()
        present = {c.id: c.state for c in self.runner.clients.all}
        for node, state in present.items():
            if state == STATE_MISSING and node not in self._missing:
                loss = {"worker": self._worker_of(node), "node": node, "lost_at": now, "back_at": None}
                self._missing[node] = loss
                self.losses.append(loss)
                log.warning("worker %s lost (no heartbeat)", loss["worker"])
            elif state != STATE_MISSING and node in self._missing:
                self._missing.pop(node)["back_at"] = now
                log.warning("worker %s is back", self._worker_of(node))

    def drain(self, timeout: float = DRAIN_TIMEOUT_S) -> dict[str, Any]:
        """Ask every live worker for the rest of its records and wait until all arrived."""
        for loss in self.losses:  # a worker lost before its first message is known by its node only
            loss["worker"] = self._worker_of(loss["node"])
        self._round += 1
        self._drained = {}
        self.runner.send_message(DRAIN_MESSAGE, {"round": self._round})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = {c.id for c in self.runner.clients.all if c.state != STATE_MISSING}
            done = {
                node for node, d in self._drained.items()
                if d.get("drained") and self.inbox.complete(str(d["worker"]), int(d["last_seq"]))
            }
            if live <= done:
                break
            gevent.sleep(0.1)
        else:
            log.error("records of some workers did not all arrive within %.0f s", timeout)
        shared.flush()
        return self._drained

    def workers_json(self) -> dict[str, Any]:
        """Per worker (record worker id): its Locust node, clock offset, records received, losses."""
        out: dict[str, Any] = {}
        for worker in sorted(set(self.nodes) | set(self.inbox.workers()) | set(self.clocks)):
            node = self.nodes.get(worker)
            out[worker] = {
                "node": node,
                "clock": self.clocks.get(worker),
                "records_received": self.inbox.records.get(worker, 0),
                "lost": [{k: v for k, v in loss.items() if k in ("lost_at", "back_at")}
                         for loss in self.losses if loss["node"] == node],
            }
        return out
