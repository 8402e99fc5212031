"""Seeded prompts of an exact token length, cut from Shakespeare's sonnets (as llmperf does).

Input lengths ~ Normal(mean, stddev) clipped to a minimum, max new tokens ~ Normal(mean, stddev)
(stddev 0: fixed). Lengths are exact for the chosen tokenizer as the server counts them: BOS
included for /generate_stream and /v1/completions, the whole chat template for chat. Why exact:
users of llmperf and GuideLLM asked for the model's own counts (llmperf #92, guidellm #75).

Fast enough to build 1000 prompts in a few seconds: the corpus is tokenized once; each prompt is a
slice of token ids starting at a line start, decoded and re-counted, and the slice length is
corrected by the difference (tokens can merge at the joins) until the count is exact.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.workload.tokenizer import Tokenizer

SONNETS = Path(__file__).with_name("data") / "sonnets.txt"
INSTRUCTION = (
    "Here are some lines of poetry. Write a long, detailed commentary on them, line by line, "
    "and keep writing for as long as you can:\n\n"
)
_PLACEHOLDER = "\ue000"  # private-use character: splits the rendered chat template


@dataclass(frozen=True, slots=True)
class Prompt:
    text: str  # the `inputs` / `prompt`, or the chat user message's content
    input_tokens: int  # exact count the server sees (BOS, or the whole chat template, included)
    max_new_tokens: int
    target_tokens: int  # the sampled input length (equal to input_tokens unless unreachable)


@dataclass(frozen=True, slots=True)
class PromptSpec:
    input_mean: float = 550
    input_stddev: float = 150
    output_mean: float = 150
    output_stddev: float = 10
    min_input: int = 50
    min_output: int = 1
    seed: int = 11111
    size: int = 1000


class PromptPool:
    """A fixed list of prompts, handed out round-robin (no sampling in the hot path)."""

    def __init__(self, prompts: Sequence[Prompt], start: int = 0) -> None:
        if not prompts:
            raise ValueError("empty prompt pool")
        self.prompts = list(prompts)
        self._i = start % len(self.prompts)

    def __len__(self) -> int:
        return len(self.prompts)

    def next(self) -> Prompt:
        i = self._i
        self._i = (i + 1) % len(self.prompts)
        return self.prompts[i]


class PromptBuilder:
    """Cuts exact-length prompts from a corpus for one tokenizer and one counting mode."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        chat: bool,
        corpus: str | None = None,
        instruction: str = INSTRUCTION,
    ) -> None:
        self.tok = tokenizer
        self.chat = chat
        self.instruction = instruction
        self._backend = tokenizer.backend  # the Rust tokenizer: no Python overhead
        text = corpus if corpus is not None else SONNETS.read_text(encoding="utf-8")
        lines = [ln.strip() for ln in text.splitlines()]
        text = "\n".join(ln for ln in lines if ln) + "\n"
        self.ids: list[int] = self._backend.encode(text, add_special_tokens=False).ids
        if not self.ids:
            raise ValueError("empty corpus")
        # A slice starts at a line start: the token after one whose text ends with a newline.
        self.starts = [0] + [i + 1 for i, t in enumerate(self.ids[:-1]) if tokenizer.piece(t).endswith("\n")]
        if self.chat:
            rendered = tokenizer.render_chat([{"role": "user", "content": _PLACEHOLDER}])
            self._pre, _, self._post = rendered.partition(_PLACEHOLDER)
        self.overhead = self.count(instruction.strip())

    def count(self, text: str) -> int:
        """Exact server-side input tokens for `text` as the prompt or the chat message."""
        if self.chat:
            # The template trims the content; special tokens around it make the join exact.
            full = self._pre + text.strip() + self._post
            return len(self._backend.encode(full, add_special_tokens=False).ids)
        return len(self._backend.encode(text, add_special_tokens=True).ids)

    def _slice(self, start: int, n: int) -> str:
        ids = self.ids
        if start + n > len(ids):  # wrap around the corpus as often as needed
            reps = (start + n) // len(ids) + 1
            ids = ids * reps
        return self._backend.decode(ids[start : start + n], skip_special_tokens=False)

    def make(self, target: int, max_new_tokens: int, rng: random.Random) -> Prompt:
        """A prompt of exactly `target` tokens when reachable (else the closest one found)."""
        best: tuple[int, str, int] | None = None  # (abs error, text, count)
        for _ in range(8):
            start = rng.choice(self.starts)
            n = max(1, target - self.overhead)
            seen: set[int] = set()
            for _ in range(6):
                text = self.instruction + self._slice(start, n).rstrip()
                c = self.count(text)
                if best is None or abs(c - target) < best[0]:
                    best = (abs(c - target), text, c)
                if c == target:
                    return Prompt(text, c, max_new_tokens, target)
                seen.add(n)
                n = max(1, n + target - c)
                if n in seen:
                    break
        assert best is not None
        return Prompt(best[1], best[2], max_new_tokens, target)

    def build(self, spec: PromptSpec) -> list[Prompt]:
        """`spec.size` prompts, identical for the same spec, tokenizer and corpus."""
        rng = random.Random(spec.seed)
        floor = max(spec.min_input, self.overhead + 1)
        out = []
        for _ in range(spec.size):
            n_in = _sample(rng, spec.input_mean, spec.input_stddev, floor)
            n_out = _sample(rng, spec.output_mean, spec.output_stddev, spec.min_output)
            out.append(self.make(n_in, n_out, rng))
        return out


def _sample(rng: random.Random, mean: float, stddev: float, minimum: int) -> int:
    value = mean if stddev <= 0 else rng.gauss(mean, stddev)
    return max(minimum, round(value))


def build_pool(tokenizer: Tokenizer, chat: bool, spec: PromptSpec, start: int = 0) -> PromptPool:
    return PromptPool(PromptBuilder(tokenizer, chat).build(spec), start=start)
