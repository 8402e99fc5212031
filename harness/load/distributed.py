"""Records and clocks across a master and its workers, as plain data (no Locust, no gevent).

A worker's records travel to the master over Locust's messaging (harness.load.locust.shipping
does the sending); this module holds the bookkeeping that makes that lossless and exact:

- `Outbox` (worker): serialised records wait here, are cut into batches with a sequence number
  per worker, and stay until the master acknowledges them; an unacknowledged batch is sent again
  after `resend_after_s` (a connection reset by Locust drops whatever ZeroMQ had queued). Its size
  is bounded: when `full()`, the caller waits (backpressure on the users, never loss).
- `Inbox` (master): which batches of each worker arrived, so a batch sent twice is written once.
- `ClockEstimate` (worker): its offset to the master's clock from request/response exchanges,
  NTP-style: offset = t_master − (t_send + t_recv)/2, uncertainty = RTT/2, the exchange with the
  smallest RTT wins (queueing only ever adds delay). Records and health samples are shifted by
  the offset on the worker, so everything the master writes is on the master's clock.
- `degraded_steps` (master): which steps a lost worker touched.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

RECORDS_MESSAGE = "harness_records"  # worker → master: {"worker", "seq", "records": [json, ...]}
ACK_MESSAGE = "harness_records_ack"  # master → worker: [seq, ...]
DRAIN_MESSAGE = "harness_drain"  # master → workers: send everything now, then say so
DRAINED_MESSAGE = "harness_drained"  # worker → master: {"worker", "last_seq"}
PING_MESSAGE = "harness_clock_ping"  # worker → master: {"id", "t0"}
PONG_MESSAGE = "harness_clock_pong"  # master → worker: {"id", "t0", "tm"}
CLOCK_MESSAGE = "harness_clock"  # worker → master: its current estimate (ClockEstimate.best)
LOST_WORKER = "degraded: lost worker"


class Outbox:
    """A worker's records on their way to the master (see the module docstring)."""

    def __init__(self, worker: str, batch_size: int = 200, max_records: int = 100_000,
                 resend_after_s: float = 5.0) -> None:
        self.worker = worker
        self.batch_size = batch_size
        self.max_records = max_records
        self.resend_after_s = resend_after_s
        self.pending: list[str] = []
        self.unacked: dict[int, tuple[float, list[str]]] = {}  # seq → (last sent, records)
        self.next_seq = 0
        self._unacked_records = 0
        self.sent = 0  # records put in a batch
        self.resent = 0  # batches sent again

    def __len__(self) -> int:
        return len(self.pending) + self._unacked_records

    def full(self) -> bool:
        return len(self) >= self.max_records

    def put(self, line: str) -> None:
        self.pending.append(line)

    def batches(self, now: float, cut_partial: bool = True) -> list[dict[str, Any]]:
        """Messages to send now: new batches (a partial one too unless `cut_partial` is False),
        then batches unacknowledged for `resend_after_s`."""
        out = []
        for seq, (sent_at, lines) in self.unacked.items():
            if now - sent_at >= self.resend_after_s:
                self.unacked[seq] = (now, lines)
                self.resent += 1
                out.append({"worker": self.worker, "seq": seq, "records": lines})
        while len(self.pending) >= self.batch_size or (cut_partial and self.pending):
            lines, self.pending = self.pending[: self.batch_size], self.pending[self.batch_size :]
            seq, self.next_seq = self.next_seq, self.next_seq + 1
            self.unacked[seq] = (now, lines)
            self._unacked_records += len(lines)
            self.sent += len(lines)
            out.append({"worker": self.worker, "seq": seq, "records": lines})
        return out

    def ack(self, seqs: Iterable[int]) -> None:
        for seq in seqs:
            entry = self.unacked.pop(int(seq), None)
            if entry is not None:
                self._unacked_records -= len(entry[1])

    def drained(self) -> bool:
        return not self.pending and not self.unacked

    @property
    def last_seq(self) -> int:
        return self.next_seq - 1


