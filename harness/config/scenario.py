"""A scenario: the validated description of one sweep, from a TOML file < environment < command line.

Plain data, no Locust: `load_scenario` merges the layers as nested dicts, then `Scenario.from_dict`
type-checks everything and rejects unknown keys, raising `ScenarioError` with one readable line.
Every override has one name, used three ways: `--measure-requests 20` on the command line,
`HARNESS_MEASURE_REQUESTS=20` in the environment, `steps.measure.min_requests = 20` in the file.

Phase rule (warm-up and measurement window of each step): a phase ends as soon as
``elapsed >= max_s``, or when ``elapsed >= min_s`` **and** at least ``min_requests`` requests
completed successfully during the phase. So "60 s" is ``min_s = max_s = 60``; "20 requests, at
least 30 s, at most 5 min" is ``min_requests = 20, min_s = 30, max_s = 300``. When ``max_s`` is
omitted it is ``min_s`` (no request target) or ``min_s + timeout_s`` (with one), so a dead server
never hangs the sweep.

Step rule (``[steps] restart``, ``--restart-users/--no-restart-users``, ``HARNESS_RESTART_USERS``):
with ``restart = true`` every step starts all of its users together: at the step boundary the
runner first stops every user of the previous step (their in-flight requests are cancelled; they
were sent in the previous step and count in no step), then starts the step's N users at once
(spawn rate raised to at least N). Each step is then independent of the previous one's leftovers,
as llmperf's per-concurrency runs are, and keeps constant concurrency within the step. With
``restart = false`` (the built-in default) a step only adds or removes users at ``spawn_rate``
per second, so the previous step's users keep their phase.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

APIS = ("generate_stream", "chat", "completions")
SERVER_KINDS = ("emulator", "neuronx-tgi", "tgi-gpu", "tgi-cpu")
DEFAULT_USERS = (1, 2, 4, 8, 16, 32, 64)  # the seed's script
ENV_PREFIX = "HARNESS_"


class ScenarioError(ValueError):
    """An invalid scenario; str() is one line meant for the terminal."""


@dataclass(frozen=True)
class PhaseRule:
    """When a warm-up or measurement phase ends (see the module docstring)."""

    min_s: float = 0.0
    max_s: float = 0.0
    min_requests: int = 0

    def done(self, elapsed: float, completed: int) -> bool:
        if elapsed >= self.max_s:
            return True
        return elapsed >= self.min_s and completed >= self.min_requests

    def describe(self) -> str:
        if self.min_requests:
            return f"≥{self.min_requests} requests and ≥{self.min_s:g} s, ≤{self.max_s:g} s"
        return f"{self.min_s:g} s"


@dataclass(frozen=True)
class StepSpec:
    users: int
    warmup: PhaseRule
    measure: PhaseRule


@dataclass(frozen=True)
class Tokens:
    input_mean: int = 550
    input_stddev: int = 150
    output_mean: int = 150
    output_stddev: int = 0


@dataclass(frozen=True)
class Server:
    """What to run the sweep against; `kind` selects harness.targets.container's ManagedServer profile."""

    kind: str | None = None  # None: emulator subprocess unless a URL is given
    url: str | None = None
    image: str | None = None
    model_id: str | None = None
    instance: str | None = None  # e.g. "inf2.xlarge", for the report
    emulator_profile: str = "inf2-xlarge-llama3-8b"
    startup_timeout_s: float = 1800.0
    env: dict[str, str] = field(default_factory=dict)  # container environment (MAX_BATCH_SIZE, ...)
    host_port: int = 0  # container port 80 published here; 0: any free port
    privileged: bool = False  # --privileged (the seed's run); otherwise devices are passed one by one
    devices: tuple[str, ...] | None = None  # None: found on the host (/dev/neuron*); [] for none


@dataclass(frozen=True)
class Flags:
    """Thresholds above which a step is flagged in the report (and `--strict` exits non-zero)."""

    max_error_rate: float = 0.01
    min_samples: int = 10
    max_client_cpu_percent: float = 85.0
    max_sched_lag_ms: float = 10.0  # p99 of the client's wake-up lateness (a ms-accurate tool: keep it small)


