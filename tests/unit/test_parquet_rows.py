"""Parquet files written by a `python -m harness` process (pandas never imported) are the bytes a
process with pandas writes, and a later pandas reader in such a process still works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness.report import parquet

ROOT = Path(__file__).resolve().parents[2]
# Every kind of column the reports write: ints, floats with NaN and None, strings, bools, lists, nulls.
ROWS = [{"a": 1, "b": 0.5, "c": "x", "d": True, "e": [1, 2], "f": None, "g": None},
        {"a": 2, "b": float("nan"), "c": None, "d": False, "e": [], "f": None, "g": 1.5}]
FIELDS = [("time", "float64"), ("name", "string")]
CHILD = f"""
import json, sys
from harness.report import parquet
parquet.plain_rows_process()
parquet.write_rows(sys.argv[1], json.loads(sys.argv[3]))
parquet.write_rows(sys.argv[2], [{{"time": 1.0, "name": "x"}}], parquet.arrow_schema({FIELDS!r}))
print("pandas" in sys.modules)
import pandas  # importable again once the rows are written
print(len(pandas.read_parquet(sys.argv[1])))
"""


def test_a_plain_rows_process_writes_the_same_file_and_still_reads_with_pandas(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "plain.parquet"),
                           str(tmp_path / "plain_schema.parquet"), json.dumps(ROWS)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pandas_imported, rows_read = proc.stdout.split()
    assert pandas_imported == "False"
    assert rows_read == "2"
    import pandas  # noqa: F401 - this process: pyarrow with numpy and pandas, as a notebook has it

    parquet.write_rows(tmp_path / "here.parquet", ROWS)
    parquet.write_rows(tmp_path / "here_schema.parquet", [{"time": 1.0, "name": "x"}],
                       parquet.arrow_schema(FIELDS))
    assert (tmp_path / "plain.parquet").read_bytes() == (tmp_path / "here.parquet").read_bytes()
    assert (tmp_path / "plain_schema.parquet").read_bytes() == (tmp_path / "here_schema.parquet").read_bytes()
