"""The LLM tab's live figures (harness.load.liveview): the step table equals the report's table over all
records although only the records overlapping a window are kept; the series use exact percentiles."""

from __future__ import annotations

import random

from support.records import make_record

from harness.analysis import metrics
from harness.analysis.attribution import Window
from harness.config.model import Flags
from harness.load.liveview import TRAILING_S, LiveView, Span
from harness.report.inputs import StepInfo
from harness.report.steps import compute
from harness.report.tables import ROWS, rows_for

# Step 0: 1 user, window [1010, 1030); step 1 (restart): 3 users, window [1042, 1062).
SPANS = [
    Span(0, 1, "ramp", 1000.0, 1001.0), Span(0, 1, "warmup", 1001.0, 1010.0),
    Span(0, 1, "measure", 1010.0, 1030.0), Span(1, 3, "stop", 1030.0, 1031.0),
    Span(1, 3, "warmup", 1031.0, 1042.0), Span(1, 3, "measure", 1042.0, 1062.0),
]


def phase_at(t: float) -> tuple[int, int, str]:
    for s in SPANS:
        if s.start <= t < s.end:
            return s.step, s.users, ("warmup" if s.phase == "stop" else s.phase)
    return 1, 3, "cooldown"  # after the last window: sent in the cool-down, counted nowhere


def sweep_records(seed: int = 3) -> list:
    """Closed-loop users over both steps: some requests straddle a window edge, some fail, the
    requests in flight at the step change are cancelled."""
    rng = random.Random(seed)
    out, i = [], 0
    for users, start, stop in ((1, 1000.0, 1030.0), (3, 1031.0, 1065.0)):
        for u in range(users):
            t = start + rng.random()
            while t < stop:
                n = rng.randint(2, 30)
                ttft = rng.randint(20_000, 400_000)
                tokens = tuple(ttft + k * rng.randint(15_000, 30_000) for k in range(n))
                e2e = tokens[-1] / 1e6 + 0.002
                step, su, phase = phase_at(t)
                kw = dict(token_us=tokens, output_tokens=n, server_output_tokens=n)
                if rng.random() < 0.08:
                    kw.update(error_type="http_503", status=503, token_us=(), output_tokens=0)
                if t + e2e >= stop and users == 1:  # killed at the step change
                    e2e = stop - t
                    tokens = tuple(x for x in tokens if x / 1e6 < e2e)
                    kw.update(error_type="cancelled", token_us=tokens, output_tokens=len(tokens))
                rec = make_record(i, request_id=f"r{i}-{u}", step=step, users=su, phase=phase, wall_start=t,
                                  t_send=5.0, t_end=5.0 + e2e, **kw)
                out.append(rec)
                t += e2e + 0.001
                i += 1
    out.sort(key=lambda r: r.wall_end)  # the order in which they reach the sink
    return out


def infos() -> list[StepInfo]:
    return [StepInfo(step=0, users=1, window=Window(1010.0, 1030.0)),
            StepInfo(step=1, users=3, window=Window(1042.0, 1062.0))]


def report_columns(records) -> list[list[str]]:
    steps = compute(records, infos(), 0.76, Flags())
    return [[row.cell(s) for s in steps] for row in rows_for(steps)]


def test_step_table_equals_the_reports_over_all_records():
    records = sweep_records()
    view = LiveView(spans=lambda: SPANS)
    for r in records:
        view.add(r)
    table = view.step_table(infos(), 0.76, Flags())
    assert table["users"] == [1, 3]
    closed_loop = [row.label for row in rows_for(compute(records, infos(), 0.76, Flags()))]
    assert [row["label"] for row in table["rows"]] == closed_loop  # no open-loop rows: no rate step
    assert [row["cells"] for row in table["rows"]] == report_columns(records)
    kept = {id(r) for recs in view.steps.values() for r in recs}
    assert 0 < len(kept) < len(records)  # ramp and warm-up requests outside every window: dropped
    assert not view.unplaced


def test_a_record_arriving_before_its_window_is_known_waits_for_it():
    records = sweep_records()
    early = [r for r in records if 1042.0 <= r.wall_end < 1044.0]  # just after step 1's window opened
    old = [r for r in records if r.wall_end < 1038.0]  # overlaps no window: can never be needed
    assert early and old
    spans = list(SPANS[:5])  # the window's span not seen yet
    view = LiveView(spans=lambda: spans)
    view.unplaced.extend(old + early)
    view.place(now=1044.0)
    assert [r.request_id for r in view.unplaced] == [r.request_id for r in early]
    spans.append(SPANS[5])
    view.place(now=1044.5)
    assert not view.unplaced
    assert [r.request_id for r in view.steps[1]] == [r.request_id for r in early]


def test_the_series_use_exact_percentiles_of_the_trailing_window():
    records = sweep_records()
    view = LiveView(spans=lambda: SPANS)
    for r in records:
        view.add(r)
    now = 1050.0
    point = view.sample(now, in_flight=3)
    recent = [r for r in records if r.ok and now - TRAILING_S <= r.wall_end]
    assert point["ttft_p50_ms"] == metrics.percentile([metrics.ttft_s(r) for r in recent], 50) * 1000
    assert point["itl_p99_ms"] == metrics.percentile(
        [x for x in (metrics.itl_s(r) for r in recent) if x is not None], 99) * 1000
    assert point["errors"] == {k: v for k, v in metrics.errors_by_type(records).items()}
    assert point["in_flight"] == 3
    rates = dict(view.token_rate())
    assert sum(rates.values()) == sum(r.output_tokens for r in records if r.ok or r.error_type == "cancelled")
    view.reset()
    assert not view.points and not view.steps and not view.token_rate()


def test_an_open_window_is_recomputed_at_most_every_few_seconds():
    records = sweep_records()
    view = LiveView(spans=lambda: SPANS)
    first = [r for r in records if r.wall_end < 1020.0]
    for r in first:
        view.add(r)
    growing = StepInfo(step=0, users=1, window=Window(1010.0, 1020.0))
    before = view.step_table([growing], None, Flags(), frozenset({0}), now=100.0)
    for r in records:
        if 1020.0 <= r.wall_end < 1022.0:
            view.add(r)
    later = StepInfo(step=0, users=1, window=Window(1010.0, 1022.0))
    assert view.step_table([later], None, Flags(), frozenset({0}), now=101.0) == before  # cached
    after = view.step_table([later], None, Flags(), frozenset({0}), now=110.0)
    assert after != before
    # the report's rows over the records that reached the view: the window's requests still in
    # flight are not censored yet (a window counts what was sent in it, however late it ends)
    arrived = [r for r in records if r.wall_end < 1022.0]
    assert after["rows"][0]["cells"] == [row.cell(s) for s in compute(arrived, [later], None, Flags())
                                         for row in ROWS[:1]]


def test_a_steps_records_are_kept_through_its_cool_down():
    """A window's requests end in the cool-down after it, and throughput spans window + cool-down:
    the tab keeps what overlaps either, so its column is the report's."""
    from harness.load.liveview import windows_of

    spans = [Span(0, 2, "warmup", 0.0, 10.0), Span(0, 2, "measure", 10.0, 20.0),
             Span(0, 2, "cooldown", 20.0, None)]
    assert windows_of(spans) == {0: (10.0, None)}
    spans[2] = Span(0, 2, "cooldown", 20.0, 26.0)
    assert windows_of(spans) == {0: (10.0, 26.0)}
    assert windows_of(spans[:2]) == {0: (10.0, 20.0)}  # no cool-down: the window closes the step
