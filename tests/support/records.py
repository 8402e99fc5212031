"""Record factory."""

from __future__ import annotations

from harness.records.record import Record


def make_record(i: int = 0, **kw) -> Record:
    base = dict(
        request_id=f"r{i}", worker="h:1", api="generate_stream", step=0, users=1,
        wall_start=1000.0 + i, t_send=10.0 + i, t_end=12.0 + i, token_us=(500_000, 520_000, 540_000),
        input_tokens=550, server_input_tokens=550, output_tokens=3, server_output_tokens=3,
        max_new_tokens=3, finish_reason="length", status=200, error_type=None,
    )
    base.update(kw)
    return Record(**base)
