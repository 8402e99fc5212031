"""Shared test set-up: each folder under tests/ is a marker (unit, integration, docker, distributed,
engine, browser), so `pytest -m "not docker"` and `pytest tests/unit` select the same tests."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
# Files whose assertions compare measured times with the truth (client stamps, lag, calibration, the
# emulator's own clock): `make test` runs them after the parallel run, alone on the machine, so
# neighbouring tests' CPU load cannot shift what they measure.
SERIAL = {
    "unit/test_stamps.py",
    "integration/test_client_bound.py",
    "integration/test_users_emulator.py",
    "integration/test_users_locust.py",
    "integration/test_hub_holds.py",  # greenlets' CPU per run within 1-2 ms: neighbours inflate it
    "integration/test_search.py",  # the load where TTFT p99 crosses the SLO: a starved emulator moves it
    "integration/test_emulator_calibration.py",
    "integration/test_sweep_inf2.py",
    "integration/test_open_loop.py",  # a capped step must not be client-bound
    "distributed/test_open_loop_distributed.py",  # achieved ÷ offered within 2 % across two workers
    "engine/test_engine_llamacpp.py",  # a real CPU-bound server: starved by neighbours, it measures nothing
}
# Of those, the ones that must not share the machine with a run that keeps a core busy (the open-
# loop sweep): the tolerances of a few ms on the client's stamps and wake-ups, the starved-client
# test's own busy loop, the CPU-bound engine. In one process they go first (the engine's tier first
# of all), beside only the light prestarted runs (a few streams every 55 ms, the SLO search) and the
# distributed open-loop run, whose checks a neighbour does not move; the `busy` prestarted runs
# start when the last of them ends (see pytest_collection_finish).
QUIET = {
    "engine/test_engine_llamacpp.py",
    "integration/test_users_emulator.py",
    "integration/test_client_bound.py",
}
TIERS = ("unit", "integration", "docker", "distributed", "engine", "browser")
# The parallel pass hands out whole files (`--dist loadfile --no-loadscope-reorder`) in collection
# order: the longest go first, so that none starts last and holds the pass up alone (the longest-
# first rule); the many short files fill the gaps. Measured on this machine; order only.
LONG_FIRST = (
    "distributed/test_worker_faults.py",
    "docker/test_compose.py",
    "docker/test_sweep_docker.py",
    "distributed/test_netns.py",
    "docker/test_container_docker.py",
    "distributed/test_local_records.py",
    "distributed/test_stop_after_requests.py",
    "distributed/test_distributed.py",
    "distributed/test_webui_processes.py",
    "distributed/test_master_interrupts.py",
    "browser/test_llm_tab.py",
    "integration/test_server_telemetry.py",
    "integration/test_sweep_fast.py",
    "integration/test_midstream_faults.py",
    "integration/test_storm_faults.py",
    "integration/test_preflight_faults.py",
    "integration/test_locust_plain_run.py",
    "integration/test_interrupts.py",
    "integration/test_ui_interrupts.py",
    "integration/test_secrets_and_headers.py",
    "integration/test_locust_web_ui.py",
    "integration/test_censored.py",
    "integration/test_trace_replay.py",
)
_PRESTARTED = pytest.StashKey[dict]()
_AFTER_QUIET = pytest.StashKey[tuple]()  # (the last QUIET test, the busy runs waiting for it)
_CONFIG: list[pytest.Config] = []  # this session's (pytest_runtest_logfinish is not given it)
_QUEUED: set = set()  # busy prestarted runs not started yet: they start in turn (_in_turn)
_STARTING = threading.Lock()  # one start() at a time: the in-turn thread's and a test's
_TIER_SECONDS: dict[str, float] = {}  # setup + call + teardown of each tier's tests, this session


def pytest_configure(config: pytest.Config) -> None:
    _TIER_SECONDS.clear()
    _CONFIG[:] = [config]
    stale = sorted(name for name in (*SERIAL, *QUIET, *LONG_FIRST) if not (TESTS / name).is_file())
    if stale:
        raise pytest.UsageError(f"tests/conftest.py names files that do not exist: {', '.join(stale)}")
    config.addinivalue_line(
        "markers",
        "prestart(*starts, busy=0): as mark.prestart.with_args(start); each start() → a "
        "support.background.Background, called once the session's tests are collected (busy=N: once "
        "the QUIET files' tests, which go first, are done, one at a time in order of N); the test's "
        "`prestarted` fixture "
        "waits for the first, `prestarted_all` for each")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the long wall-clock-bound runs of the selected tests now, so that they overlap the
    tests before them (see tests/support/background.py). In one process the QUIET files' tests go
    first (pytest_collection_modifyitems): the runs marked `busy` start when the last of them ends,
    one after the other."""
    if session.config.option.collectonly:
        return
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # every xdist worker collects every test: each would start its own copy. A worker's test
        # runs its command when it comes (the `prestarted` fixture starts it on demand).
        return
    started = session.config.stash.setdefault(_PRESTARTED, {})
    quiet = [item.nodeid for item in session.items if _relative(item.fspath) in QUIET]
    deferred: list = []
    for item in session.items:
        marker = item.get_closest_marker("prestart")
        if marker is None:
            continue
        for start in marker.args:
            if start in started or start in deferred:
                continue
            if quiet and marker.kwargs.get("busy"):
                deferred.append(start)
                _QUEUED.add(start)
            else:
                started[start] = start()
    turn = {start: marker.kwargs.get("busy", 0) for item in session.items
            if (marker := item.get_closest_marker("prestart")) is not None for start in marker.args}
    deferred.sort(key=lambda start: int(turn[start]))
    session.config.stash[_AFTER_QUIET] = (quiet[-1] if quiet else None, deferred)


