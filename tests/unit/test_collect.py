"""`python -m harness collect`: records of several hosts' directories merged once per request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli.collect import collect, main
from harness.records.record import RecordWriter, read_records
from harness.records.runlog import write_header
from tests.support.records import make_record

pytestmark = pytest.mark.unit


def _write(path: Path, records) -> None:  # noqa: ANN001
    with RecordWriter(path) as w:
        w.extend(records)


def test_collect_merges_every_host_once_per_request(tmp_path: Path) -> None:
    master, host_b, out = tmp_path / "master", tmp_path / "b", tmp_path / "out"
    write_header(master, {"run_id": "x"})
    _write(master / "records-a-1.jsonl", [make_record(0, worker="a:1"), make_record(1, worker="a:1")])
    # host b: its own copy of a record the master already has, and one only it has; another worker
    copy = [make_record(1, worker="a:1"), make_record(2, worker="a:1")]
    _write(host_b / "worker-a-1" / "records-a-1.jsonl", copy)
    _write(host_b / "records-b-7.jsonl", [make_record(3, worker="b:7")])
    written = collect(out, [master, host_b])
    assert written == {"a:1": 3, "b:7": 1}
    assert [r.request_id for r in read_records(out / "records-a-1.jsonl")] == ["r0", "r1", "r2"]
    assert [r.request_id for r in read_records(out / "records-b-7.jsonl")] == ["r3"]
    assert json.loads((out / "run.jsonl").read_text().splitlines()[0])["manifest"] == {"run_id": "x"}
    assert collect(out, [out, master, host_b]) == {"a:1": 3, "b:7": 1}  # OUT itself is never read


def test_collect_says_plainly_when_a_directory_is_missing(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    assert main([str(tmp_path / "out"), str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err
