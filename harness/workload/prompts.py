"""Seeded prompts of an exact token length, from Shakespeare's sonnets shuffled per prompt (as llmperf does).

Input lengths ~ Normal(mean, stddev) clipped to a minimum, max new tokens ~ Normal(mean, stddev)
(stddev 0: fixed). Lengths are exact for the chosen tokenizer as the server counts them: BOS
included for /generate_stream and /v1/completions, the whole chat template for chat. Why exact:
users of llmperf and GuideLLM asked for the model's own counts (llmperf #92, guidellm #75).

Why every prompt differs from its first tokens: a server with prefix caching (TGI 3.x on GPU, vLLM,
llama.cpp's prompt cache) skips the prefill of a prefix it has seen, so prompts that share long
prefixes — or a run that resends an earlier run's prompts — measure a TTFT far below a real one.
Each prompt is the instruction, then an *opener* word no other prompt of the pool starts with
(checked on the token ids), then the corpus lines in an order shuffled for that prompt. The texts
come from `PromptSpec.seed` (drawn per run unless given, see harness.config.model), the lengths
from `PromptSpec.lengths_seed` (the workload's shape: the same in every run). For measuring prefix
caching on purpose, `prefix_tokens = K, prefix_groups = G` puts one of G shared K-token passages
between the instruction and the opener. `shared_prefix` measures what a pool's prompts share.

Fast enough to build 1000 prompts in a few seconds: each corpus line is tokenized once; a prompt
concatenates line token ids in its own order, decodes a slice and re-counts it, correcting the
slice length by the difference (tokens can merge at the joins) until the count is exact.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.workload.tokenizer import DEFAULT_TOKENIZER, Tokenizer

SONNETS = Path(__file__).with_name("data") / "sonnets.txt"
# The bundled Llama 3 tokenizer's openers (PromptBuilder.opener_words), shipped: finding them
# decodes the whole vocabulary, half a second of CPU in every process that builds prompts.
# tests/unit/test_prompts.py recomputes them.
LLAMA3_OPENERS = Path(__file__).with_name("data") / "llama3_openers.txt"
HEAD_TOKENS = 64  # prefix_stats compares prompts this far beyond their shared part
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
    seed: int = 11111  # the texts (line order, openers, shared passages)
    size: int = 1000
    lengths_seed: int | None = None  # the input/output lengths (None: `seed`)
    prefix_tokens: int = 0  # a shared passage of this many tokens after the instruction (0: none)
    prefix_groups: int = 1  # how many different shared passages (prompt i gets passage i mod G)


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
    """Builds exact-length prompts from a corpus for one tokenizer and one counting mode."""

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
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if not lines:
            raise ValueError("empty corpus")
        self.lines = [self._backend.encode(ln + "\n", add_special_tokens=False).ids for ln in lines]
        self.ids: list[int] = [t for ids in self.lines for t in ids]  # the corpus in its own order
        if self.chat:
            rendered = tokenizer.render_chat([{"role": "user", "content": _PLACEHOLDER}])
            self._pre, _, self._post = rendered.partition(_PLACEHOLDER)
        self.overhead = self.count(instruction.strip())
        self._openers: list[str] | None = None
        self.last_ids: list[int] = []  # the token ids of the prompt `make` returned last
        # each built prompt's first tokens (the shared part and HEAD_TOKENS more): prefix_stats
        # needs no second encoding of every prompt
        self.heads: dict[str, tuple[int, ...]] = {}
        self._shared: dict[str, int] = {}

    def count(self, text: str) -> int:
        """Exact server-side input tokens for `text` as the prompt or the chat message."""
        return len(self.encode(text))

    def encode(self, text: str) -> list[int]:
        """The token ids the server sees for `text` as the prompt or the chat message."""
        if self.chat:
            # The template trims the content; special tokens around it make the join exact.
            return self._backend.encode(self._pre + text.strip() + self._post, add_special_tokens=False).ids
        return self._backend.encode(text, add_special_tokens=True).ids

    def openers(self) -> list[str]:
        """Plain lower-case words that are one token each (with their leading space) in the
        tokenizer's vocabulary: what prompts start with after the instruction."""
        if self._openers is None:
            if self.tok.spec == DEFAULT_TOKENIZER and LLAMA3_OPENERS.is_file():
                self._openers = LLAMA3_OPENERS.read_text(encoding="utf-8").split()
            else:
                self._openers = self.opener_words()
        return self._openers

    def opener_words(self) -> list[str]:
        """`openers`, computed from the vocabulary."""
        words = set()
        for tid in range(self._backend.get_vocab_size()):
            piece = self._backend.decode([tid])
            if len(piece) >= 5 and piece[0] == " " and piece[1:].isascii() and piece[1:].isalpha() \
                    and piece[1:].islower():
                words.add(piece[1:])
        return sorted(words)

    def _body(self, rng: random.Random, n: int) -> list[int]:
        """At least n token ids: the corpus lines in an order of this prompt's own (a Fisher-Yates
        shuffle drawn only as far as the lines it needs: a few dozen draws, not the whole corpus)."""
        out: list[int] = []
        order = list(range(len(self.lines)))
        i = len(order)
        while len(out) < n:
            if i == len(order):
                i = 0  # the corpus used up: a new order for the next pass
            j = rng.randrange(i, len(order))
            order[i], order[j] = order[j], order[i]
            out.extend(self.lines[order[i]])
            i += 1
        return out

    def passage(self, rng: random.Random, n: int) -> str:
        """A text of about n tokens from shuffled corpus lines (a shared-prefix passage)."""
        if n <= 0:
            return ""
        return self._backend.decode(self._body(rng, n)[:n], skip_special_tokens=False)

    def make(self, target: int, max_new_tokens: int, rng: random.Random, head: str = "") -> Prompt:
        """A prompt of exactly `target` tokens when reachable (else the closest one found):
        instruction + `head` (shared passage, opener) + corpus lines shuffled for this prompt."""
        best: tuple[int, str, list[int]] | None = None  # (abs error, text, its token ids)
        start = self.instruction + head
        fixed = self.count(start.strip())
        for _ in range(8):
            n = max(1, target - fixed)
            ids = self._body(rng, n + 64)
            seen: set[int] = set()
            for _ in range(6):
                if n > len(ids):
                    ids = ids + self._body(rng, n - len(ids) + 64)
                text = start + self._backend.decode(ids[:n], skip_special_tokens=False).rstrip()
                encoded = self.encode(text)
                c = len(encoded)
                if best is None or abs(c - target) < best[0]:
                    best = (abs(c - target), text, encoded)
                if c == target:
                    break
                seen.add(n)
                n = max(1, n + target - c)
                if n in seen:
                    break
            if best is not None and best[0] == 0:
                break
        assert best is not None
        self.last_ids = best[2]
        return Prompt(best[1], len(best[2]), max_new_tokens, target)

    def build(self, spec: PromptSpec, sizes: Sequence[tuple[int, int]] | None = None) -> list[Prompt]:
        """`spec.size` prompts, identical for the same spec, tokenizer and corpus; no two share more
        than the instruction (and, with `prefix_tokens`, their group's passage) as a token prefix.

        `sizes`: one prompt per (input tokens, max new tokens) given, in order, instead of lengths
        drawn from the spec (a trace's entries); an input shorter than the instruction gets the
        shortest prompt there is."""
        lengths = random.Random(spec.seed if spec.lengths_seed is None else spec.lengths_seed)
        texts = random.Random(spec.seed)
        passages = [self.passage(texts, spec.prefix_tokens) for _ in range(max(1, spec.prefix_groups))]
        words = self.openers()
        size = spec.size if sizes is None else len(sizes)
        pick = texts.sample(range(len(words)), min(len(words), size + 64))
        spare = iter(pick)
        floor = max(spec.min_input, self.overhead + 1) if sizes is None else self.overhead + 1
        used: set[tuple[int, int]] = set()  # (group, first token after the shared part)
        out = []
        for i in range(size):
            if sizes is None:
                n_in = _sample(lengths, spec.input_mean, spec.input_stddev, floor)
                n_out = _sample(lengths, spec.output_mean, spec.output_stddev, spec.min_output)
            else:
                n_in, n_out = max(floor, sizes[i][0]), sizes[i][1]
            group = i % len(passages)
            shared = passages[group] + (" " if passages[group] else "")
            while True:  # an opener whose first token no other prompt of the group starts with
                word = words[next(spare, texts.randrange(len(words)))]
                prompt = self.make(n_in, n_out, texts, shared + word.capitalize() + " ")
                ids = self.last_ids
                k = self.shared_tokens(shared)
                key = (k, ids[min(k, len(ids) - 1)])  # where it leaves its group's shared part
                if key not in used or len(used) >= len(words):
                    used.add(key)
                    break
            self.heads[prompt.text] = tuple(ids[:k + HEAD_TOKENS])
            out.append(prompt)
        return out

    def shared_tokens(self, shared: str = "") -> int:
        """How many leading tokens every prompt with this shared passage has in common: the chat
        template's head, the instruction and the passage, measured as the common prefix of two
        prompts that differ right after them."""
        cached = self._shared.get(shared)
        if cached is None:
            a = self.encode(self.instruction + shared + "Alpha beta")
            b = self.encode(self.instruction + shared + "Zulu yankee")
            cached = self._shared[shared] = _common(a, b)
        return cached


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    k = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        k += 1
    return k


