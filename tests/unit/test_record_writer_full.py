"""RecordWriter on a device that is full (/dev/full: every write fails with ENOSPC): the failure is
one line in `error`, the records not written are counted in `lost`, and neither flush nor close
raises (the sweep's guard stops the run on `error`, harness.load.locust.guard)."""

from __future__ import annotations

import os

import pytest
from support.records import make_record

from harness.records.record import RecordWriter


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
def test_a_full_disk_is_an_error_line_not_an_exception() -> None:
    writer = RecordWriter("/dev/full")
    writer.extend(make_record(i) for i in range(40))
    writer.flush()
    assert writer.error == "cannot write /dev/full: No space left on device"
    writer.append(make_record(99))
    writer.flush()
    writer.close()
    writer.append(make_record(100))  # after close: written at once, or counted lost
    assert writer.written + writer.lost >= 41 and writer.lost >= 2
    assert writer.error.startswith("cannot write /dev/full")
