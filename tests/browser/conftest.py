"""The browser tier: Playwright (PyPI) driving the system's Chromium (Debian's `chromium`, installed by
.ci/run), never a browser Playwright downloads itself. Without Chromium these tests are skipped,
except in CI (CI=true), where they fail: CI must install it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("HARNESS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium per module: Playwright's sync API keeps an asyncio loop running in this
    thread until it stops, and tests elsewhere call asyncio.run()."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        why = f"no Chromium at {CHROMIUM}: `apt-get install chromium` (or set HARNESS_CHROMIUM)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {why}; .ci/run must install it")
        pytest.skip(why)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()
