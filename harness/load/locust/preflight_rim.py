"""The pre-flight and the error-storm guard for plain `locust -f` runs and the web UI.

The sweep runs them itself (harness.cli.sweep); a locustfile run gets them through the listeners:
`check` at init on the local runner or master (the target is usable, else one line and exit 4 /
exit 2 before any user starts), `choose` when a test starts (the API and model name from the
server, as the sweep chooses them), `guard_storms` when a local test starts (an error storm stops
the test with exit 4, harness.load.storm).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from locust.runners import MasterRunner, WorkerRunner

from harness.config.model import RunConfig
from harness.load.locust import guard
from harness.load.locust.users import our_classes
from harness.load.preflight import PreflightError, configure_from_server, load_tokenizer_checked

_checked: set[str] = set()


def check(environment: Any, cfg: RunConfig) -> None:
    """The tokenizer's file, the full pre-flight (one short request included) once per target URL,
    then the tokenizer parsed (not by a master); exits with one line on failure."""
    if getattr(environment, "harness_sweep", False) or isinstance(environment.runner, WorkerRunner):
        return  # the sweep ran it before starting Locust; a worker uses the master's
    # The tokenizer's file is found first; it is parsed (0.6 CPU-s) once the target answered, and
    # never by a master, whose workers build the prompts (harness.cli.sweep does the same).
    _tokenizer(cfg, parse=False)
    url = environment.host or cfg.target.url
    if not url or url in _checked:
        _tokenizer(cfg, parse=not isinstance(environment.runner, MasterRunner))
        return
    fixed = {c.api_class.name for c in our_classes(environment) if c.api_class is not None}
    if len(fixed) == 1:  # a locustfile of one route (locustfiles/tgi.py): probe that one
        cfg = cfg.model_copy(update={"request": cfg.request.model_copy(update={"api": fixed.pop()})})
    try:
        _, pre = configure_from_server(cfg, url, os.environ)
    except PreflightError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(exc.code)
    for warning in pre.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    _checked.add(url)
    _tokenizer(cfg, parse=not isinstance(environment.runner, MasterRunner))


def _tokenizer(cfg: RunConfig, parse: bool) -> None:
    try:
        load_tokenizer_checked(cfg.workload.tokenizer, parse=parse)
    except PreflightError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(exc.code)


def choose(environment: Any, cfg: RunConfig) -> RunConfig:
    """The configuration with the server's API and model name (no request sent). A target that
    fails here (the web UI pointed elsewhere) keeps the configured values: the storm guard stops
    the test if every request fails."""
    try:
        cfg, _ = configure_from_server(cfg, cfg.target.url or environment.host, os.environ, send_probe=False)
    except PreflightError as exc:
        sys.stderr.write(f"error: {exc}\n")
    return cfg


def guard_storms(environment: Any, cfg: RunConfig) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        guard.start(environment, cfg.request.timeout_s)