@dataclass(frozen=True)
class Scenario:
    name: str = "scenario"
    description: str = ""
    api: str = "generate_stream"
    tokenizer: str = "llama3"
    seed: int = 11111  # llmperf's
    price_per_hour: float | None = None
    timeout_s: float = 600.0
    spawn_rate: float = 100.0  # users started per second when a step ramps up
    restart_users: bool = False  # [steps] restart: stop all users at each step boundary, start N at once
    tokens: Tokens = field(default_factory=Tokens)
    steps: tuple[StepSpec, ...] = ()
    server: Server = field(default_factory=Server)
    flags: Flags = field(default_factory=Flags)
    source: str = ""  # which file(s) and layers it came from

    @property
    def users(self) -> list[int]:
        return [s.users for s in self.steps]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "") -> Scenario:
        return _build(data, source)


# --- overrides shared by environment and command line ----------------------------------------


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ScenarioError(f"expected true or false, got {text!r}")


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in str(text).replace(" ", "").split(",") if x]
    except ValueError:
        raise ScenarioError(f"expected comma-separated integers, got {text!r}") from None


@dataclass(frozen=True)
class Override:
    name: str  # CLI --name-with-dashes, env HARNESS_NAME_WITH_UNDERSCORES
    path: str  # dotted key in the scenario dict
    parse: Callable[[str], Any]
    help: str
    flag: bool = False  # a switch: --name / --no-name on the command line, true/false/1/0 in the env