class Inbox:
    """The master's view of each worker's batches: a batch is accepted once, whatever arrives."""

    def __init__(self) -> None:
        self._below: dict[str, int] = {}  # every seq below this arrived
        self._above: dict[str, set[int]] = {}  # arrived seqs at or above it
        self.records: dict[str, int] = {}
        self.duplicates = 0

    def accept(self, batch: Any) -> list[str] | None:
        """The batch's records if it is new, else None (a resend: acknowledge it again, write nothing)."""
        if not isinstance(batch, dict) or not isinstance(batch.get("records"), list):
            return None
        worker, seq = str(batch.get("worker")), int(batch.get("seq", -1))
        below = self._below.setdefault(worker, 0)
        above = self._above.setdefault(worker, set())
        if seq < below or seq in above:
            self.duplicates += 1
            return None
        above.add(seq)
        while below in above:
            above.discard(below)
            below += 1
        self._below[worker] = below
        self.records[worker] = self.records.get(worker, 0) + len(batch["records"])
        return batch["records"]

    def complete(self, worker: str, last_seq: int) -> bool:
        """Every batch up to `last_seq` arrived."""
        return self._below.get(worker, 0) > last_seq

    def workers(self) -> list[str]:
        return sorted(self._below)


@dataclass(frozen=True)
class ClockSample:
    rtt_s: float
    offset_s: float  # add to this worker's wall clock to get the master's


class ClockEstimate:
    """A worker's offset to the master from (t0, t_master, t1) exchanges, minimum-RTT filter over
    the last `keep` exchanges (old ones go: clocks drift)."""

    def __init__(self, keep: int = 32) -> None:
        self.samples: deque[ClockSample] = deque(maxlen=keep)
        self.exchanges = 0
        self.exact = False  # same_clock(): the master reads this worker's clock

    def add(self, t0: float, t_master: float, t1: float) -> ClockSample | None:
        if t1 < t0:
            return None
        if self.exact:
            self.exchanges += 1
            return self.samples[0]
        sample = ClockSample(t1 - t0, t_master - (t0 + t1) / 2)
        self.samples.append(sample)
        self.exchanges += 1
        return sample

    def same_clock(self) -> None:
        """The master runs on this worker's kernel (same boot id: another process, a network
        namespace or a container of this host): both read one system clock, the offset is 0
        exactly. An estimate from exchanges would only add its error (half a round trip, tens of
        ms on a busy machine: enough to misplace a schedule's arrivals)."""
        self.samples.clear()
        self.samples.append(ClockSample(0.0, 0.0))
        self.exact = True

    def best(self) -> dict[str, float | int] | None:
        """{"offset_s", "uncertainty_s", "rtt_s", "exchanges"} of the minimum-RTT exchange
        (and "same_clock": true when the master shares this worker's clock)."""
        if not self.samples:
            return None
        s = min(self.samples, key=lambda x: x.rtt_s)
        out: dict[str, float | int] = {"offset_s": s.offset_s, "uncertainty_s": s.rtt_s / 2,
                                       "rtt_s": s.rtt_s, "exchanges": self.exchanges}
        if self.exact:
            out["same_clock"] = True
        return out

    @property
    def offset_s(self) -> float:
        best = self.best()
        return float(best["offset_s"]) if best else 0.0


BRIEF_LOSS_S = 10.0  # the default [distributed] heartbeat_liveness_s: a worker back within it is noted


def degraded_steps(steps: list[dict[str, Any]], losses: list[dict[str, Any]],
                   brief_s: float = BRIEF_LOSS_S) -> dict[int, list[str]]:
    """Step → flags for workers lost while it ran: a loss at wall time `lost_at` touches the step
    whose phases span it (from its first phase's start to its last phase's end, open = running).
    A worker that came back (`back_at`) within `brief_s` (the master's heartbeat liveness) is not
    a loss: a stalled connection or a loaded machine's worker start; its records are complete
    either way (the master waits for them), and the manifest lists it."""
    out: dict[int, list[str]] = {}
    losses = [x for x in losses if x.get("back_at") is None or x["back_at"] - x["lost_at"] >= brief_s]
    for entry in steps:
        spans = list(entry["phases"].values())
        if not spans:
            continue
        start = min(p["start_wall"] for p in spans)
        ends = [p["end_wall"] for p in spans]
        end = float("inf") if any(e is None for e in ends) else max(ends)
        for loss in losses:
            if start <= loss["lost_at"] < end:
                out.setdefault(entry["step"], []).append(f"{LOST_WORKER} {loss['worker']}")
    return out
