"""Shared test set-up: each folder under tests/ is a marker (unit, integration, docker, distributed,
engine), so `pytest -m "not docker"` and `pytest tests/unit` select the same tests."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "integration", "docker", "distributed", "engine")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        rel = Path(str(item.fspath)).resolve().relative_to(TESTS)
        tier = rel.parts[0] if len(rel.parts) > 1 else None
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture
def serve():
    """serve(handler[, tls]) → a ScriptServer on 127.0.0.1, closed after the test."""
    from support.http_script import ScriptServer

    servers: list[ScriptServer] = []

    def make(handler, tls=None):  # noqa: ANN001, ANN202
        s = ScriptServer(handler, tls)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()




@pytest.fixture(scope="session")
def emulator_factory():
    """emulator_factory(profile, *args) → an `EmulatorProcess`, started once per session for each
    (profile, args) and stopped at the end: tests that can share an emulator share one."""
    from harness.targets.emulator_process import EmulatorProcess

    running: dict[tuple[str, ...], EmulatorProcess] = {}

    def get(profile: str = "fast", *args: str) -> EmulatorProcess:
        key = (profile, *args)
        emu = running.get(key)
        if emu is None or emu.proc is None or emu.proc.poll() is not None:
            emu = running[key] = EmulatorProcess(profile=profile, args=list(args)).start()
        return emu

    yield get
    for emu in running.values():
        emu.stop()


@pytest.fixture(scope="session")
def fast_emulator(emulator_factory):
    """The emulator's fast profile with default flags, shared by the whole session."""
    return emulator_factory("fast")


@pytest.fixture(scope="session")
def scenario_file(tmp_path_factory: pytest.TempPathFactory):
    """scenario_file(text, name="scenario") → the path of a scenario TOML written to a fresh
    temporary directory (for `harness sweep --scenario` or HARNESS_SCENARIO)."""

    def write(text: str, name: str = "scenario") -> Path:
        path = tmp_path_factory.mktemp("scenario") / f"{name}.toml"
        path.write_text(text)
        return path

    return write
