"""SIGTERM handled as Ctrl-C (exit 143), and the second Ctrl-C: exit at once, leaving complete
record lines behind.

The first Ctrl-C (KeyboardInterrupt in the sweep's main greenlet) stops the users and writes the
report; it may take a few seconds. A user who presses Ctrl-C again wants out now: the handler
installed here writes the records still queued in memory as whole lines, in one write, and leaves
with exit code 130 (harness.exitcodes.INTERRUPTED) without unwinding greenlets — so no traceback
and no half-written line beyond the one a flush may have been in the middle of (which `report`
skips with a warning). `arm` does the same for Locust's own processes (the web UI, `locust -f`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from harness import exitcodes


def second_exits_at_once(*writers: Any) -> None:
    """Install the handler for the next SIGINT (the first one has been received)."""

    def handler(signum: int, frame: object) -> None:
        try:
            for writer in writers:
                if writer is None:
                    continue
                pending = list(getattr(writer, "_pending", []))
                fh = getattr(writer, "_fh", None)
                if fh is not None:
                    try:
                        fh.flush()
                    except (OSError, RuntimeError, ValueError):
                        pass  # interrupted in the middle of a write: that line may be torn
                if pending and getattr(writer, "error", None) is None:
                    data = "".join(r.to_json() + "\n" for r in pending).encode()
                    try:
                        fd = os.open(writer.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                        try:
                            os.write(fd, data)
                        finally:
                            os.close(fd)
                    except OSError:
                        pass  # a full disk: what is on it stays parseable
            os.write(2, b"interrupted again: exiting now\n")
        finally:
            sys.stdout.flush()
            os._exit(exitcodes.INTERRUPTED)

    signal.signal(signal.SIGINT, handler)


def arm(writers: Callable[[], list[Any]], now: bool = False) -> None:
    """A Locust process (web UI, `locust -f`): its first Ctrl-C stays Locust's graceful stop (a
    KeyboardInterrupt), and arms `second_exits_at_once` for the next; `now`: arm it at once (the
    process is already shutting down, e.g. on SIGTERM). A SIGINT the process ignores (started from a
    background shell) stays ignored; only the main thread can set handlers."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return
    if now:
        second_exits_at_once(*writers())
        return
    import gevent

    hub = gevent.get_hub()  # Locust's main greenlet handles the Ctrl-C: not an error to print
    hub.NOT_ERROR = (*hub.NOT_ERROR, KeyboardInterrupt)

    def first(signum: int, frame: Any) -> None:
        second_exits_at_once(*writers())
        signal.default_int_handler(signum, frame)  # KeyboardInterrupt, as without this handler

    signal.signal(signal.SIGINT, first)


_terminated = [False]


def sigterm_as_interrupt() -> None:
    """SIGTERM (a CI timeout, `docker stop`, systemd) ends the run like a first Ctrl-C: users
    stopped, report written, children stopped — and `terminated()` tells the exit code (143)."""

    def handler(signum: int, frame: object) -> None:
        _terminated[0] = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def terminated() -> bool:
    return _terminated[0]
