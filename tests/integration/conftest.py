"""Integration tier: emulators shared by every test of the session that can share one.

`exact_emulator` is the exact profile at 50 ms TTFT / 20 ms ITL (the streaming users' truth and the
client-bound test); tests that need other flags start their own `EmulatorProcess`. Each user of a
shared emulator resets its statistics (`emu.reset()`) before reading them.
"""

from __future__ import annotations

import pytest

EXACT_TTFT_MS, EXACT_ITL_MS = 50.0, 20.0


@pytest.fixture(scope="session")
def exact_emulator(emulator_factory):
    """The emulator's exact profile (TTFT 50 ms, ITL 20 ms), started once per session."""
    return emulator_factory("exact", "--ttft-ms", str(EXACT_TTFT_MS), "--itl-ms", str(EXACT_ITL_MS))
