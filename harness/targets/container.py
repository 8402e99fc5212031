"""Run a TGI server (or the emulator image) in Docker for the length of a sweep, and always clean up.

    with ManagedServer(settings, run_id=run_id, results_dir=out) as srv:
        run_sweep(srv.url)            # healthy by now; srv.info is the server's /info
        manifest["server"] = srv.manifest()

`start()` pulls the image when missing (never with `no_pull=True`), creates the container with
labels (`tgi-loadtest.run-id`, ...) so leftovers can be found, starts it detached, and polls
/health until it answers 200, printing progress and the container's last log line (TGI refuses
connections until the model is loaded; Neuron compiles for minutes). It fails with
ServerStartError when the container exits or the timeout passes, saving the log first.

`stop()` saves the log into the results directory and removes the container, unless `keep=True`.
It runs on normal exit, on errors, on Ctrl-C and on SIGTERM (turned into KeyboardInterrupt while
a server is managed); while it runs, further SIGINT/SIGTERM are deferred, so a second Ctrl-C
cannot leave the container behind. `remove_leftovers()` clears what a killed process left.

docker-py is imported here only: harness.targets.servers holds the configuration as plain data.

Length: over 400 lines because start, health polling, log saving and signal-safe cleanup share one
container's state; split apart, each would reach into the others' attributes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types
import docker.utils

from harness.targets.servers import HostFacts, RunSpec, ServerSettings, docker_run_command, plan

LABEL_MANAGED = "tgi-loadtest.managed"
LABEL_RUN_ID = "tgi-loadtest.run-id"
LABEL_INSTANCE = "tgi-loadtest.instance"
LABEL_PROFILE = "tgi-loadtest.profile"
LABEL_PID = "tgi-loadtest.pid"
LOG_NAME = "server.log"


class ServerStartError(RuntimeError):
    """The server did not become healthy; the message says why and where its log was saved."""

    def __init__(self, message: str, log_path: Path | None = None) -> None:
        super().__init__(message + (f"\n(full container log: {log_path})" if log_path else ""))
        self.log_path = log_path


class ImageUnavailableError(ServerStartError):
    """The image is not on this host and may not (no_pull) or could not be pulled."""


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class ManagedServer:
    """One container's lifecycle: pull, run detached, wait healthy, record, stop and remove."""

    def __init__(
        self,
        settings: ServerSettings | RunSpec,
        *,
        run_id: str | None = None,
        results_dir: str | Path | None = None,
        no_pull: bool = False,
        keep: bool = False,
        health_timeout_s: float | None = None,
        facts: HostFacts | None = None,
        client: docker.DockerClient | None = None,
        progress: Callable[[str], None] | None = None,
        connect_host: str = "127.0.0.1",
        poll_interval_s: float = 1.0,
        progress_every_s: float = 15.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.headers = dict(headers or {})  # the run's request headers (Authorization): sent on GETs too
        self.spec = settings if isinstance(settings, RunSpec) else plan(settings, facts)
        self.run_id = run_id or dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.instance = uuid.uuid4().hex[:12]
        self.name = (getattr(settings, "name", None) or f"tgi-loadtest-{self.run_id}-{self.instance[:6]}")
        self.results_dir = Path(results_dir) if results_dir is not None else None
        self.no_pull = no_pull
        self.keep = keep
        self.health_timeout_s = health_timeout_s or self.spec.health_timeout_s
        self.progress = progress or _stderr
        self.connect_host = connect_host
        self.poll_interval_s = poll_interval_s
        self.progress_every_s = progress_every_s
        self._client = client
        self._container: Any = None  # docker.models.containers.Container
        self._image: Any = None
        self.host_port: int | None = None
        self.info: dict[str, Any] = {}
        self.log_path: Path | None = None
        self.started_at: str | None = None
        self.ready_after_s: float | None = None
        self.exit_code: int | None = None
        self._stopped = False
        self._old_sigterm: Any = None
        self._next_status = 0.0  # crashed(): when the engine may be asked again

    # --- public API -----------------------------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = docker.from_env(timeout=120)
                self._client.ping()
            except docker.errors.DockerException as exc:
                self._client = None
                raise ServerStartError(f"no Docker engine answers ({exc}); start dockerd, or give the "
                                       "server's URL instead of a server to start") from exc
        return self._client

    @property
    def url(self) -> str:
        if self.host_port is None:
            raise RuntimeError("server not started")
        return f"http://{self.connect_host}:{self.host_port}"

    @property
    def container_id(self) -> str | None:
        return self._container.id if self._container is not None else None

    @property
    def labels(self) -> dict[str, str]:
        return {LABEL_MANAGED: "true", LABEL_RUN_ID: self.run_id, LABEL_INSTANCE: self.instance,
                LABEL_PROFILE: self.spec.profile, LABEL_PID: str(os.getpid())}

    def __enter__(self) -> ManagedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        except KeyboardInterrupt:  # a Ctrl-C that slipped in before signals were deferred
            self.stop()
            raise

    def start(self) -> ManagedServer:
        """Pull if needed, run, and wait for /health; on any failure or interrupt, clean up first."""
        self._install_sigterm()
        try:
            for warning in self.spec.warnings:
                self.progress(f"warning: {warning}")
            self._image = self._ensure_image()
            self._run()
            self._wait_healthy()
            self.info = self._get_json("/info") or {}
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Save the log and remove the container (idempotent; signals deferred meanwhile)."""
        if self._stopped:
            return
        with _deferred_signals(self.progress) as received:
            container = self._container or self._find_own()
            if container is not None:
                self._save_log(container)
                if self.keep:
                    self.progress(f"keeping container {self.name} at {self.url if self.host_port else '?'}; "
                                  f"remove it with: docker rm -f {self.name}")
                else:
                    self._remove(container)
            self._stopped = True
        self._restore_sigterm()
        if received and sys.exc_info()[0] is None:
            raise KeyboardInterrupt  # the user asked to stop while we cleaned up; honour it now

    def crashed(self) -> str | None:
        """None while the container runs; else one line: how it ended (the engine is asked at most
        every 2 s: the sweep's storm guard calls this four times a second)."""
        now = time.monotonic()
        if self._container is None or self._stopped or now < self._next_status:
            return None
        self._next_status = now + 2.0
        try:
            self._container.reload()
        except docker.errors.NotFound:
            return f"the server container {self.name} crashed mid-run (it is gone)"
        except docker.errors.DockerException:
            return None
        if self._container.status not in ("exited", "dead"):
            return None
        self.exit_code = self._container.attrs.get("State", {}).get("ExitCode")
        return f"the server container {self.name} crashed mid-run (exit code {self.exit_code})"

    def logs(self, tail: int | str = "all") -> str:
        """The container's stdout+stderr so far, secrets scrubbed."""
        if self._container is None:
            return ""
        try:
            raw = self._container.logs(stdout=True, stderr=True, tail=tail)
        except docker.errors.DockerException:
            return ""
        return self._scrub(raw.decode("utf-8", "replace"))

    def manifest(self) -> dict[str, Any]:
        """What the run's manifest records about the server; secrets never appear."""
        image_attrs = self._image.attrs if self._image is not None else {}
        extra = [f"--name {self.name}"] + [f"--label {k}={v}" for k, v in self.labels.items()
                                           if k in (LABEL_MANAGED, LABEL_RUN_ID)]
        doc = {
            "profile": self.spec.profile,
            "image": self.spec.image,
            "image_id": image_attrs.get("Id"),
            "image_digests": image_attrs.get("RepoDigests", []),
            "image_created": image_attrs.get("Created"),
            "container_name": self.name,
            "container_id": self.container_id,
            "run_id": self.run_id,
            "url": self.url if self.host_port else None,
            "started_at": self.started_at,
            "ready_after_s": self.ready_after_s,
            "config": self.spec.redacted(),
            "docker_run": docker_run_command(self.spec, detach=True, extra=extra),
            "server_info": self.info,
            "log_file": LOG_NAME if self.results_dir is not None else None,  # written by stop()
            "docker_engine": self._engine_version(),
        }
        return json.loads(self._scrub(json.dumps(doc)))

    # --- steps ----------------------------------------------------------------------------------

    def _ensure_image(self) -> Any:
        try:
            return self.client.images.get(self.spec.image)
        except docker.errors.ImageNotFound:
            pass
        if self.no_pull:
            raise ImageUnavailableError(
                f"image {self.spec.image} is not on this host and pulling is disabled (no_pull); "
                f"pull it with `docker pull {self.spec.image}` or build it (docker/build-images.sh)"
            )
        self._pull()
        return self.client.images.get(self.spec.image)

    def _pull(self) -> None:
        repo, tag = docker.utils.parse_repository_tag(self.spec.image)
        self.progress(f"pulling {self.spec.image} (missing on this host)")
        layers: dict[str, tuple[int, int]] = {}
        done: set[str] = set()
        last = time.monotonic()
        try:
            for event in self.client.api.pull(repo, tag=tag or "latest", stream=True, decode=True):
                if "error" in event:
                    raise ImageUnavailableError(f"pull of {self.spec.image} failed: {event['error']}")
                layer, status = event.get("id"), event.get("status", "")
                detail = event.get("progressDetail") or {}
                if layer and detail.get("total"):
                    layers[layer] = (detail.get("current", 0), detail["total"])
                if layer and status in ("Pull complete", "Already exists"):
                    done.add(layer)
                if time.monotonic() - last >= 5:
                    last = time.monotonic()
                    cur = sum(c for c, _ in layers.values()) / 1e6
                    tot = sum(t for _, t in layers.values()) / 1e6
                    self.progress(f"  pulling {self.spec.image}: {cur:.0f}/{tot:.0f} MB, "
                                  f"{len(done)} layers done")
        except docker.errors.APIError as exc:
            why = exc.explanation or exc
            raise ImageUnavailableError(f"pull of {self.spec.image} failed: {why}") from exc
        self.progress(f"pulled {self.spec.image}")

    def _run(self) -> None:
        kwargs = self.spec.docker_kwargs()
        requests = kwargs.pop("device_requests", None)
        if requests:
            kwargs["device_requests"] = [docker.types.DeviceRequest(**r) for r in requests]
        kwargs.pop("detach", None)
        for mount in self.spec.mounts:  # docker would create a missing one owned by root
            Path(mount.source).mkdir(parents=True, exist_ok=True)
        try:  # e.g. a name in use, an unknown device, the host port already allocated
            self._container = self.client.containers.create(
                name=self.name, labels=self.labels, stop_signal=kwargs.pop("stop_signal"), **kwargs
            )
            self.started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            self._container.start()
        except docker.errors.APIError as exc:
            why = exc.explanation or exc
            raise ServerStartError(f"docker could not run {self.spec.image}: {why}") from exc
        self.progress(f"started {self.spec.image} as {self.name} ({self._container.short_id})")
        deadline = time.monotonic() + 10
        while self.host_port is None:
            self._container.reload()
            bindings = (self._container.attrs["NetworkSettings"]["Ports"] or {}).get(
                f"{self.spec.container_port}/tcp")
            if bindings:
                self.host_port = int(bindings[0]["HostPort"])
            elif self._container.status in ("exited", "dead") or time.monotonic() > deadline:
                self._fail_exited("before its port was published")
            else:
                time.sleep(0.1)

    def _wait_healthy(self) -> None:
        t0 = time.monotonic()
        deadline = t0 + self.health_timeout_s
        next_report = t0 + self.progress_every_s
        self.progress(f"waiting up to {self.health_timeout_s:.0f} s for {self.url}/health")
        while True:
            if self._health_ok():
                self.ready_after_s = round(time.monotonic() - t0, 3)
                self.progress(f"healthy after {self.ready_after_s:.1f} s: {self.url}")
                return
            self._container.reload()
            if self._container.status in ("exited", "dead"):
                self._fail_exited("before becoming healthy")
            now = time.monotonic()
            if now >= deadline:
                log = self._save_log(self._container)
                raise ServerStartError(
                    f"{self.name} ({self.spec.image}) was not healthy after {self.health_timeout_s:.0f} s "
                    f"(raise the startup timeout: loading/compiling can take long); last log lines:\n"
                    f"{self.logs(tail=20).rstrip() or '(no output)'}", log)
            if now >= next_report:
                next_report = now + self.progress_every_s
                last = (self.logs(tail=1).strip().splitlines() or ["(no output yet)"])[-1]
                self.progress(f"  still loading after {now - t0:.0f} s ({self._container.status}): "
                              f"{last[:200]}")
            time.sleep(self.poll_interval_s)

    def _fail_exited(self, when: str) -> None:
        state = self._container.attrs.get("State", {})
        self.exit_code = state.get("ExitCode")
        log = self._save_log(self._container)
        raise ServerStartError(
            f"{self.name} ({self.spec.image}) exited with code {self.exit_code} {when}; last log lines:\n"
            f"{self.logs(tail=20).rstrip() or '(no output)'}", log)

    def _health_ok(self) -> bool:
        try:
            req = urllib.request.Request(f"{self.url}/health", headers=self.headers)
            with urllib.request.urlopen(req, timeout=2) as resp:
                return resp.status == 200
        except (OSError, urllib.error.URLError):  # refused while loading, 503 while unhealthy
            return False

    def _get_json(self, path: str) -> Any:
        try:
            req = urllib.request.Request(f"{self.url}{path}", headers=self.headers)
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read())
        except (OSError, ValueError) as exc:
            self.progress(f"warning: GET {path} failed: {exc}")
            return None

    # --- cleanup --------------------------------------------------------------------------------

    def _find_own(self) -> Any:
        """The container if `create` returned nothing (interrupted mid-call): found by label."""
        if self._client is None:  # never reached the engine: nothing was created
            return None
        try:
            found = self.client.containers.list(
                all=True, filters={"label": f"{LABEL_INSTANCE}={self.instance}"})
        except docker.errors.DockerException:
            return None
        return found[0] if found else None

    def _save_log(self, container: Any) -> Path | None:
        if self.results_dir is None:
            return None
        try:
            raw = container.logs(stdout=True, stderr=True, timestamps=True)
        except docker.errors.DockerException as exc:
            self.progress(f"warning: could not read the container log: {exc}")
            return self.log_path
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.results_dir / LOG_NAME
        self.log_path.write_text(self._scrub(raw.decode("utf-8", "replace")))
        return self.log_path

    def _remove(self, container: Any) -> None:
        if self.ready_after_s is not None:  # a server that served gets a graceful stop; others are killed
            with contextlib.suppress(docker.errors.DockerException):
                container.stop(timeout=self.spec.stop_timeout_s)
        for attempt in range(3):
            try:
                container.remove(force=True, v=True)
                self.progress(f"removed container {self.name}")
                return
            except docker.errors.NotFound:
                return
            except docker.errors.DockerException as exc:
                if attempt == 2:
                    self.progress(f"error: could not remove {self.name}: {exc}; "
                                  f"run: docker rm -f {self.name}")
                time.sleep(1)

    def _scrub(self, text: str) -> str:
        for secret in self.spec.secrets():
            text = text.replace(secret, "<redacted>")
        return text

    def _engine_version(self) -> str | None:
        if self._client is None:
            return None
        try:
            return self.client.version().get("Version")
        except docker.errors.DockerException:
            return None

    def _install_sigterm(self) -> None:
        """SIGTERM → KeyboardInterrupt while we own a container, unless the caller handles SIGTERM."""
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            self._old_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)

    def _restore_sigterm(self) -> None:
        if self._old_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None


def remove_leftovers(run_id: str | None = None, *, client: docker.DockerClient | None = None,
                     progress: Callable[[str], None] = _stderr) -> list[str]:
    """Remove containers this harness started (all, or one run's) that a killed process left behind."""
    client = client or docker.from_env()
    label = f"{LABEL_RUN_ID}={run_id}" if run_id else f"{LABEL_MANAGED}=true"
    removed = []
    for container in client.containers.list(all=True, filters={"label": label}):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)
            removed.append(container.name)
            progress(f"removed leftover container {container.name}")
    return removed


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def _deferred_signals(progress: Callable[[str], None]) -> Iterator[list[int]]:
    """Hold SIGINT/SIGTERM while cleaning up; yields the list of signals that arrived meanwhile."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def note(signum: int, frame: object) -> None:
        received.append(signum)
        progress("cleaning up the server container; it will be removed before exiting")

    old = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