def shared_prefix(token_lists: Sequence[Sequence[int]]) -> int:
    """The longest token prefix any two of the prompts share (0 for fewer than two).

    Sorted lexicographically, the longest common prefix of any pair is that of a neighbouring pair,
    so this is O(n log n) comparisons, not O(n²).
    """
    ordered = sorted(tuple(t) for t in token_lists)
    return max((_common(a, b) for a, b in zip(ordered, ordered[1:], strict=False)), default=0)


def prefix_stats(builder: PromptBuilder, prompts: Sequence[Prompt]) -> dict[str, int]:
    """For the manifest: the longest token prefix two prompts share (compared as far as
    HEAD_TOKENS beyond their shared part), and the instruction's tokens."""
    return {
        "prompts": len(prompts),
        "instruction_tokens": builder.shared_tokens(),
        "max_shared_prefix_tokens": shared_prefix(
            [builder.heads.get(p.text) or builder.encode(p.text) for p in prompts]),
    }


def _sample(rng: random.Random, mean: float, stddev: float, minimum: int) -> int:
    value = mean if stddev <= 0 else rng.gauss(mean, stddev)
    return max(minimum, round(value))


def build_pool(tokenizer: Tokenizer, chat: bool, spec: PromptSpec, start: int = 0) -> PromptPool:
    return PromptPool(PromptBuilder(tokenizer, chat).build(spec), start=start)