OVERRIDES: tuple[Override, ...] = (
    Override("name", "name", str, "run name (used in the run id)"),
    Override("steps", "steps.users", _int_list, "user counts, e.g. 1,2,4,8"),
    Override("api", "api", str, f"one of {', '.join(APIS)}"),
    Override("tokenizer", "tokenizer", str, "tokenizer: 'llama3', a Hub id or a directory"),
    Override("seed", "seed", int, "random seed of the prompt and length sampler"),
    Override("price_per_hour", "price_per_hour", float, "instance price in $/h (for cost per 1M tokens)"),
    Override("timeout_s", "timeout_s", float, "per-request timeout in seconds"),
    Override("spawn_rate", "spawn_rate", float, "users started per second when ramping"),
    Override(
        "restart_users",
        "steps.restart",
        _bool,
        "stop all users at each step boundary and start the step's users together",
        flag=True,
    ),
    Override("input_mean", "tokens.input_mean", int, "mean input tokens"),
    Override("input_stddev", "tokens.input_stddev", int, "stddev of input tokens"),
    Override("output_mean", "tokens.output_mean", int, "mean max_new_tokens"),
    Override("output_stddev", "tokens.output_stddev", int, "stddev of max_new_tokens"),
    Override("warmup_s", "steps.warmup.min_s", float, "warm-up: at least this many seconds"),
    Override("warmup_requests", "steps.warmup.min_requests", int, "warm-up: at least this many requests"),
    Override("warmup_max_s", "steps.warmup.max_s", float, "warm-up: at most this many seconds"),
    Override("measure_s", "steps.measure.min_s", float, "window: at least this many seconds"),
    Override("measure_requests", "steps.measure.min_requests", int, "window: at least this many requests"),
    Override("measure_max_s", "steps.measure.max_s", float, "window: at most this many seconds"),
    Override("url", "server.url", str, "target server URL (no emulator or container is started)"),
    Override("server", "server.kind", str, f"container to start: {', '.join(SERVER_KINDS)}"),
    Override("model", "server.model_id", str, "model id served by the container"),
    Override("image", "server.image", str, "container image"),
    Override("emulator_profile", "server.emulator_profile", str, "emulator profile when no --url/--server"),
    Override("max_batch_size", "server.env.MAX_BATCH_SIZE", str, "server MAX_BATCH_SIZE"),
)
_BY_NAME = {o.name: o for o in OVERRIDES}


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The HARNESS_* variables that name an override (others, e.g. HARNESS_RECORDS_DIR, are ignored)."""
    environ = os.environ if environ is None else environ
    out = {}
    for o in OVERRIDES:
        value = environ.get(ENV_PREFIX + o.name.upper())
        if value not in (None, ""):
            out[o.name] = value
    return out


def add_override_arguments(parser: Any) -> None:
    """Add every override as `--name` to an argparse parser (dest = the override name); switches
    as `--name/--no-name` (None when neither is given, so lower layers apply)."""
    for o in OVERRIDES:
        flag = "--" + o.name.replace("_", "-")
        if o.flag:
            parser.add_argument(
                flag, dest=o.name, default=None, action=argparse.BooleanOptionalAction, help=o.help
            )
        else:
            parser.add_argument(flag, dest=o.name, default=None, help=o.help)


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ScenarioError(f"cannot set {path}: {key} is not a table")
    node[keys[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any], layer: str) -> dict[str, Any]:
    """Return a copy of `data` with overrides (name → string or value) applied."""
    out = copy.deepcopy(data)
    for name, raw in overrides.items():
        if raw is None:
            continue
        o = _BY_NAME.get(name)
        if o is None:
            raise ScenarioError(f"{layer}: unknown setting {name!r}")
        try:
            value = o.parse(raw) if isinstance(raw, str) else raw
        except ScenarioError as exc:
            raise ScenarioError(f"{layer}: {name}: {exc}") from None
        except ValueError:
            raise ScenarioError(f"{layer}: {name}: invalid value {raw!r}") from None
        if name == "steps":
            value = _merge_step_list(out.get("steps", {}).get("users"), value)
        _set_path(out, o.path, value)
    return out


def _merge_step_list(old: Any, users: list[int]) -> list[Any]:
    """Keep per-step settings from the file for user counts the override keeps."""
    by_users = {}
    for entry in old or []:
        if isinstance(entry, dict) and "users" in entry:
            by_users[entry["users"]] = entry
    return [by_users.get(u, u) for u in users]


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ScenarioError(f"scenario file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: invalid TOML: {exc}") from None


def load_scenario(
    path: str | os.PathLike[str] | None = None,
    cli: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Scenario:
    """File < environment (HARNESS_*) < command line, then validate."""
    data = read_toml(path) if path else {}
    sources = [str(path) if path else "defaults"]
    env = env_overrides(environ)
    if env:
        data = apply_overrides(data, env, "environment")
        sources.append("env: " + ", ".join(ENV_PREFIX + k.upper() for k in env))
    cli = {k: v for k, v in (cli or {}).items() if v is not None}
    if cli:
        data = apply_overrides(data, cli, "command line")
        sources.append("cli: " + ", ".join(_cli_flag(k, v) for k, v in cli.items()))
    where = str(path) if path else "scenario"
    try:
        return _build(data, "; ".join(sources))
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: {exc}") from None


def _cli_flag(name: str, value: Any) -> str:
    flag = name.replace("_", "-")
    o = _BY_NAME.get(name)
    return f"--{'no-' if o is not None and o.flag and value is False else ''}{flag}"


# --- validation -------------------------------------------------------------------------------


def _check_keys(table: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ScenarioError(f"unknown key {where + key!r} (allowed: {', '.join(allowed)})")


def _num(value: Any, where: str, kind: type = float, minimum: float | None = None, positive: bool = False):
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(f"{where} must be a number, got {value!r}")
    if kind is int and (not isinstance(value, int) and not float(value).is_integer()):
        raise ScenarioError(f"{where} must be an integer, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ScenarioError(f"{where} must be finite, got {value!r}")
    if positive and value <= 0:
        raise ScenarioError(f"{where} must be > 0, got {value!r}")
    if minimum is not None and value < minimum:
        raise ScenarioError(f"{where} must be ≥ {minimum:g}, got {value!r}")
    return kind(value)


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ScenarioError(f"{where} must be a string, got {value!r}")
    return value


def _rule(table: Any, base: Mapping[str, Any], where: str, timeout_s: float) -> PhaseRule:
    if not isinstance(table, Mapping):
        raise ScenarioError(f"{where} must be a table like {{ min_s = 30, min_requests = 10, max_s = 120 }}")
    merged = {**base, **table}
    _check_keys(merged, ("min_s", "max_s", "min_requests"), where + ".")
    min_s = _num(merged.get("min_s", 0.0), where + ".min_s", minimum=0)
    min_requests = _num(merged.get("min_requests", 0), where + ".min_requests", int, minimum=0)
    if merged.get("max_s") is None:
        max_s = min_s + timeout_s if min_requests else min_s
    else:
        max_s = _num(merged["max_s"], where + ".max_s", minimum=0)
    if max_s < min_s:
        raise ScenarioError(f"{where}.max_s ({max_s:g}) is less than {where}.min_s ({min_s:g})")
    return PhaseRule(min_s=min_s, max_s=max_s, min_requests=min_requests)


def _build(data: Mapping[str, Any], source: str) -> Scenario:
    top = (
        "name",
        "description",
        "api",
        "tokenizer",
        "seed",
        "price_per_hour",
        "timeout_s",
        "spawn_rate",
        "tokens",
        "steps",
        "server",
        "flags",
    )
    _check_keys(data, top, "")
    d = Scenario()
    timeout_s = _num(data.get("timeout_s", d.timeout_s), "timeout_s", positive=True)
    api = _str(data.get("api", d.api), "api")
    if api not in APIS:
        raise ScenarioError(f"api must be one of {', '.join(APIS)}, got {api!r}")
    price = data.get("price_per_hour", d.price_per_hour)
    if price is not None:
        price = _num(price, "price_per_hour", minimum=0)

    tokens_in = data.get("tokens", {})
    if not isinstance(tokens_in, Mapping):
        raise ScenarioError("tokens must be a table")
    _check_keys(tokens_in, ("input_mean", "input_stddev", "output_mean", "output_stddev"), "tokens.")
    t0 = Tokens()
    tokens = Tokens(
        input_mean=_num(tokens_in.get("input_mean", t0.input_mean), "tokens.input_mean", int, positive=True),
        input_stddev=_num(
            tokens_in.get("input_stddev", t0.input_stddev), "tokens.input_stddev", int, minimum=0
        ),
        output_mean=_num(
            tokens_in.get("output_mean", t0.output_mean), "tokens.output_mean", int, positive=True
        ),
        output_stddev=_num(
            tokens_in.get("output_stddev", t0.output_stddev), "tokens.output_stddev", int, minimum=0
        ),
    )

    steps_in = data.get("steps", {})
    if not isinstance(steps_in, Mapping):
        raise ScenarioError("steps must be a table with users = [...], warmup = {...}, measure = {...}")
    _check_keys(steps_in, ("users", "warmup", "measure", "restart"), "steps.")
    restart = steps_in.get("restart", d.restart_users)
    if not isinstance(restart, bool):
        raise ScenarioError(f"steps.restart must be true or false, got {restart!r}")
    warm_base = steps_in.get("warmup", {"min_s": 10.0})
    meas_base = steps_in.get("measure", {"min_s": 60.0})
    for key, base in (("warmup", warm_base), ("measure", meas_base)):
        if not isinstance(base, Mapping):
            raise ScenarioError(f"steps.{key} must be a table")
    users_in = steps_in.get("users", list(DEFAULT_USERS))
    if not isinstance(users_in, list) or not users_in:
        raise ScenarioError("steps.users must be a non-empty list of user counts")
    steps = []
    for i, entry in enumerate(users_in):
        where = f"steps.users[{i}]"
        if isinstance(entry, Mapping):
            _check_keys(entry, ("users", "warmup", "measure"), where + ".")
            if "users" not in entry:
                raise ScenarioError(f"{where} needs users = N")
            users = _num(entry["users"], where + ".users", int, positive=True)
            warm = _rule(entry.get("warmup", {}), warm_base, where + ".warmup", timeout_s)
            meas = _rule(entry.get("measure", {}), meas_base, where + ".measure", timeout_s)
        else:
            users = _num(entry, where, int, positive=True)
            warm = _rule({}, warm_base, "steps.warmup", timeout_s)
            meas = _rule({}, meas_base, "steps.measure", timeout_s)
        if meas.max_s <= 0:
            raise ScenarioError(
                f"{where}: the measurement window must last > 0 s (set measure.min_s or max_s)"
            )
        steps.append(StepSpec(users=users, warmup=warm, measure=meas))

    server_in = data.get("server", {})
    if not isinstance(server_in, Mapping):
        raise ScenarioError("server must be a table")
    s0 = Server()
    _check_keys(
        server_in,
        (
            "kind", "url", "image", "model_id", "instance", "emulator_profile", "startup_timeout_s", "env",
            "host_port", "privileged", "devices",
        ),
        "server.",
    )
    kind = server_in.get("kind")
    if kind is not None and kind not in SERVER_KINDS:
        raise ScenarioError(f"server.kind must be one of {', '.join(SERVER_KINDS)}, got {kind!r}")
    env_in = server_in.get("env", {})
    if not isinstance(env_in, Mapping):
        raise ScenarioError("server.env must be a table of NAME = value")
    for k, v in env_in.items():
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise ScenarioError(f"server.env.{k} must be a string or number, got {v!r}")
    privileged = server_in.get("privileged", s0.privileged)
    if not isinstance(privileged, bool):
        raise ScenarioError(f"server.privileged must be true or false, got {privileged!r}")
    devices = server_in.get("devices", s0.devices)
    if devices is not None:
        if not isinstance(devices, list | tuple) or not all(isinstance(d, str) for d in devices):
            raise ScenarioError(f"server.devices must be a list of device paths, got {devices!r}")
        devices = tuple(devices)
    host_port = _num(server_in.get("host_port", s0.host_port), "server.host_port", int, minimum=0)
    if host_port > 65535:
        raise ScenarioError(f"server.host_port must be 0..65535, got {host_port}")
    url = server_in.get("url")
    if url is not None and not str(url).startswith(("http://", "https://")):
        raise ScenarioError(f"server.url must start with http:// or https://, got {url!r}")
    server = Server(
        kind=kind,
        url=url,
        image=None if server_in.get("image") is None else _str(server_in["image"], "server.image"),
        model_id=None
        if server_in.get("model_id") is None
        else _str(server_in["model_id"], "server.model_id"),
        instance=None
        if server_in.get("instance") is None
        else _str(server_in["instance"], "server.instance"),
        emulator_profile=_str(
            server_in.get("emulator_profile", s0.emulator_profile), "server.emulator_profile"
        ),
        startup_timeout_s=_num(
            server_in.get("startup_timeout_s", s0.startup_timeout_s),
            "server.startup_timeout_s",
            positive=True,
        ),
        env={str(k): str(v) for k, v in env_in.items()},
        host_port=host_port,
        privileged=privileged,
        devices=devices,
    )

    flags_in = data.get("flags", {})
    if not isinstance(flags_in, Mapping):
        raise ScenarioError("flags must be a table")
    f0 = Flags()
    _check_keys(flags_in, tuple(asdict(f0)), "flags.")
    flags = Flags(
        max_error_rate=_num(
            flags_in.get("max_error_rate", f0.max_error_rate), "flags.max_error_rate", minimum=0
        ),
        min_samples=_num(flags_in.get("min_samples", f0.min_samples), "flags.min_samples", int, minimum=0),
        max_client_cpu_percent=_num(
            flags_in.get("max_client_cpu_percent", f0.max_client_cpu_percent),
            "flags.max_client_cpu_percent",
            positive=True,
        ),
        max_sched_lag_ms=_num(
            flags_in.get("max_sched_lag_ms", f0.max_sched_lag_ms), "flags.max_sched_lag_ms", positive=True
        ),
    )

    name = _str(data.get("name", d.name), "name")
    if not name or any(c in name for c in "/\\ "):
        raise ScenarioError(f"name must be non-empty without spaces or slashes, got {name!r}")
    return Scenario(
        name=name,
        description=_str(data.get("description", ""), "description"),
        api=api,
        tokenizer=_str(data.get("tokenizer", d.tokenizer), "tokenizer"),
        seed=_num(data.get("seed", d.seed), "seed", int, minimum=0),
        price_per_hour=price,
        timeout_s=timeout_s,
        spawn_rate=_num(data.get("spawn_rate", d.spawn_rate), "spawn_rate", positive=True),
        restart_users=restart,
        tokens=tokens,
        steps=tuple(steps),
        server=server,
        flags=flags,
        source=source,
    )


def scenario_from_json(data: Mapping[str, Any]) -> Scenario:
    """Rebuild a Scenario saved with `to_dict` (manifest.json), for `harness report`."""
    data = dict(data)
    source = data.pop("source", "")
    steps = data.pop("steps", [])
    data["steps"] = {
        "users": [{"users": s["users"], "warmup": s["warmup"], "measure": s["measure"]} for s in steps]
        or [1],
        "restart": data.pop("restart_users", False),
    }
    return _build(data, source)


def find_scenario(name: str) -> Path:
    """A path as given, or a bare name looked up in the repository's scenarios/ directory."""
    p = Path(name)
    if p.exists() or p.suffix:
        return p
    return Path(__file__).resolve().parents[1] / "scenarios" / f"{name}.toml"


def locust_args(
    sc: Scenario, url: str, records_dir: str | os.PathLike[str], headless: bool = True
) -> list[str]:
    """The users' options (harness.load.options) for this scenario, as a Locust command line."""
    t = sc.tokens
    return [
        *(["--headless"] if headless else []),
        "--host",
        url,
        "--api",
        sc.api,
        "--tokenizer",
        sc.tokenizer,
        "--input-tokens-mean",
        str(t.input_mean),
        "--input-tokens-stddev",
        str(t.input_stddev),
        "--output-tokens-mean",
        str(t.output_mean),
        "--output-tokens-stddev",
        str(t.output_stddev),
        "--timeout",
        str(sc.timeout_s),
        "--records-dir",
        str(records_dir),
        "--seed",
        str(sc.seed),
        "--loglevel",
        "WARNING",
    ]
