"""Result files are replaced whole (harness.report.atomic): a failure mid-write keeps the old file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.report import atomic


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    atomic.write_text(path, "old\n")
    with pytest.raises(RuntimeError), atomic.atomic_open(path) as fh:
        fh.write("half of the new")
        raise RuntimeError("disk full")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.md"]


def test_the_new_file_has_the_modes_a_plain_write_would_have(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("x")
    atomic.write_text(tmp_path / "atomic", "x")
    assert os.stat(tmp_path / "atomic").st_mode == os.stat(plain).st_mode
    assert (tmp_path / "atomic").read_text() == "x"
