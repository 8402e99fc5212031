"""The exit-code table is one module, printed by --help and shown verbatim in docs/reliability.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness import exitcodes

ROOT = Path(__file__).resolve().parents[2]


def test_the_codes_are_the_documented_ones() -> None:
    assert [code for code, _ in exitcodes.TABLE] == [0, 1, 2, 3, 4, 5, 130, 143]
    assert exitcodes.describe(exitcodes.SLO_UNMET).startswith("search: the SLOs were missed")
    assert exitcodes.describe(4).startswith("target unusable")
    assert exitcodes.describe(99) == "unknown exit code 99"


def test_docs_show_the_table() -> None:
    assert exitcodes.markdown_table() in (ROOT / "docs" / "reliability.md").read_text()


def test_sweep_help_ends_with_the_table() -> None:
    out = subprocess.run([sys.executable, "-m", "harness", "sweep", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60).stdout
    assert exitcodes.EPILOG in out


@pytest.mark.parametrize("flags,code", [
    ([], 0),
    (["too few samples (2 < 10)"], 1),
    (["high error rate (50%)", "client-bound (CPU 99%)"], 3),
    (["censored (3 of 20 still open at the close)"], 3),
    (["nothing measured", "too few samples (0 < 10)"], 3),
    (["SLO missed (TTFT p99 2,000 > 1500 ms)"], 1),
])
def test_strict_maps_flags_to_codes(flags: list[str], code: int) -> None:
    assert exitcodes.for_flags(flags) == code
