"""Where output tokens come from: a text corpus tokenized once, continued from a seeded offset.

Outputs are real token ids of the server's tokenizer, so a client counting with the same
tokenizer agrees with the server. The corpus is Shakespeare's sonnets (harness/data/sonnets.txt)
when present, else a short built-in text.
"""

from __future__ import annotations

import random
from pathlib import Path

SONNETS = Path(__file__).resolve().parent.parent / "workload" / "data" / "sonnets.txt"
_FALLBACK = (
    "Shall I compare thee to a summer's day? Thou art more lovely and more temperate: "
    "Rough winds do shake the darling buds of May, And summer's lease hath all too short a date; "
    "Sometime too hot the eye of heaven shines, And often is his gold complexion dimm'd; "
    "And every fair from fair sometime declines, By chance or nature's changing course untrimm'd; "
    "But thy eternal summer shall not fade, Nor lose possession of that fair thou ow'st; "
    "Nor shall death brag thou wander'st in his shade, When in eternal lines to time thou grow'st: "
    "So long as men can breathe or eyes can see, So long lives this, and this gives life to thee.\n"
)


class Corpus:
    """Token ids of the corpus; `take(seed, n)` is a deterministic continuation of length n."""

    def __init__(self, tokenizer, path: Path | None = None) -> None:  # noqa: ANN001
        path = path or SONNETS
        text = path.read_text(encoding="utf-8") if path.is_file() else _FALLBACK
        ids = tokenizer.encode(text, add_special_tokens=False)
        special = set(tokenizer.special_ids)
        self.ids = [i for i in ids if i not in special] or [tokenizer.encode("a", False)[0]]
        self.source = str(path) if path.is_file() else "builtin"

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, seed: int, n: int) -> list[int]:
        ids = self.ids
        start = random.Random(seed).randrange(len(ids))
        out = ids[start : start + n]
        while len(out) < n:
            out += ids[: n - len(out)]
        return out
