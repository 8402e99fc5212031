"""Server profiles as validated data: what container to run for a sweep, and how.

Pure data, no Docker: `plan(settings, facts)` turns a named profile plus the user's settings and
what was found on the host (`HostFacts`: Neuron devices, HF token, home) into a `RunSpec`, the
complete and resolved run configuration. `harness.targets.container` hands a RunSpec to docker-py;
`docker_run_command` renders the same RunSpec as the equivalent `docker run` line, which is how
the seed benchmark's line is reproduced (and tested) and how a run's manifest tells a human how
to start the same server by hand.

Secrets: the HF token's value lives only in `RunSpec.secrets()` for docker-py. Everything meant
to be read or saved (`redacted()`, `docker_run_command`, repr) names where the token comes from
(`$(cat ~/.cache/huggingface/token)`, `$HF_TOKEN`), never its value.

Length: over 400 lines because it is mostly the profiles' data (images, env, devices per server
kind) next to the one function that resolves them.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness import __version__

CONTAINER_PORT = 80  # TGI images listen on $PORT = 80; so does the emulator image
REDACTED = "<redacted>"
TOKEN_ENV_NAMES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")  # read from the caller, in this order

# Environment the TGI launcher / the Neuron entry point / the emulator read. Integers are checked.
INT_ENV = ("HF_NUM_CORES", "MAX_BATCH_SIZE", "MAX_INPUT_TOKENS", "MAX_INPUT_LENGTH", "MAX_TOTAL_TOKENS",
           "MAX_CONCURRENT_REQUESTS", "MAX_BATCH_PREFILL_TOKENS", "MAX_BATCH_TOTAL_TOKENS", "PORT")
NEURON_ONLY_ENV = ("HF_NUM_CORES", "HF_AUTO_CAST_TYPE")
AUTO_CAST_TYPES = ("bf16", "fp16", "fp32")


class ServerConfigError(ValueError):
    """Settings that cannot be run; str() lists every problem, one per line."""


@dataclass(frozen=True)
class ServerProfile:
    """A kind of server: its image, accelerator and where it expects the Hugging Face cache."""

    name: str
    default_image: str
    accelerator: str  # "neuron" | "gpu" | "cpu" | "none"
    description: str
    image_patterns: tuple[str, ...]  # images known to fit (fnmatch); others only warn
    hf_cache_target: str | None  # container path the host's HF cache is mounted on
    health_timeout_s: float  # default wait for /health: Neuron compiles for many minutes
    shm_size: str | None = None  # NCCL needs shared memory on GPUs
    stop_timeout_s: int = 30


PROFILES: dict[str, ServerProfile] = {
    p.name: p
    for p in (
        ServerProfile(
            name="neuronx-tgi",
            default_image="ghcr.io/huggingface/neuronx-tgi:0.0.23",  # the seed's
            accelerator="neuron",
            description="TGI on AWS Inferentia2/Trainium (optimum-neuron); /dev/neuron* passed through",
            image_patterns=("ghcr.io/huggingface/neuronx-tgi:*", "*/text-generation-inference:*-neuron",
                            "text-generation-inference:*-neuron", "neuronx-tgi:*"),
            hf_cache_target="/root/.cache/huggingface",
            health_timeout_s=3600.0,
        ),
        ServerProfile(
            name="tgi-gpu",
            default_image="ghcr.io/huggingface/text-generation-inference:3.3.5",
            accelerator="gpu",
            description="TGI on NVIDIA GPUs (docker --gpus)",
            image_patterns=("*text-generation-inference:*",),
            hf_cache_target="/data",
            health_timeout_s=1800.0,
            shm_size="1g",
        ),
        ServerProfile(
            name="tgi-cpu",
            default_image="ghcr.io/huggingface/text-generation-inference:3.3.5-intel-cpu",
            accelerator="cpu",
            description="TGI on CPUs (Intel IPEX image)",
            image_patterns=("*text-generation-inference:*",),
            hf_cache_target="/data",
            health_timeout_s=1800.0,
            shm_size="1g",
        ),
        ServerProfile(
            name="emulator",
            default_image=f"tgi-loadtest/emulator:{__version__}",  # docker/build-images.sh tags it
            accelerator="none",
            description="this project's TGI emulator image (docker/build-images.sh), same environment",
            image_patterns=("tgi-loadtest/emulator:*",),
            hf_cache_target=None,
            health_timeout_s=120.0,
            stop_timeout_s=5,
        ),
    )
}


@dataclass(frozen=True)
class ServerSettings:
    """What a scenario and the command line choose for one server.

    `env` holds the server's own variables in the order given (MAX_BATCH_SIZE, MAX_INPUT_TOKENS or
    the legacy MAX_INPUT_LENGTH, ...); MODEL_ID comes from `model_id` and the HF token from the host.
    """

    profile: str = "neuronx-tgi"
    image: str | None = None  # None: the profile's default
    model_id: str | None = None
    env: Mapping[str, str | int] = field(default_factory=dict)
    host_port: int = 8080  # 0: any free port (docker picks; read back after start)
    host_ip: str | None = None  # None: all interfaces, as `-p 8000:80`
    privileged: bool = False  # Neuron: only when asked; devices are passed otherwise
    devices: tuple[str, ...] | None = None  # None: found on the host (/dev/neuron* for Neuron)
    gpus: str = "all"  # tgi-gpu, as docker --gpus: "all", a count "2", or "device=0,1"
    hf_cache: str | None = "~/.cache/huggingface"  # host directory mounted; None: no mount
    pass_token: bool = True
    args: tuple[str, ...] = ()  # after the image: launcher arguments, or the emulator's command
    shm_size: str | None = None  # None: the profile's
    tty: bool = False  # render `-ti` (the seed's interactive run); containers here run detached
    health_timeout_s: float | None = None  # None: the profile's
    name: str | None = None  # container name; None: generated from the run id

    def validate(self) -> list[str]:
        """Every problem, as readable lines (k6's Validate() style); empty when runnable."""
        errors: list[str] = []
        if self.profile not in PROFILES:
            errors.append(f"unknown server profile {self.profile!r} (one of {', '.join(PROFILES)})")
        if not 0 <= self.host_port <= 65535:
            errors.append(f"host_port must be 0..65535, got {self.host_port}")
        if self.image is not None and not re.fullmatch(r"[\w][\w.\-/:@]*", self.image):
            errors.append(f"image {self.image!r} is not an image reference")
        for name, value in self.env.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                errors.append(f"env name {name!r} is not a variable name")
            elif name in ("MODEL_ID",) or name in TOKEN_ENV_NAMES:
                errors.append(f"set {name} through model_id / the host's HF token, not env")
            elif name in INT_ENV and not re.fullmatch(r"[1-9][0-9]*", str(value)):
                errors.append(f"env {name} must be a positive integer, got {value!r}")
        if "MAX_INPUT_TOKENS" in self.env and "MAX_INPUT_LENGTH" in self.env:
            errors.append("set MAX_INPUT_TOKENS or its legacy name MAX_INPUT_LENGTH, not both")
        max_in = self.env.get("MAX_INPUT_TOKENS", self.env.get("MAX_INPUT_LENGTH"))
        max_total = self.env.get("MAX_TOTAL_TOKENS")
        if max_in is not None and max_total is not None and not errors and int(max_in) >= int(max_total):
            errors.append(f"max input tokens ({max_in}) must be below MAX_TOTAL_TOKENS ({max_total})")
        cast = self.env.get("HF_AUTO_CAST_TYPE")
        if cast is not None and str(cast) not in AUTO_CAST_TYPES:
            errors.append(f"HF_AUTO_CAST_TYPE must be one of {', '.join(AUTO_CAST_TYPES)}, got {cast!r}")
        if not re.fullmatch(r"all|[1-9][0-9]*|device=[0-9]+(,[0-9]+)*", self.gpus):
            errors.append(f"gpus must be 'all', a count or 'device=0,1' (docker --gpus), got {self.gpus!r}")
        if self.health_timeout_s is not None and self.health_timeout_s <= 0:
            errors.append("health_timeout_s must be > 0")
        return errors

    def with_overrides(self, **changes: Any) -> ServerSettings:
        """A copy with the non-None values of `changes` applied (command-line flags on a scenario)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def settings_from_target(target: Any, **overrides: Any) -> ServerSettings:
    """ServerSettings from the configuration's `[target]` (harness.config.model.Target)."""
    settings = ServerSettings(
        profile=target.server or "emulator",
        image=target.image,
        model_id=target.model_id,
        env=dict(target.server_env),
        health_timeout_s=target.startup_timeout_s,
        host_port=target.host_port,
        privileged=target.privileged,
        devices=None if target.devices is None else tuple(target.devices),
    )
    if settings.profile == "emulator" and target.emulator_profile:
        settings = replace(settings, env={"EMULATOR_PROFILE": target.emulator_profile, **settings.env})
    return settings.with_overrides(**overrides)


@dataclass(frozen=True)
class TokenSource:
    """Where the HF token comes from; `value` is never shown (repr=False)."""

    kind: str  # "env" | "file"
    where: str  # the variable's name, or the file's path
    value: str = field(repr=False, default="")

    def shell(self, home: str | None = None) -> str:
        """How a shell would get it: `$HF_TOKEN` or `$(cat ~/.cache/huggingface/token)`."""
        if self.kind == "env":
            return f"${self.where}"
        return f"$(cat {_tilde(self.where, home)})"


@dataclass(frozen=True)
class HostFacts:
    """What was found on the host, so `plan` stays a pure function (tests pass their own)."""

    home: str
    neuron_devices: tuple[str, ...] = ()
    token: TokenSource | None = None

    @classmethod
    def detect(cls, environ: Mapping[str, str] | None = None, home: str | None = None) -> HostFacts:
        env = os.environ if environ is None else environ
        home = home or str(Path.home())
        devices = tuple(sorted(p for p in glob.glob("/dev/neuron*") if re.fullmatch(r"/dev/neuron\d+", p)))
        return cls(home=home, neuron_devices=devices, token=find_token(env, home))


def find_token(environ: Mapping[str, str], home: str) -> TokenSource | None:
    """The HF token: $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN, else the file `huggingface-cli login` wrote."""
    for name in TOKEN_ENV_NAMES:
        if environ.get(name, "").strip():
            return TokenSource("env", name, environ[name].strip())
    if environ.get("HF_TOKEN_PATH"):
        path = Path(environ["HF_TOKEN_PATH"])
    else:
        hf_home = environ.get("HF_HOME") or os.path.join(home, ".cache", "huggingface")
        path = Path(hf_home) / "token"
    try:
        value = path.read_text().strip()
    except OSError:
        return None
    return TokenSource("file", str(path), value) if value else None


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str = field(repr=False)
    secret: TokenSource | None = None  # set for the token: rendered from its source, never its value


@dataclass(frozen=True)
class Mount:
    source: str  # host path, absolute
    target: str
    mode: str = "rw"


@dataclass(frozen=True)
class RunSpec:
    """A resolved, runnable server configuration (image, env, devices, ports, mounts)."""

    profile: str
    image: str
    env: tuple[EnvVar, ...]
    container_port: int
    host_port: int
    host_ip: str | None
    mounts: tuple[Mount, ...]
    devices: tuple[str, ...]
    gpus: str | None
    privileged: bool
    shm_size: str | None
    args: tuple[str, ...]
    tty: bool
    health_timeout_s: float
    stop_timeout_s: int
    home: str  # for rendering host paths as ~/...
    warnings: tuple[str, ...] = ()

    def public_env(self) -> dict[str, str]:
        """The container environment with secrets replaced by REDACTED."""
        return {e.name: REDACTED if e.secret else e.value for e in self.env}

    def secrets(self) -> tuple[str, ...]:
        """Secret values, for scrubbing logs and results (never for display)."""
        return tuple(e.value for e in self.env if e.secret and e.value)

    def docker_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for docker-py's `containers.create` (the token's value included).

        GPU requests are returned as plain data under "device_requests"; harness.targets.container turns
        them into docker.types.DeviceRequest so this module never imports docker.
        """
        kwargs: dict[str, Any] = {
            "image": self.image,
            "environment": {e.name: e.value for e in self.env},
            "ports": {f"{self.container_port}/tcp": (self.host_ip or "0.0.0.0", self.host_port or None)},
            "volumes": {m.source: {"bind": m.target, "mode": m.mode} for m in self.mounts},
            "devices": [f"{d}:{d}:rwm" for d in self.devices],
            "privileged": self.privileged,
            "detach": True,
            "stop_signal": "SIGTERM",
        }
        if self.args:
            kwargs["command"] = list(self.args)
        if self.shm_size:
            kwargs["shm_size"] = self.shm_size
        if self.gpus is not None:
            if self.gpus == "all":
                kwargs["device_requests"] = [{"count": -1, "capabilities": [["gpu"]]}]
            elif self.gpus.startswith("device="):
                ids = self.gpus.removeprefix("device=").split(",")
                kwargs["device_requests"] = [{"device_ids": ids, "capabilities": [["gpu"]]}]
            else:
                kwargs["device_requests"] = [{"count": int(self.gpus), "capabilities": [["gpu"]]}]
        return kwargs

    def redacted(self) -> dict[str, Any]:
        """The run configuration for the manifest: everything but the secrets' values."""
        token = next((e.secret for e in self.env if e.secret), None)
        return {
            "profile": self.profile,
            "image": self.image,
            "env": self.public_env(),
            "hf_token_source": f"{token.kind}:{_tilde(token.where, self.home)}" if token else None,
            "container_port": self.container_port,
            "host_port": self.host_port,
            "host_ip": self.host_ip,
            "mounts": [{"source": m.source, "target": m.target, "mode": m.mode} for m in self.mounts],
            "devices": list(self.devices),
            "gpus": self.gpus,
            "privileged": self.privileged,
            "shm_size": self.shm_size,
            "args": list(self.args),
            "health_timeout_s": self.health_timeout_s,
            "warnings": list(self.warnings),
            "docker_run": docker_run_command(self),
        }


