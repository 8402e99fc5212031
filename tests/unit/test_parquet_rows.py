"""Parquet files written by a `python -m harness` process (pandas never imported) are the bytes a
process with pandas writes, and a later pandas reader in such a process is not broken by it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa

from harness.report import parquet

ROOT = Path(__file__).resolve().parents[2]
# Every kind of column the reports write: ints, floats with NaN and None, strings, bools, lists, nulls.
ROWS = [{"a": 1, "b": 0.5, "c": "x", "d": True, "e": [1, 2], "f": None, "g": None},
        {"a": 2, "b": float("nan"), "c": None, "d": False, "e": [], "f": None, "g": 1.5}]
SCHEMA = "pa.schema([('time', pa.float64()), ('name', pa.string())])"
CHILD = f"""
import json, sys
import pyarrow as pa
from harness.report import parquet
parquet.pandas_free_process()
parquet.write_rows(sys.argv[1], json.loads(sys.argv[3]))
parquet.write_rows(sys.argv[2], [{{"time": 1.0, "name": "x"}}], {SCHEMA})
print("pandas" in sys.modules)
import pandas  # importable again once the rows are converted
print(len(pandas.read_parquet(sys.argv[1])))
"""


def test_a_pandas_free_process_writes_the_same_file_and_still_reads_with_pandas(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "free.parquet"),
                           str(tmp_path / "free_schema.parquet"), json.dumps(ROWS)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pandas_imported_while_writing, rows_read = proc.stdout.split()
    assert pandas_imported_while_writing == "False"
    assert rows_read == "2"
    parquet.write_rows(tmp_path / "here.parquet", ROWS)  # this process: pyarrow with pandas
    parquet.write_rows(tmp_path / "here_schema.parquet", [{"time": 1.0, "name": "x"}],
                       pa.schema([("time", pa.float64()), ("name", pa.string())]))
    assert (tmp_path / "free.parquet").read_bytes() == (tmp_path / "here.parquet").read_bytes()
    assert (tmp_path / "free_schema.parquet").read_bytes() == (tmp_path / "here_schema.parquet").read_bytes()
