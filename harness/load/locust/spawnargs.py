"""A Locust worker's spawn messages without rebuilding Locust's argument parser per option.

Locust 2.x's WorkerRunner keeps a spawn message's custom options with, for *each* option the
master sent, `k not in argument_parser.default_args_dict()` (locust/runners.py), and that call
builds and parses Locust's whole argument parser (≈ 4 ms). With this project's options a spawn
message cost a worker ≈ 0.5 s of CPU with the gevent loop held: at every step change, with the
streams of the previous step in flight and the next step's users waiting to send. Locust's
defaults cannot change within a process (no config file is read; the environment is fixed), so
`install` computes them once for the process; the result is what Locust computed each time.
"""

from __future__ import annotations

import functools
from typing import Any

import locust.argument_parser as argument_parser


def install() -> None:
    """Memoize `locust.argument_parser.default_args_dict` (idempotent). Called by the Locust rim
    for worker processes, never on import."""
    current = argument_parser.default_args_dict
    if getattr(current, "harness_cached", False):
        return
    compute = functools.cache(current)

    def default_args_dict() -> dict[str, Any]:
        return dict(compute())  # a copy: callers may not share Locust's dict with each other

    default_args_dict.harness_cached = True  # type: ignore[attr-defined]
    argument_parser.default_args_dict = default_args_dict
