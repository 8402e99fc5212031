"""Setup work (tokenizer load, prompt pools, report building) off the gevent loop."""

from __future__ import annotations

from typing import Any


def off_loop(fn: Any, *args: Any) -> Any:
    """Run CPU-heavy setup (tokenizer load, prompt pool) in a real thread of gevent's pool.

    The calling greenlet waits, but the hub keeps running: a worker that tokenized for seconds
    in its event loop would miss its heartbeats and the master would drop it.
    """
    from gevent import get_hub, monkey

    if monkey.is_module_patched("threading"):
        return get_hub().threadpool.apply(fn, args)
    return fn(*args)