def plan(settings: ServerSettings, facts: HostFacts | None = None) -> RunSpec:
    """Resolve settings against the host into a RunSpec, or raise ServerConfigError listing why not."""
    errors = settings.validate()
    if errors:
        raise ServerConfigError("\n".join(errors))
    facts = facts or HostFacts.detect()
    profile = PROFILES[settings.profile]
    image = settings.image or profile.default_image
    warnings: list[str] = []
    if not any(fnmatch.fnmatch(image, pat) for pat in profile.image_patterns):
        warnings.append(f"image {image} is not one the {profile.name} profile knows; running it as one")
    if profile.accelerator in ("gpu", "cpu") and any(k in settings.env for k in NEURON_ONLY_ENV):
        warnings.append(f"{', '.join(NEURON_ONLY_ENV)} only mean something to Neuron images")

    env: list[EnvVar] = []
    if settings.model_id:
        env.append(EnvVar("MODEL_ID", settings.model_id))
    if settings.pass_token and facts.token is not None:
        env.append(EnvVar("HF_TOKEN", facts.token.value, secret=facts.token))
    env += [EnvVar(k, str(v)) for k, v in settings.env.items()]

    devices: tuple[str, ...] = ()
    if settings.devices is not None:
        devices = tuple(settings.devices)
    elif profile.accelerator == "neuron" and not settings.privileged:
        devices = facts.neuron_devices
        if not devices:
            raise ServerConfigError(
                "no /dev/neuron* devices on this host: run on an Inferentia/Trainium instance with the "
                "Neuron driver, or pass devices explicitly (privileged=true also exposes them)"
            )

    mounts: tuple[Mount, ...] = ()
    if settings.hf_cache and profile.hf_cache_target:
        source = settings.hf_cache
        if source == "~" or source.startswith("~/"):
            source = facts.home.rstrip("/") + source[1:]
        mounts = (Mount(os.path.abspath(source), profile.hf_cache_target),)

    return RunSpec(
        profile=profile.name,
        image=image,
        env=tuple(env),
        container_port=CONTAINER_PORT,
        host_port=settings.host_port,
        host_ip=settings.host_ip,
        mounts=mounts,
        devices=devices,
        gpus=settings.gpus if profile.accelerator == "gpu" else None,
        privileged=settings.privileged,
        shm_size=settings.shm_size or profile.shm_size,
        args=tuple(settings.args),
        tty=settings.tty,
        health_timeout_s=settings.health_timeout_s or profile.health_timeout_s,
        stop_timeout_s=profile.stop_timeout_s,
        home=facts.home,
        warnings=tuple(warnings),
    )


