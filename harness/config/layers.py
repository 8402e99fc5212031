"""Scenario file < `HARNESS_*` environment < command line → one validated RunConfig.

Layers are merged as plain dicts in the file's shape, then validated once. Two rules make the
upper layers win everywhere, per step too:
- a window setting given by a variable or flag (`--measure-min-s 60`) replaces that key in the
  `[steps]` default AND in every step's own table; a lower layer's opposite bound that contradicts
  it (`max_s` below the new `min_s`, or `min_s` above the new `max_s`) is dropped, so "at least
  60 s" is never silently capped at a file's 21 s;
- `--steps 1,4` (or `20/s`, `trace:FILE`) keeps a file's per-step table for the steps it keeps.
Errors are `ConfigError`: one line naming the layer (file, variable or flag), the key, the problem
and the allowed values — never a traceback.
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from harness.config.model import RunConfig
from harness.config.settings import Setting, SettingError, by_name

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


class ConfigError(ValueError):
    """An invalid configuration; str() is one line meant for the terminal."""


def find_scenario(name: str) -> Path:
    """A path as given, or a bare name of a shipped scenario (harness/scenarios/<name>.toml)."""
    p = Path(name)
    if p.exists() or p.suffix or "/" in name:
        return p
    return SCENARIOS / f"{name}.toml"


def shipped_scenarios() -> list[str]:
    return sorted(p.stem for p in SCENARIOS.glob("*.toml"))


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"scenario file not found: {path} (shipped: {', '.join(shipped_scenarios())})"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def env_values(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The HARNESS_* variables that name a setting (others, e.g. HARNESS_SCENARIO, are ignored)."""
    environ = os.environ if environ is None else environ
    return {s.name: environ[s.env] for s in by_name().values() if environ.get(s.env, "") != ""}


