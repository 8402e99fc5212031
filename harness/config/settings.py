"""The flat table of settings derived from harness.config.model: one name per setting.

A setting's name is its key path below its section (`request.timeout_s` → `timeout_s`, a phase's
`steps.measure.min_s` → `measure_min_s`), the step list (`steps.users`) is `steps` (`parse_step`).
From the name: the flag `--timeout-s`, the variable `HARNESS_TIMEOUT_S`. Nothing here is written
by hand per setting: `python -m harness sweep --help`, the Locust options of the users and the
environment all come from this table, so they cannot drift from the model's names, defaults or
allowed values.
"""

from __future__ import annotations

import argparse
import json
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from harness.config.model import Phase, RunConfig

ENV_PREFIX = "HARNESS_"
# The role of a process in a distributed run ([distributed]): options of `python -m harness sweep`;
# in a plain locustfile run Locust's own --master/--worker/--master-host/--master-port decide it.
ROLE_SETTINGS = ("workers", "master", "worker", "master_host", "master_port", "connect_timeout_s")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
Kind = Literal["bool", "steps", "list", "dict", "scalar"]


class SettingError(ValueError):
    """A value that cannot be read from its text form (before validation)."""


@dataclass(frozen=True)
class Setting:
    name: str
    path: tuple[str, ...]
    kind: Kind
    help: str
    choices: tuple[str, ...] | None
    default: Any

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def key(self) -> str:
        return ".".join(self.path)

    def parse(self, text: str) -> Any:
        """The value of a flag or variable, as the file would hold it (validated later)."""
        text = str(text).strip()
        if self.kind == "bool":
            low = text.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise SettingError(f"expected true or false, got {text!r}")
        if self.kind == "steps":
            return [parse_step(x) for x in text.split(",") if x.strip()]
        if self.kind == "list":
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except ValueError:
                    raise SettingError(f"expected a JSON list, got {text!r}") from None
                return [str(v) for v in value]
            sep = "\n" if self.name == "headers" else ","
            return [x.strip() for x in text.split(sep) if x.strip()]
        if self.kind == "dict":
            out: dict[str, str] = {}
            for part in (p for p in text.split(",") if p.strip()):
                k, eq, v = part.partition("=")
                if not eq or not k.strip():
                    raise SettingError(f"expected NAME=VALUE[,NAME=VALUE], got {text!r}")
                out[k.strip()] = v.strip()
            return out
        return text


STEPS_SYNTAX = ("N (users), R/s[:ARRIVAL[:BURSTINESS]] (rate; ARRIVAL constant, poisson or gamma), "
                "trace:FILE[@SPEED] (trace replay)")


def parse_step(text: str) -> int | dict[str, Any]:
    """One `--steps` entry as the file would hold it: `8` → 8 users; `5/s` → {rate = 5} (Poisson),
    `5/s:constant`, `5/s:gamma:0.5` (arrival, burstiness); `trace:FILE` → {trace = FILE},
    `trace:FILE@2` → at twice its speed. Ranges and files are checked by the model, not here."""
    item = text.strip()
    bad = SettingError(f"entry {item!r}: expected {STEPS_SYNTAX}")
    if item.startswith("trace:"):
        path, at, speed = item[len("trace:"):].rpartition("@") if "@" in item else (item[6:], "", "")
        if not path.strip():
            raise bad
        out: dict[str, Any] = {"trace": path.strip()}
        if at:
            try:
                out["speed"] = float(speed)
            except ValueError:
                raise bad from None
        return out
    if "/s" in item:
        rate, _, rest = item.partition("/s")
        parts = rest.split(":") if rest else []
        if parts and parts[0] != "":
            raise bad  # "5/sec", "5/s3"
        parts = parts[1:]
        try:
            out = {"rate": float(rate)}
            if parts:
                out["arrival"] = parts[0]
            if len(parts) == 2:
                out["burstiness"] = float(parts[1])
        except ValueError:
            raise bad from None
        if len(parts) > 2 or (parts and not parts[0]):
            raise bad
        return out
    try:
        return int(item)
    except ValueError:
        raise bad from None


