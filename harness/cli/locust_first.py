"""`import harness.cli.locust_first` at the top of a command: locust imported (gevent
monkey-patches sockets) before anything else, without gevent's repeated scans of the installed
packages. Importing this module is the side effect; only harness/cli does it.

While it patches, gevent announces each module to plugins it looks up with
`importlib.metadata.entry_points(group=...)`: 25 look-ups, each reading the metadata of every
installed distribution (≈ 90 in the suite's environment), ≈ 0.1–0.25 CPU-s of every sweep, search
and worker process. The installed distributions do not change during one import, so here the
first look-up reads them once and the others select from it — the same entry points, in the same
order. The standard function is put back as soon as locust is imported.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any


def import_locust() -> None:
    """`import locust`, with importlib.metadata.entry_points read once for the whole import."""
    original = metadata.entry_points
    everything: list[Any] = []

    def entry_points(**params: Any) -> Any:
        if not everything:
            everything.append(original())
        return everything[0].select(**params) if params else everything[0]

    metadata.entry_points = entry_points  # type: ignore[assignment]
    try:
        import locust  # noqa: F401 - gevent monkey-patches sockets here
    finally:
        metadata.entry_points = original


import_locust()
