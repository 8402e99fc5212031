"""Machine knobs the benchmarks may set for their duration (and always restore), and report.

In a VM (this one is Firecracker) an idle vCPU halts at once when the guest's halt-poll window
(`/sys/module/haltpoll/parameters/guest_halt_poll_ns`) is 0: then every cross-core wake-up (the
emulator's send waking the client, about 50,000 a second at 1024 streams) is an IPI, i.e. a VM
exit paid on the sending core. Bare metal does not pay that. `--halt-poll-ns 200000` lets an idle
vCPU poll for 200 µs first, as latency benchmarks usually pin idle to shallow states; the default
`keep` leaves the machine as it is. Either way the value in force is written into the results.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

HALT_POLL = Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")


def halt_poll_ns() -> str:
    """The guest halt-poll window now in force ('n/a' where the knob does not exist)."""
    try:
        return HALT_POLL.read_text().strip()
    except OSError:
        return "n/a"


@contextlib.contextmanager
def halt_poll(value: str) -> Iterator[str]:
    """Set the halt-poll window to `value` ns for the block ('keep': leave it); yields the value in
    force. Fails loudly when asked to set it and it cannot be set (not root, no such knob)."""
    if value == "keep":
        yield halt_poll_ns()
        return
    if not value.isdigit():
        raise SystemExit(f"--halt-poll-ns: a number of ns or 'keep', not {value!r}")
    before = HALT_POLL.read_text().strip() if HALT_POLL.exists() else None
    try:
        HALT_POLL.write_text(value)
    except OSError as exc:
        raise SystemExit(f"--halt-poll-ns {value}: cannot write {HALT_POLL}: {exc}") from None
    try:
        yield halt_poll_ns()
    finally:
        if before is not None:
            HALT_POLL.write_text(before)