def docker_run_command(spec: RunSpec, *, detach: bool = False, extra: Sequence[str] = (),
                       multiline: bool = True) -> str:
    """The `docker run` line equivalent to `spec`, as the seed writes it; the token stays a reference.

    `extra` goes before the image (e.g. `--name x`, `--label k=v`). Values are double-quoted unless
    they are plain numbers, as in the seed (`-e MODEL_ID="..."`, `-e HF_NUM_CORES=2`).
    """
    parts: list[str] = ["docker run"]
    if spec.privileged:
        parts[0] += " --privileged"
    if spec.tty:
        parts[0] += " -ti"
    if detach:
        parts[0] += " -d"
    if spec.host_ip:  # "ip::80" lets docker pick the host port
        parts[0] += f" -p {spec.host_ip}:{spec.host_port or ''}:{spec.container_port}"
    elif spec.host_port:
        parts[0] += f" -p {spec.host_port}:{spec.container_port}"
    else:
        parts[0] += f" -p {spec.container_port}"
    parts += list(extra)
    parts += [f"--device={d}" for d in spec.devices]
    if spec.gpus is not None:
        parts.append(f"--gpus {spec.gpus}" if "," not in spec.gpus else f"--gpus '\"{spec.gpus}\"'")
    if spec.shm_size:
        parts.append(f"--shm-size {spec.shm_size}")
    parts += [f"-v {_tilde(m.source, spec.home)}:{m.target}" + ("" if m.mode == "rw" else f":{m.mode}")
              for m in spec.mounts]
    for e in spec.env:
        if e.secret is None:
            parts.append(f"-e {e.name}={_quote(e.value)}")
        elif e.secret.kind == "env" and e.secret.where == e.name:
            parts.append(f"-e {e.name}")  # docker copies it from the caller's environment
        else:
            parts.append(f'-e {e.name}={e.secret.shell(spec.home)}' if e.secret.kind == "file"
                         else f'-e {e.name}="{e.secret.shell(spec.home)}"')
    parts.append(" ".join([spec.image, *(shlex.quote(a) for a in spec.args)]))
    return (" \\\n  " if multiline else " ").join(parts)


def _quote(value: str) -> str:
    if re.fullmatch(r"[0-9]+", value):
        return value
    if re.search(r'["$`\\!]', value):
        return shlex.quote(value)
    return f'"{value}"'


def _tilde(path: str, home: str | None) -> str:
    if home and (path == home or path.startswith(home.rstrip("/") + "/")):
        return "~" + path[len(home.rstrip("/")):]
    return path
