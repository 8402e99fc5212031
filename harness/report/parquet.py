"""Rows of plain Python values to a parquet file, without importing pandas when it is not needed.

pyarrow imports pandas (≈ 0.3 CPU-s, more than the rest of a report without plots) on its first
conversion of Python objects, only to ask whether they are pandas objects. Rows built here never
are. A `python -m harness` process or a Locust process of the suite declares that it never hands
pyarrow pandas objects (`pandas_free_process`, called by harness/__main__ and by
harness.load.locust.listeners.register); its first conversion then runs with pandas
made unimportable for its duration, so pyarrow records "no pandas" and never looks again. The file
written is the same either way: `Table.from_pylist` infers its types from the Python values alone.

pyarrow's choice lasts for the process: objects of a pandas imported later are not recognised as
such by pyarrow (pandas' own read_parquet still works, tests/unit/test_parquet_rows.py). So in
any other process (a notebook, pytest) nothing changes.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_pandas_free = False


def pandas_free_process() -> None:
    """This process never converts pandas objects with pyarrow (harness/__main__: a CLI process)."""
    global _pandas_free
    _pandas_free = True


class _NoPandas:
    """A meta-path finder under which `import pandas` fails (a None in sys.modules would not do:
    pyarrow's compiled import takes it for the module)."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas":
            raise ModuleNotFoundError("pandas left out of this process (harness.report.parquet)")


def _from_pylist(rows: Sequence[dict[str, Any]], schema: Any) -> Any:
    import pyarrow as pa

    if not _pandas_free or "pandas" in sys.modules:
        return pa.Table.from_pylist(rows, schema=schema)
    finder = _NoPandas()
    sys.meta_path.insert(0, finder)
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    finally:
        sys.meta_path.remove(finder)


def write_rows(path: str | Path, rows: Sequence[dict[str, Any]], schema: Any = None) -> None:
    """`rows` (dicts of plain values, one per row) as a parquet table at `path`; `schema` a
    pyarrow schema, else inferred from the values."""
    import pyarrow.parquet as pq

    pq.write_table(_from_pylist(rows, schema), path)
