"""The streaming users' command-line options, shared by locustfiles and `harness.load.sweep`.

Registered on Locust's parser (via events.init_command_line_parser in `harness.load.users`) they work
from the command line, the web UI (where marked), locust.conf and LOCUST_* environment
variables. `add_arguments` also accepts a plain argparse parser (no env vars, no web UI flags),
so the sweep can reuse the same definitions; `HarnessOptions.from_namespace` reads either.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from harness.client.transport import set_header
from harness.workload.prompts import PromptSpec

API_CHOICES = ("generate_stream", "chat", "completions")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110 token)
_FRAMING = ("content-length", "transfer-encoding", "connection")  # the client's own
STAMP_CHOICES = ("kernel", "recv")


@dataclass(frozen=True, slots=True)
class HarnessOptions:
    api: str = "generate_stream"
    tokenizer: str = "llama3"
    input_tokens_mean: float = 550
    input_tokens_stddev: float = 150
    input_tokens_min: int = 50
    output_tokens_mean: float = 150
    output_tokens_stddev: float = 10
    timeout: float = 600.0
    records_dir: str = "records"
    seed: int = 11111
    model: str = "tgi"
    ignore_eos: bool = False
    prompt_pool_size: int = 1000
    stamps: str = "kernel"
    headers: tuple[str, ...] = ()
    bearer_token_env: str = ""

    @classmethod
    def from_namespace(cls, ns: Any) -> HarnessOptions:
        """Read the options off a parsed namespace; missing ones (or ns None) keep defaults."""
        if ns is None:
            return cls()
        values = {}
        for f in fields(cls):
            value = getattr(ns, f.name, None)
            if value is not None:
                values[f.name] = tuple(value) if isinstance(value, list) else value
        return cls(**values)

    def request_headers(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The extra headers every request carries: each --header, then Authorization from the
        environment variable named by --bearer-token-env (read here, never stored elsewhere)."""
        out: dict[str, str] = {}
        for header in self.headers:
            name, sep, value = header.partition(":")
            name, value = name.strip(), value.strip()
            if not sep or not _TOKEN.fullmatch(name) or any(c in value for c in "\r\n"):
                raise ValueError(f"--header {header!r}: expected 'Name: value' on one line")
            if name.lower() in _FRAMING:
                raise ValueError(f"--header {header!r}: the client sets {name} itself")
            try:
                value.encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError(f"--header {header!r}: HTTP header values are latin-1") from None
            set_header(out, name, value)
        if self.bearer_token_env:
            token = environ.get(self.bearer_token_env, "").strip()
            if not token:
                raise ValueError(f"--bearer-token-env {self.bearer_token_env}: that environment variable is "
                                 "unset or empty")
            if any(c in token for c in "\r\n") or not token.isascii():
                raise ValueError(f"--bearer-token-env {self.bearer_token_env}: not a one-line ASCII token")
            set_header(out, "Authorization", f"Bearer {token}")
        return out

    def prompt_spec(self) -> PromptSpec:
        return PromptSpec(
            input_mean=self.input_tokens_mean,
            input_stddev=self.input_tokens_stddev,
            output_mean=self.output_tokens_mean,
            output_stddev=self.output_tokens_stddev,
            min_input=self.input_tokens_min,
            seed=self.seed,
            size=self.prompt_pool_size,
        )


_D = HarnessOptions()

# (flag, argparse kwargs, shown in the web UI)
_SPECS: list[tuple[str, dict[str, Any], bool]] = [
    ("--api", dict(choices=API_CHOICES, default=_D.api,
                   help="route used by ApiUser (the fixed user classes ignore it)"), True),
    ("--tokenizer", dict(default=_D.tokenizer,
                         help="'llama3' (bundled), a Hub id or a local dir: exact input counts"), True),
    ("--input-tokens-mean", dict(type=float, default=_D.input_tokens_mean, help="mean prompt tokens"), True),
    ("--input-tokens-stddev", dict(type=float, default=_D.input_tokens_stddev,
                                   help="stddev of prompt tokens (0: fixed)"), True),
    ("--input-tokens-min", dict(type=int, default=_D.input_tokens_min, help="minimum prompt tokens"),
     False),
    ("--output-tokens-mean", dict(type=float, default=_D.output_tokens_mean, help="mean max new tokens"),
     True),
    ("--output-tokens-stddev", dict(type=float, default=_D.output_tokens_stddev,
                                    help="stddev of max new tokens (0: fixed)"), True),
    ("--timeout", dict(type=float, default=_D.timeout,
                       help="seconds per request, connect to last byte (error_type 'timeout')"), True),
    ("--records-dir", dict(default=_D.records_dir,
                           help="directory for per-request JSONL records-<host>-<pid>.jsonl"), True),
    ("--seed", dict(type=int, default=_D.seed, help="seed of the prompt pool"), True),
    ("--model", dict(default=_D.model, help="'model' field for the OpenAI-compatible routes"), True),
    ("--ignore-eos", dict(action="store_true", default=False,
                          help="send ignore_eos=true (vLLM, llama.cpp; TGI has no such parameter)"), True),
    ("--prompt-pool-size", dict(type=int, default=_D.prompt_pool_size,
                                help="prompts built before the test starts, used round-robin"), True),
    ("--header", dict(action="append", dest="headers", default=None, metavar="'NAME: VALUE'",
                      help="extra request header (repeatable), saved as given: pass secrets with "
                           "--bearer-token-env"), False),
    ("--bearer-token-env", dict(default=_D.bearer_token_env, metavar="VAR",
                                help="send 'Authorization: Bearer <$VAR>' (e.g. HF_TOKEN); only the "
                                     "variable's name is ever saved"), False),
    ("--stamps", dict(choices=STAMP_CHOICES, default=_D.stamps,
                      help="token arrival stamps: 'kernel' receive timestamps (Linux, plain http; the "
                           "client's own delays do not count) or 'recv' (perf_counter after recv)"), False),
]  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options to a Locust parser (env vars, web UI) or a plain argparse parser."""
    locust_like = hasattr(parser, "args_included_in_web_ui")
    env_capable = locust_like or type(parser).__module__.startswith("configargparse")
    group = parser.add_argument_group("TGI streaming users") if not locust_like else parser
    for flag, kwargs, web_ui in _SPECS:
        kw = dict(kwargs)
        if env_capable:
            kw["env_var"] = "LOCUST_" + flag[2:].replace("-", "_").upper()
        if locust_like:
            kw["include_in_web_ui"] = web_ui
        group.add_argument(flag, **kw)
