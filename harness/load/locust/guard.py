"""The Locust side of harness.load.storm: watch this process's records and stop an error storm.

`start(environment, timeout_s)` installs a fresh StormWatch on the record sink and a greenlet that,
once the watch has a verdict, prints it, sets the process exit code to 4 (harness.exitcodes) and
stops the runner (local runner or master; workers' records stay on their hosts). The sweep reads
`verdict()` afterwards to exit with the same code.

A write to the run directory that failed (`shared.write_error()`: the disk is full) stops the run
the same way but exits 2 (harness.exitcodes: the results directory); the sweep says it, from
`io_error()`.

`target_gone`, when given, is asked on the same tick: a server process we started that has died
("the emulator crashed mid-run (killed by SIGKILL, pid 123)") is a verdict of its own, said at
once, instead of 20 refused connections later as a storm of them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import gevent

from harness import exitcodes
from harness.load.locust.users import shared
from harness.load.storm import StormWatch

_state: dict[str, Any] = {"watch": None, "greenlet": None, "io": None}


def start(environment: Any, timeout_s: float, every_s: float = 0.25,
          target_gone: Callable[[], str | None] | None = None) -> StormWatch:
    stop()
    watch = StormWatch(timeout_s=timeout_s)
    shared.watch = watch
    _state["watch"], _state["io"] = watch, None
    shared.io_error = None

    def loop() -> None:
        while watch.verdict is None and _state["io"] is None:
            gevent.sleep(every_s)
            gone = target_gone() if target_gone is not None else None
            if gone and watch.verdict is None:
                watch.verdict = gone
            _state["io"] = shared.write_error()
        if _state["io"] is not None:  # the sweep says it once the run has stopped; Locust's own runs here
            if not getattr(environment, "harness_sweep", False):
                print(f"error: {_state['io']}; the test stopped (the records written before are kept)",
                      file=sys.stderr, flush=True)
            environment.process_exit_code = exitcodes.BAD_INPUT
        else:
            print(f"error: {watch.verdict}", file=sys.stderr, flush=True)
            environment.process_exit_code = exitcodes.TARGET_UNUSABLE
        runner = environment.runner
        if runner is not None:
            runner.quit()

    _state["greenlet"] = gevent.spawn(loop)
    return watch


def verdict() -> str | None:
    watch = _state["watch"]
    return None if watch is None or _state["io"] is not None else watch.verdict


def io_error() -> str | None:
    """The failed write that stopped the run (already said on stderr), or None."""
    return _state["io"]


def stop() -> None:
    greenlet = _state["greenlet"]
    if greenlet is not None and not greenlet.dead and greenlet is not gevent.getcurrent():
        greenlet.kill(block=False)
    _state["greenlet"] = None
