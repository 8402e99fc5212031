"""The record is the truth: round-trips, torn lines, and a writer that flushes on its own."""

from __future__ import annotations

import json
import time

from support.records import make_record

from harness.records.record import Record, RecordWriter, read_records


def test_round_trip_and_derived_fields(tmp_path):
    rec = make_record()
    assert rec.ok and rec.ttft_s == 0.5 and rec.e2e_s == 2.0 and rec.wall_end == 1002.0
    back = Record.from_dict(json.loads(rec.to_json()))
    assert back == rec


def test_failed_record_keeps_error(tmp_path):
    rec = make_record(error_type="generation", error="boom", token_us=())
    assert not rec.ok and rec.ttft_s is None
    assert Record.from_dict(json.loads(rec.to_json())).error == "boom"


def test_reader_skips_torn_last_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(make_record(1).to_json() + "\n" + make_record(2).to_json()[:40])
    assert [r.request_id for r in read_records(path)] == ["r1"]


def test_writer_flushes_periodically_and_on_close(tmp_path):
    path = tmp_path / "sub" / "records.jsonl"
    writer = RecordWriter(path, interval=0.05).start()
    writer.append(make_record(1))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not path.read_text():
        time.sleep(0.02)
    assert [r.request_id for r in read_records(path)] == ["r1"]
    writer.extend([make_record(2), make_record(3)])
    writer.close()
    assert [r.request_id for r in read_records(path)] == ["r1", "r2", "r3"]
    assert writer.written == 3


def test_record_after_close_is_written_not_dropped(tmp_path):
    """A request that ends while the process quits (after the writer closed) still leaves its record."""
    path = tmp_path / "records.jsonl"
    writer = RecordWriter(path, interval=60).start()
    writer.append(make_record(1))
    writer.close()
    writer.append(make_record(2, error_type="cancelled", token_us=()))
    writer.extend([make_record(3)])
    assert [r.request_id for r in read_records(path)] == ["r1", "r2", "r3"]
    assert writer.closed and writer.written == 3


def test_records_without_server_fields_still_load_and_new_ones_round_trip(tmp_path):
    """Records written before server_timings/server_request_id existed load with None."""
    old = make_record(1).to_json()
    data = json.loads(old)
    del data["server_timings"], data["server_request_id"]
    new = make_record(2, server_timings={"x-queue-time": 3.0}, server_request_id="req-2")
    path = tmp_path / "records-old.jsonl"
    path.write_text(json.dumps(data) + "\n" + new.to_json() + "\n")
    a, b = read_records(path)
    assert (a.server_timings, a.server_request_id) == (None, None)
    assert (b.server_timings, b.server_request_id) == ({"x-queue-time": 3.0}, "req-2")


def test_a_torn_last_line_is_skipped_with_a_warning(tmp_path, caplog) -> None:
    import logging

    from support.records import make_record

    from harness.records.record import read_records

    path = tmp_path / "records-h-1.jsonl"
    path.write_text(make_record(0).to_json() + "\n" + make_record(1).to_json()[:40])
    with caplog.at_level(logging.WARNING):
        records = read_records(path)
    assert [r.request_id for r in records] == ["r0"]
    assert "skipped 1 torn line" in caplog.text and str(path) in caplog.text


def test_a_flush_under_gevent_yields_after_each_short_slice(tmp_path):
    """Issue #12: a flush holds the gevent hub (every token stream of the process) for at most
    `slice_s` plus one record at a time, whatever the records' sizes: long outputs made the old
    16-record slices take milliseconds. The pause between slices is gevent's sleep under Locust;
    here it notes the CPU time each slice took (CPU, not wall time: a busy machine cannot stretch it)."""
    writer = RecordWriter(tmp_path / "r.jsonl", interval=60)
    cpu_at_pause = [time.thread_time()]
    writer._pause = lambda: cpu_at_pause.append(time.thread_time())
    big = tuple(range(50_000, 50_000 + 4000 * 20_000, 20_000))  # 4000 token stamps per record
    for i in range(64):
        writer.append(make_record(i, token_us=big, output_tokens=len(big)))
    one = time.thread_time()
    make_record(0, token_us=big, output_tokens=len(big)).to_json()
    one = time.thread_time() - one  # one record's JSON, on this machine now
    writer.flush()
    cpu_at_pause.append(time.thread_time())
    slices = [b - a for a, b in zip(cpu_at_pause, cpu_at_pause[1:], strict=False)]
    assert len(slices) > 4  # it did yield, more than every 16 records
    # one slice: the budget (0.3 ms) plus the record that crossed it, plus a record's worth of
    # slack for the write itself; a fixed 16 records per slice would be about 16 records' worth
    assert max(slices) < writer.slice_s + 4 * max(one, 0.0002), (slices, one)
    writer.close()
    assert len(read_records(tmp_path / "r.jsonl")) == 64
