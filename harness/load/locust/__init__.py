"""The Locust rim: users, load shapes, listeners and the in-process runner.

Importing anything here imports `locust`, which monkey-patches the process with gevent: that is
this package's job and nobody else's. Nothing registers itself on import; a locustfile or the
sweep calls `harness.load.locust.listeners.register(events)` explicitly.
"""
