"""Locust's worker builds its argument parser once per process, not once per option of each spawn
message (harness.load.locust.spawnargs).

Runs in a child interpreter: importing locust gevent-patches the process (tests/support/child.py)."""

from __future__ import annotations

import pytest
from support.child import run_ok

pytestmark = pytest.mark.unit

CHILD = r"""
import inspect
import locust.argument_parser as argument_parser
from locust.runners import WorkerRunner
from harness.load.locust import spawnargs

# if Locust stops calling it this way, the memo no longer applies: look at runners.py again
assert "argument_parser.default_args_dict()" in inspect.getsource(WorkerRunner.handle_message)
original = argument_parser.default_args_dict
calls = []

def counting():
    calls.append(1)
    return original()

argument_parser.default_args_dict = counting
spawnargs.install()
spawnargs.install()  # idempotent
first, second = argument_parser.default_args_dict(), argument_parser.default_args_dict()
assert len(calls) == 1, calls
assert first == second == original() and "num_users" in first
first["num_users"] = -1  # each caller gets its own copy
assert argument_parser.default_args_dict()["num_users"] != -1
print("OK")
"""


def test_defaults_are_computed_once_and_equal_locusts() -> None:
    run_ok(CHILD)
