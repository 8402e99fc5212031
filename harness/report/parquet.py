"""Rows of plain Python values to a parquet file, without importing pandas for nothing.

pyarrow imports pandas (≈ 0.3 CPU-s, more than the rest of a report without plots) on its first
conversion of Python objects, only to ask whether they are pandas objects. The rows written here
never are. A `python -m harness` process or a Locust process of the suite declares that it hands
pyarrow no pandas objects (`plain_rows_process`, called by harness/__main__ and before the reports of
harness.load.locust.endofrun and .webui); its conversions then run with pandas made unimportable,
so pyarrow records that it has no pandas and never looks again. The file written is the same
either way: `Table.from_pylist` infers its types from the Python values alone
(tests/unit/test_parquet_rows.py compares the bytes).

pyarrow's choice lasts for the process: pandas objects given to pyarrow later are not recognised
as such (pandas' own read_parquet still works). So in any other process (a notebook, pytest)
nothing changes. numpy, which pyarrow imports with itself (≈ 0.15 CPU-s), is left alone: a pyarrow
imported without it crashes (SIGSEGV) when pandas later reads a parquet file in the same process.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_plain_rows_only = False


def plain_rows_process() -> None:
    """This process gives pyarrow only plain Python values, never pandas objects."""
    global _plain_rows_only
    _plain_rows_only = True


class _Refuse:
    """A meta-path finder under which some top-level packages cannot be imported (a None in
    sys.modules would not do: pyarrow's compiled imports take it for the module)."""

    def __init__(self, *names: str) -> None:
        self.names = names

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.split(".", 1)[0] in self.names:
            raise ModuleNotFoundError(f"{name} left out of this process (harness.report.parquet)")


@contextmanager
def _without(*names: str) -> Iterator[None]:
    finder = _Refuse(*names)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def _pyarrow() -> tuple[Any, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pa, pq


def arrow_schema(fields: Sequence[tuple[str, str]]) -> Any:
    """A pyarrow schema of (name, type name) pairs: "float64", "string", … (pyarrow's names)."""
    pa, _ = _pyarrow()
    return pa.schema([(name, getattr(pa, kind)()) for name, kind in fields])


def write_rows(path: str | Path, rows: Sequence[dict[str, Any]], schema: Any = None) -> None:
    """`rows` (dicts of plain values, one per row) as a parquet table at `path`; `schema` from
    `arrow_schema`, else inferred from the values."""
    pa, pq = _pyarrow()
    if _plain_rows_only and "pandas" not in sys.modules:
        with _without("pandas"):
            table = pa.Table.from_pylist(rows, schema=schema)
    else:
        table = pa.Table.from_pylist(rows, schema=schema)
    pq.write_table(table, path)
