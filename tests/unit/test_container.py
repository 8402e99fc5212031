"""ManagedServer's control flow with a fake docker-py client: no engine needed, runs everywhere.

The real engine is exercised in test_container_docker.py; here the paths that are hard to hit
for real: a pull with progress, Ctrl-C inside `containers.create`, a signal during cleanup,
keep=True, no engine at all.
"""

from __future__ import annotations

import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import docker.errors
import pytest

from harness.targets import container as ct
from harness.targets.servers import HostFacts, ServerSettings, TokenSource

SECRET = "hf_FAKEclientSECRET42"


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server API
        body = b'{"model_id": "m/x", "echo": "%s"}' % SECRET.encode() if self.path == "/info" else b""
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()


class FakeContainer:
    def __init__(self, client: FakeClient, port: int, labels: dict) -> None:
        self.client, self.port, self.labels = client, port, labels
        self.id, self.short_id, self.status = "c0ffee" * 10, "c0ffee", "created"
        self.name = f"fake-{len(client.containers_)}"
        self.attrs = {"NetworkSettings": {"Ports": {}}, "State": {}}

    def start(self) -> None:
        self.status = "running"
        binding = {"HostIp": "127.0.0.1", "HostPort": str(self.port)}
        self.attrs["NetworkSettings"]["Ports"] = {"80/tcp": [binding]}

    def reload(self) -> None:
        pass

    def logs(self, **kwargs: object) -> bytes:
        return f"loading with token {SECRET}\nREADY\n".encode()

    def stop(self, timeout: int) -> None:
        self.client.calls.append("stop")
        if self.client.on_stop:
            self.client.on_stop()

    def remove(self, **kwargs: object) -> None:
        self.client.calls.append("remove")
        self.client.containers_ = [c for c in self.client.containers_ if c is not self]


class FakeImage:
    attrs = {"Id": "sha256:abc", "RepoDigests": ["ghcr.io/x/y@sha256:def"], "Created": "2024-01-01"}


class FakeClient:
    def __init__(self, port: int, *, have_image: bool = True, interrupt_create: bool = False) -> None:
        self.port, self.have_image, self.interrupt_create = port, have_image, interrupt_create
        self.calls: list[str] = []
        self.containers_: list[FakeContainer] = []
        self.on_stop = None
        self.images = self
        self.containers = self
        self.api = self

    # images
    def get(self, name: str) -> FakeImage:
        if not self.have_image:
            raise docker.errors.ImageNotFound(name)
        return FakeImage()

    def pull(self, repo: str, tag: str, stream: bool, decode: bool):
        self.calls.append(f"pull {repo}:{tag}")
        yield {"status": "Pulling from x", "id": tag}
        yield {"status": "Downloading", "id": "l1", "progressDetail": {"current": 5, "total": 9}}
        yield {"status": "Pull complete", "id": "l1"}
        self.have_image = True

    # containers
    def create(self, **kwargs: object) -> FakeContainer:
        c = FakeContainer(self, self.port, kwargs["labels"])
        self.containers_.append(c)
        self.kwargs = kwargs
        if self.interrupt_create:  # created on the engine, but the call never returned
            raise KeyboardInterrupt
        return c

    def list(self, all: bool, filters: dict) -> list[FakeContainer]:  # noqa: A002 - docker-py's name
        key, value = filters["label"].split("=", 1)
        return [c for c in self.containers_ if c.labels.get(key) == value]

    def version(self) -> dict:
        return {"Version": "fake"}


def managed(client: FakeClient, tmp_path, **kw) -> ct.ManagedServer:
    settings = ServerSettings(profile="tgi-gpu", model_id="m/x", host_port=0, host_ip="127.0.0.1",
                              hf_cache=str(tmp_path / "hf"))
    facts = HostFacts(home=str(tmp_path), token=TokenSource("env", "HF_TOKEN", SECRET))
    return ct.ManagedServer(settings, run_id="r1", results_dir=tmp_path / "out", facts=facts, client=client,
                            progress=kw.pop("progress", lambda m: None), poll_interval_s=0.05, **kw)


def test_pull_run_wait_record_and_remove(server, tmp_path):
    client = FakeClient(server, have_image=False)
    messages: list[str] = []
    with managed(client, tmp_path, progress=messages.append) as srv:
        assert srv.url == f"http://127.0.0.1:{server}" and srv.info["model_id"] == "m/x"
        manifest = srv.manifest()
    assert client.calls[0].startswith("pull ghcr.io/huggingface/text-generation-inference:")
    assert client.calls[-2:] == ["stop", "remove"] and client.containers_ == []
    assert any(m.startswith("pulled ") for m in messages)
    assert client.kwargs["device_requests"][0].capabilities == [["gpu"]]
    assert client.kwargs["labels"][ct.LABEL_RUN_ID] == "r1"
    assert manifest["image_digests"] == ["ghcr.io/x/y@sha256:def"] and manifest["docker_engine"] == "fake"
    assert SECRET not in str(manifest) and manifest["server_info"]["echo"] == "<redacted>"
    log = (tmp_path / "out" / "server.log").read_text()
    assert "loading with token <redacted>" in log and SECRET not in log


def test_no_pull_refuses_to_pull(tmp_path):
    client = FakeClient(1, have_image=False)
    with pytest.raises(ct.ImageUnavailableError, match="pulling is disabled"):
        managed(client, tmp_path, no_pull=True).start()
    assert client.calls == []


def test_interrupt_inside_create_still_removes_the_container(tmp_path):
    client = FakeClient(1, interrupt_create=True)
    with pytest.raises(KeyboardInterrupt):
        managed(client, tmp_path).start()
    assert client.containers_ == [] and "remove" in client.calls


def test_signal_during_cleanup_is_deferred_then_raised(server, tmp_path):
    client = FakeClient(server)
    client.on_stop = lambda: os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while docker stops it
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with managed(client, tmp_path):
            pass
    assert client.calls[-2:] == ["stop", "remove"] and client.containers_ == []
    assert signal.getsignal(signal.SIGINT) is before
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None)  # our SIGTERM handler is gone


def test_sigterm_becomes_keyboard_interrupt_while_managed(server, tmp_path):
    client = FakeClient(server)
    with pytest.raises(KeyboardInterrupt):
        with managed(client, tmp_path):
            os.kill(os.getpid(), signal.SIGTERM)
    assert client.containers_ == []


def test_keep_leaves_the_container_and_says_how_to_remove_it(server, tmp_path):
    client = FakeClient(server)
    messages: list[str] = []
    with managed(client, tmp_path, keep=True, progress=messages.append) as srv:
        name = srv.name
    assert len(client.containers_) == 1 and "remove" not in client.calls
    assert any(f"docker rm -f {name}" in m for m in messages)
    srv.stop()  # idempotent
    assert "remove" not in client.calls


def test_remove_leftovers_by_run_id():
    client = FakeClient(1)
    for run in ("a", "a", "b"):
        client.create(labels={ct.LABEL_MANAGED: "true", ct.LABEL_RUN_ID: run})
    assert len(ct.remove_leftovers("a", client=client, progress=lambda m: None)) == 2
    assert [c.labels[ct.LABEL_RUN_ID] for c in client.containers_] == ["b"]
    ct.remove_leftovers(client=client, progress=lambda m: None)
    assert client.containers_ == []


def test_no_engine_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    settings = ServerSettings(profile="emulator", host_port=0)
    with pytest.raises(ct.ServerStartError, match="no Docker engine answers"):
        ct.ManagedServer(settings, facts=HostFacts(home=str(tmp_path)), progress=lambda m: None).start()