def pytest_runtest_logfinish(nodeid: str, location: tuple) -> None:  # noqa: ARG001
    """The last QUIET test is done: start the busy runs that waited for it, one after the other
    (each keeps a core busy: two at once would disturb each other's pacing; a thread starts the
    next when the previous one's process has ended)."""
    config = _CONFIG[0] if _CONFIG else None
    if config is None:
        return
    last, deferred = config.stash.get(_AFTER_QUIET, (None, []))
    if nodeid == last and deferred:
        started = config.stash.setdefault(_PRESTARTED, {})
        threading.Thread(target=_in_turn, args=(started, list(deferred)), daemon=True).start()


def _in_turn(started: dict, starts: list) -> None:
    try:
        for start in starts:
            with _STARTING:
                if start not in _QUEUED:  # the session ended (pytest_sessionfinish)
                    return
                background = started.setdefault(start, start())
                _QUEUED.discard(start)
            background.proc.wait()
    finally:  # a start() that failed: the tests start the rest themselves (`prestarted`)
        _QUEUED.difference_update(starts)


def pytest_sessionfinish(session: pytest.Session) -> None:
    _QUEUED.clear()
    with _STARTING:
        for background in session.config.stash.get(_PRESTARTED, {}).values():
            background.cleanup()


def _prestarted(request: pytest.FixtureRequest, start):  # noqa: ANN001, ANN202
    started = request.config.stash.setdefault(_PRESTARTED, {})
    while start in _QUEUED and start not in started:  # a busy run waiting for its turn
        time.sleep(0.1)
    with _STARTING:
        background = started.get(start) or started.setdefault(start, start())
    return background.wait(), background.dir


@pytest.fixture
def prestarted(request: pytest.FixtureRequest):
    """The finished run (a CompletedProcess) of this test's `prestart` marker, and its directory."""
    return _prestarted(request, request.node.get_closest_marker("prestart").args[0])