class _Layers:
    def __init__(self, data: dict[str, Any], source: str) -> None:
        self.data = data
        self.sources: dict[tuple[str, ...], str] = {}  # key path → variable or flag that set it
        self.base = source
        self.applied: list[str] = []
        target = data.get("target")
        self.file_target_url = target.get("url") if isinstance(target, dict) else None

    def forget_other_servers_facts(self) -> None:
        """A `url` from the environment or the command line points the file's scenario at another
        server than the one its [target] describes (the shipped scenarios describe an emulated
        inf2.xlarge): the file's instance and price are not that server's, so they go, unless an
        upper layer gives them too (no cost per 1M tokens is shown at a price nobody stated)."""
        target = self.data.get("target")
        if not isinstance(target, dict) or self.sources.get(("target", "url")) is None:
            return
        if self.file_target_url is not None and self.file_target_url == target.get("url"):
            return
        for key in ("instance", "price_per_hour"):
            if ("target", key) not in self.sources:
                target.pop(key, None)

    def apply(self, values: Mapping[str, Any], label: str) -> None:
        table = by_name()
        for name, raw in values.items():
            s = table.get(name)
            if s is None:
                raise ConfigError(f"{label}: unknown setting {name!r}")
            where = s.env if label == "environment" else s.flag
            try:
                value = s.parse(raw) if isinstance(raw, str) else raw
            except SettingError as exc:
                raise ConfigError(f"{where}: {exc}") from None
            self._set(s, value)
            self.sources[s.path] = where
            self.applied.append(where)

    def _set(self, s: Setting, value: Any) -> None:
        node = self.data
        for key in s.path[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{self.base}: {'.'.join(s.path[:-1])} must be a table")
            node = child
        leaf = s.path[-1]
        if s.kind == "steps":
            value = _keep_step_tables(node.get("users"), value)
        if len(s.path) == 3 and s.path[0] == "steps":  # a window key: the default and every step
            phase = s.path[1]
            tables = [node] + [  # a trace step has no warm-up (harness.config.model.Step)
                e.setdefault(phase, {}) for e in self.data["steps"].get("users") or []
                if isinstance(e, dict) and not (phase == "warmup" and "trace" in e)
            ]
            for t in tables:
                if isinstance(t, dict):
                    _override_bound(t, leaf, value)
            return
        if s.path in (("target", "url"), ("target", "server")) and value:
            node.pop("server" if leaf == "url" else "url", None)  # the upper layer's choice of target wins
        if s.kind == "dict" and isinstance(node.get(leaf), dict):
            value = {**node[leaf], **value}
        node[leaf] = value


def _override_bound(table: dict[str, Any], leaf: str, value: Any) -> None:
    """Set a window key from an upper layer; drop the lower layer's contradicting opposite bound."""
    table[leaf] = value
    try:
        v = float(value)
    except (TypeError, ValueError):
        return  # validation will say what is wrong with it
    if leaf == "min_s" and isinstance(table.get("max_s"), int | float) and table["max_s"] < v:
        del table["max_s"]
    if leaf == "max_s" and isinstance(table.get("min_s"), int | float) and table["min_s"] > v:
        table["min_s"] = v


def _keep_step_tables(old: Any, steps: list[Any]) -> list[Any]:
    """The upper layer's steps, each replaced by the lower layer's table that it matches (same
    users; same rate or trace and whatever else the entry gives), so `--steps 1,4` or `--steps 20/s`
    keep a file's windows and caps for the steps they keep."""
    tables = [e for e in old or [] if isinstance(e, dict)]

    def match(entry: Any) -> Any:
        want = {"users": entry} if isinstance(entry, int) else entry
        if not isinstance(want, dict):
            return entry
        for t in tables:
            if all(k in t and t[k] == v for k, v in want.items()):
                return copy.deepcopy(t)
        return entry

    return [match(e) for e in steps]


def load_config(
    path: str | os.PathLike[str] | None = None,
    cli: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> RunConfig:
    """File < environment (HARNESS_*) < command line (a {setting name: value} map), validated."""
    source = str(path) if path else "defaults"
    layers = _Layers(read_toml(path) if path else {}, source)
    layers.apply(env_values(environ), "environment")
    layers.apply({k: v for k, v in (cli or {}).items() if v is not None}, "command line")
    layers.forget_other_servers_facts()
    return validate(layers.data, layers.base, layers.sources)


def validate(data: Mapping[str, Any], source: str = "configuration",
             sources: Mapping[tuple[str, ...], str] | None = None) -> RunConfig:
    """RunConfig from a file-shaped dict, or ConfigError naming where the bad value came from."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe(exc, source, sources or {})) from None


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's union-member tags ('int', 'Step', 'function-after[…]') from a location."""
    def is_key(p: Any) -> bool:
        return isinstance(p, int) or (p[:1].islower() and not set("[-") & set(p) and p != "int")

    return tuple(p for p in loc if is_key(p))


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + p)
    return out


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that holds the last key of `loc` (for "allowed keys")."""
    from harness.config import model as m

    cls: Any = RunConfig
    for p in loc[:-1]:
        if isinstance(p, int):
            cls = m.Step
            continue
        info = cls.model_fields.get(p) if isinstance(cls, type) and issubclass(cls, BaseModel) else None
        if info is None:
            return None
        ann = info.annotation
        is_model = isinstance(ann, type) and issubclass(ann, BaseModel)
        cls = ann if is_model else m.Step if p == "users" else None
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


_MEMBER_MISMATCH = ("int_type", "int_parsing", "model_type", "dict_type")  # "not this union member"


def describe(exc: ValidationError, source: str, sources: Mapping[tuple[str, ...], str]) -> str:
    errors = exc.errors(include_url=False)
    # A union (a step is a count or a table) reports one error per member: take the deepest.
    err = max(errors, key=lambda e: (len(_clean_loc(e["loc"])), e["type"] not in _MEMBER_MISMATCH))
    loc = _clean_loc(err["loc"])
    where = source
    for i in range(len(loc), 0, -1):
        keyed = tuple(p for p in loc[:i] if not isinstance(p, int))
        if keyed in sources:
            where = sources[keyed]
            break
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        cls = _model_at(loc)
        allowed = f" (allowed: {', '.join(cls.model_fields)})" if cls else ""
        return f"{where}: unknown key {_dotted(loc)!r}{allowed}"
    if not loc:
        return f"{where}: {msg}"
    got = err.get("input")
    shown = "" if isinstance(got, dict | list) or got is None or "got " in msg else f" (got {got!r})"
    return f"{where}: {_dotted(loc)}: {msg}{shown}"
