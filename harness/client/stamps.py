"""Kernel receive timestamps: enabling SO_TIMESTAMPNS, reading its control message, and turning it
into a perf_counter stamp.

Why: a read's stamp should be the moment the kernel received its last byte, not the moment a busy
client (another greenlet, a GC pause, a burst of events) got round to reading it. On Linux a
plain-http socket asks for SO_TIMESTAMPNS and is read with recvmsg(); the kernel time is converted
to the perf_counter clock by the age it had when we read it. Without it (TLS, other systems,
`--stamps recv`) a read is stamped with `perf_counter()` right after recv().
"""

from __future__ import annotations

import platform
import socket
import sys
import time

RECV_SIZE = 65536  # bytes asked of one recv()/recvmsg()
ANC_SIZE = 64  # room for one SCM_TIMESTAMPNS control message
# 35 on x86 and the asm-generic architectures (arm, arm64, riscv, ...); not on sparc, parisc, alpha, mips
SO_TIMESTAMPNS: int | None = getattr(socket, "SO_TIMESTAMPNS", None)
if SO_TIMESTAMPNS is None and sys.platform.startswith("linux") and platform.machine() in (
    "x86_64", "i386", "i686", "aarch64", "arm64", "armv7l", "armv6l", "riscv64", "ppc64le", "s390x",
):  # fmt: skip
    SO_TIMESTAMPNS = 35
_SOL_SOCKET = socket.SOL_SOCKET
_ORDER = sys.byteorder
_MAX_AGE_S = 60.0  # an older kernel stamp is not believed (clock stepped): use the read time
_time_ns = time.time_ns


def kernel_stamp(anc: list, now: float, floor: float) -> float:
    """The kernel receive time of a recvmsg() as a perf_counter value (else `now`), ≥ `floor`.

    `anc` is recvmsg()'s ancillary data, `now` the perf_counter time of the read, `floor` the
    previous stamp of the response (stamps never go backwards).
    """
    if anc:
        level, kind, cd = anc[0]
        if level == _SOL_SOCKET and kind == SO_TIMESTAMPNS:
            half = len(cd) // 2  # struct timespec: two longs (8 bytes each on 64-bit, 4 on 32-bit)
            if half in (4, 8):
                ns = int.from_bytes(cd[:half], _ORDER, signed=True) * 1_000_000_000 + int.from_bytes(
                    cd[half:], _ORDER, signed=True)
                age = (_time_ns() - ns) * 1e-9
                if 0.0 <= age < _MAX_AGE_S:
                    now -= age
    return now if now > floor else floor


def stamp_source(option: str, url: str | None) -> str:
    """Which stamps a connection to `url` gets under `--stamps option`: kernel receive timestamps
    need Linux (a known SO_TIMESTAMPNS) and plain http; everything else is stamped at the read."""
    if option != "kernel" or SO_TIMESTAMPNS is None or (url or "").lower().startswith("https:"):
        return "recv"
    return "kernel"


def enable_kernel_stamps(sock: socket.socket) -> bool:
    """Ask for SO_TIMESTAMPNS receive timestamps on a plain TCP socket (Linux); False if refused."""
    if SO_TIMESTAMPNS is None or not hasattr(sock, "recvmsg"):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True