@pytest.fixture
def prestarted_all(request: pytest.FixtureRequest):
    """[(CompletedProcess, directory)] of each run of this test's `prestart` marker, in its order."""
    return [_prestarted(request, start) for start in request.node.get_closest_marker("prestart").args]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its folder's tier, and run the tiers in TIERS order (fast ones first;
    the browser last), keeping the order within a tier; under xdist the LONG_FIRST files first, and
    in one process the QUIET files' first and the tests that wait for a prestarted run last."""
    for item in items:
        tier = _tier(item.fspath)
        if tier is not None:
            item.add_marker(getattr(pytest.mark, tier))
        if _relative(item.fspath) in SERIAL:
            item.add_marker(pytest.mark.serial)
    rank = {tier: i for i, tier in enumerate(TIERS)}
    parallel = _parallel(config)
    first = {name: i for i, name in enumerate(LONG_FIRST)} if parallel else {}

    def late(item: pytest.Item) -> int:
        """In one process: the QUIET files' tests first, the engine's first of all (a CPU-bound
        server: only the light prestarted runs may overlap them; the busy ones start after them),
        then the others, and a test that waits for a prestarted run after them (its run overlaps
        them)."""
        if parallel:
            return 0
        if _tier(item.fspath) == "engine":
            return -2
        if _relative(item.fspath) in QUIET:
            return -1
        return 1 if item.get_closest_marker("prestart") is not None else 0

    items.sort(key=lambda item: (late(item), first.get(_relative(item.fspath), len(first)),
                                 rank.get(_tier(item.fspath) or "", -1)))


def _parallel(config: pytest.Config) -> bool:
    """Under pytest-xdist (its workers, which collect, and its controller)."""
    workers = getattr(config.option, "numprocesses", None)
    return bool(os.environ.get("PYTEST_XDIST_WORKER")) or workers not in (None, 0)


def _relative(path: str | Path) -> str:
    try:
        return Path(path).resolve().relative_to(TESTS).as_posix()
    except ValueError:
        return ""


def _tier(path: str | Path) -> str | None:
    try:
        rel = Path(path).resolve().relative_to(TESTS)
    except ValueError:
        return None
    return rel.parts[0] if len(rel.parts) > 1 and rel.parts[0] in TIERS else None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    tier = _tier(report.fspath)
    if tier is not None:
        _TIER_SECONDS[tier] = _TIER_SECONDS.get(tier, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:  # noqa: ANN001
    """One line: the seconds each tier's tests took (setup + call + teardown)."""
    if _TIER_SECONDS:
        terminalreporter.write_line("tier seconds: " + ", ".join(
            f"{tier} {_TIER_SECONDS[tier]:.1f}" for tier in TIERS if tier in _TIER_SECONDS))


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
def _faults_emulator():
    """The fast profile, for `faulty_emulator` alone (its faults change from test to test)."""
    from harness.targets.emulator_process import EmulatorProcess

    with EmulatorProcess(profile="fast") as emu:
        yield emu


@pytest.fixture
def faulty_emulator(_faults_emulator):
    """faulty_emulator(**faults) → an emulator (fast profile) with these server-wide faults from now
    on (POST /emulator/faults; the keys are harness.emulator.faults.ServerFaults' fields, `after`
    counted from now), all off again after the test: one server for the session's fault tests
    instead of one started per fault."""

    def faulty(**faults: object):  # noqa: ANN202
        _faults_emulator.set_faults(**faults)
        return _faults_emulator

    yield faulty
    if _faults_emulator.proc is not None and _faults_emulator.proc.poll() is None:
        _faults_emulator.set_faults()


@pytest.fixture(scope="session")
def scenario_file(tmp_path_factory: pytest.TempPathFactory):
    """scenario_file(text, name="scenario") → the path of a scenario TOML written to a fresh
    temporary directory (for `harness sweep --scenario` or HARNESS_SCENARIO)."""

    def write(text: str, name: str = "scenario") -> Path:
        path = tmp_path_factory.mktemp("scenario") / f"{name}.toml"
        path.write_text(text)
        return path

    return write