def _kind(info: FieldInfo) -> Kind:
    ann = info.annotation
    origin = typing.get_origin(ann)
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    if ann is bool:
        return "bool"
    if origin is dict or any(typing.get_origin(a) is dict for a in args):
        return "dict"
    if origin is list or any(typing.get_origin(a) is list for a in args):
        return "list"
    return "scalar"


def _choices(info: FieldInfo) -> tuple[str, ...] | None:
    def lits(t: Any) -> tuple[str, ...] | None:
        if typing.get_origin(t) is Literal:
            return tuple(typing.get_args(t))
        for a in typing.get_args(t):
            found = lits(a)
            if found:
                return found
        return None

    return lits(info.annotation)


def _walk() -> Iterator[Setting]:
    for section, sinfo in RunConfig.model_fields.items():
        model = sinfo.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            yield Setting(section, (section,), _kind(sinfo), sinfo.description or "", None, sinfo.default)
            continue
        for key, info in model.model_fields.items():
            if info.annotation is Phase:
                for leaf, linfo in Phase.model_fields.items():
                    help_ = f"{key}: {linfo.description}"
                    yield Setting(f"{key}_{leaf}", (section, key, leaf), "scalar", help_, None, None)
                continue
            if (section, key) == ("steps", "users"):
                yield Setting("steps", (section, key), "steps", info.description or "", None, None)
                continue
            default = info.get_default(call_default_factory=True)
            yield Setting(key, (section, key), _kind(info), info.description or "", _choices(info), default)


@cache
def settings() -> tuple[Setting, ...]:
    out = tuple(_walk())
    names = [s.name for s in out]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:  # the model's own invariant: a new field must not reuse a name
        raise RuntimeError(f"settings with the same flat name: {sorted(dupes)}")
    return out


def by_name() -> dict[str, Setting]:
    return {s.name: s for s in settings()}


def add_arguments(parser: Any, skip: tuple[str, ...] = (), locust: bool = False,
                  web_ui: tuple[str, ...] = ()) -> None:
    """Add every setting (but `skip`) to a parser, default None so lower layers apply.

    `locust`: the parser is Locust's (configargparse): the variable is the setting's HARNESS_*
    name (one name in all three layers) and `web_ui` sections are shown in the web UI's form.
    """
    for s in settings():
        if s.name in skip:
            continue
        kw: dict[str, Any] = {"dest": s.name, "default": None}
        help_ = s.help + (f" (default: {s.default})" if s.default not in (None, "", [], {}) else "")
        if s.kind == "bool":
            kw["action"] = argparse.BooleanOptionalAction
        elif s.kind in ("list", "dict") and s.name != "devices":
            kw["action"] = "append"  # repeatable; each occurrence parsed and merged
        if s.choices:
            kw["choices"] = s.choices
        if locust:
            kw["env_var"] = s.env
            kw["include_in_web_ui"] = s.path[0] in web_ui and s.kind not in ("list", "dict")
        parser.add_argument(s.flag, help=help_.replace("%", "%%"), **kw)


def from_namespace(ns: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """{name: value} of the settings given on a parsed namespace (None: not given)."""
    out: dict[str, Any] = {}
    for s in settings():
        if s.name in skip:
            continue
        value = getattr(ns, s.name, None)
        if value is None:
            continue
        if isinstance(value, list) and s.kind in ("list", "dict"):  # append action: parse each
            parsed = [s.parse(v) if isinstance(v, str) else v for v in value]
            if s.kind == "dict":
                value = {k: v for d in parsed for k, v in d.items()}
            else:
                value = [x for p in parsed for x in (p if isinstance(p, list) else [p])]
        out[s.name] = value
    return out
