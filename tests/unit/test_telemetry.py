"""Server telemetry, pure parts: the Prometheus text parser, the change-only storage and the window
deltas (gauges, counters, histograms) checked against hand computations."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from support.records import make_record

from harness.telemetry.prometheus import parse
from harness.telemetry.series import ChangeEncoder, read_scrapes, rows
from harness.telemetry.server_steps import server_step

pytestmark = pytest.mark.unit


def test_parse_reads_types_labels_escapes_and_special_values() -> None:
    text = (
        "# HELP tgi_queue_size Current queue size\n"
        "# TYPE tgi_queue_size gauge\n"
        "tgi_queue_size 3\n"
        "# TYPE tgi_request_failure counter\n"
        'tgi_request_failure{err="validation"} 2 1700000000000\n'
        'weird{b="x,y}",a="q\\"uote\\\\"} 1.5e-3\n'
        'h_bucket{le="+Inf"} 7\n'
        "vllm:num_requests_running{model_name=\"m\"} NaN\n"
        "not a sample line\n"
    )
    exp = parse(text)
    assert exp.types == {"tgi_queue_size": "gauge", "tgi_request_failure": "counter"}
    samples = {(n, lab): v for n, lab, v in exp.samples}
    assert samples[("tgi_queue_size", ())] == 3
    assert samples[("tgi_request_failure", (("err", "validation"),))] == 2
    assert samples[("weird", (("a", 'q"uote\\'), ("b", "x,y}")))] == 0.0015
    assert samples[("h_bucket", (("le", "+Inf"),))] == 7
    assert math.isnan(samples[("vllm:num_requests_running", (("model_name", "m"),))])
    assert len(exp.samples) == 5  # the malformed line is skipped, not fatal


def _hist(name: str, bounds: list[float], cumulative: list[int], total: float) -> str:
    """A histogram as a server prints it; `cumulative` has one count per bound, then +Inf's."""
    lines = [f"# TYPE {name} histogram"]
    for b, c in zip(bounds + [math.inf], cumulative, strict=True):
        le = "+Inf" if b == math.inf else repr(b)
        lines.append(f'{name}_bucket{{le="{le}"}} {c}')
    lines += [f"{name}_sum {total}", f"{name}_count {cumulative[-1]}"]
    return "\n".join(lines)


def _save(tmp_path: Path, scrapes: list[tuple[float, str]]) -> Path:
    enc = ChangeEncoder()
    path = tmp_path / "server_metrics.jsonl"
    out = [json.dumps({"kind": "source", "source": "prometheus", "buckets": "per-bucket"})]
    for t, text in scrapes:
        exp = parse(text)
        out.append(json.dumps(enc.line(t, exp.samples, exp.types)))
    path.write_text("\n".join(out) + "\n")
    return path


BOUNDS = [0.1, 0.2, 0.4, 0.8]


def test_histogram_delta_over_a_window_matches_a_hand_computation(tmp_path: Path) -> None:
    # before the window: 3 observations (0.05, 0.15, 0.3); inside it: 0.15, 0.35, 0.35, 0.7, 2.0
    before = _hist("q", BOUNDS, [1, 2, 3, 3, 3], 0.5)
    after = _hist("q", BOUNDS, [1, 3, 6, 7, 8], 0.5 + 0.15 + 0.35 + 0.35 + 0.7 + 2.0)
    s = read_scrapes(_save(tmp_path, [(100.0, before), (101.0, before), (105.0, after), (106.0, after)]))
    h = s.histogram("q", 101.5, 105.5)
    # by hand: per-bucket increases (0.1: 0, 0.2: 1, 0.4: 2, 0.8: 1, +Inf: 1), cumulative 0,1,3,4,5
    assert h.bounds == BOUNDS + [math.inf]
    assert h.cumulative == [0, 1, 3, 4, 5]
    assert h.count == 5
    assert h.mean == pytest.approx((0.15 + 0.35 + 0.35 + 0.7 + 2.0) / 5)
    assert h.quantile_bucket(0.5) == (0.2, 0.4)  # rank 2.5 → third observation → (0.2, 0.4]
    assert h.quantile_upper(0.99) == math.inf  # the 2.0 s one is above the last bound
    assert h.quantile_bucket(0.2) == (0.1, 0.2)
    # a window that holds no new observation
    assert s.histogram("q", 105.5, 106.5).count == 0
    assert math.isnan(s.histogram("q", 105.5, 106.5).mean)


def test_storage_keeps_only_changes_and_buckets_per_bucket(tmp_path: Path) -> None:
    a = _hist("q", BOUNDS, [1, 2, 3, 3, 3], 0.5)
    b = _hist("q", BOUNDS, [2, 3, 4, 4, 4], 0.55)  # one observation ≤ 0.1: every cumulative bucket moved
    path = _save(tmp_path, [(1.0, a), (2.0, a), (3.0, b)])
    lines = [json.loads(x) for x in path.read_text().splitlines()[1:]]
    assert len(lines[0]["s"]) == 7  # 5 buckets + sum + count
    assert lines[1]["s"] == []
    changed = {(n, tuple(sorted(lab.items()))): v for n, lab, v in lines[2]["s"]}
    assert changed == {("q_bucket", (("le", "0.1"),)): 2, ("q_sum", ()): 0.55, ("q_count", ()): 4}
    s = read_scrapes(path)
    assert s.times == [1.0, 2.0, 3.0]
    assert {r["name"] for r in rows(s)} == {"q_bucket", "q_sum", "q_count"}


def test_buckets_are_split_in_le_order_whatever_order_the_server_prints_them() -> None:
    # a server may print buckets unsorted: per-bucket counts follow le (+Inf last), not text order
    enc = ChangeEncoder()
    les = ["0.4", "+Inf", "0.1", "0.8", "0.2"]
    cum = {"0.1": 1, "0.2": 3, "0.4": 6, "0.8": 7, "+Inf": 8}
    samples = [("q_bucket", (("le", le),), float(cum[le])) for le in les]
    line = enc.line(1.0, samples, {"q": "histogram"})
    assert [(lab["le"], v) for _, lab, v in line["s"]] == [
        ("0.1", 1.0), ("0.2", 2.0), ("0.4", 3.0), ("0.8", 1.0), ("+Inf", 1.0)]


def test_gauges_average_the_scrapes_inside_the_window_and_counters_take_deltas(tmp_path: Path) -> None:
    scrapes = [
        (10.0, "g 5\nc_total 100"),
        (11.0, "g 1\nc_total 103"),
        (12.0, 'g 3\nc_total 110\nf{err="x"} 2'),
        (13.0, 'g 8\nc_total 4\nf{err="x"} 3'),  # c restarted (went down): counts from 0
    ]
    s = read_scrapes(_save(tmp_path, scrapes))
    assert s.gauge("g", 10.5, 12.5) == [1, 3]
    assert s.counter("c_total", 10.5, 12.5) == 10  # 110 at the last scrape ≤ 12.5 − 100 at ≤ 10.5
    assert s.counter("f", 10.5, 12.5) == 2  # absent at the start: from 0
    assert s.counter("c_total", 11.5, 13.5) == 4
    assert s.counter("missing", 0, 20) is None


def test_server_step_figures_and_the_count_mismatch_flag(tmp_path: Path) -> None:
    def text(queue: int, batch: int, ok: int, failed: int, qsum: float) -> str:
        return (
            f"tgi_queue_size {queue}\ntgi_batch_current_size {batch}\ntgi_request_success {ok}\n"
            f'tgi_request_failure{{err="validation"}} {failed}\n'
            + _hist("tgi_request_queue_duration", BOUNDS, [ok] * 5, qsum) + "\n"
            + '# TYPE tgi_batch_inference_duration histogram\n'
            + f'tgi_batch_inference_duration_bucket{{method="prefill",le="1.0"}} {ok}\n'
            + f'tgi_batch_inference_duration_bucket{{method="prefill",le="+Inf"}} {ok}\n'
            + f'tgi_batch_inference_duration_sum{{method="prefill"}} {ok * 0.02}\n'
            + f'tgi_batch_inference_duration_count{{method="prefill"}} {ok}\n'
        )

    path = _save(tmp_path, [(100.0, text(0, 0, 0, 0, 0)), (101.0, text(2, 4, 0, 0, 0)),
                            (102.0, text(4, 4, 3, 1, 0.15)), (103.0, text(0, 2, 5, 1, 0.25))])
    s = read_scrapes(path)
    # the client saw 4 requests finish between the scrapes at 100 and 103 (one of them failed) and
    # one after; TTFTs of the measured ones 0.1 s and 0.2 s
    recs = [make_record(i, wall_start=100.2 + i * 0.5, t_send=0.0, t_end=1.0, token_us=(100_000 * (i + 1),))
            for i in range(2)]
    recs += [make_record(5, wall_start=101.0, t_send=0.0, t_end=1.0),
             make_record(6, wall_start=101.0, t_send=0.0, t_end=1.0, error_type="http_422"),
             make_record(7, wall_start=103.0, t_send=0.0, t_end=1.0)]
    v = server_step(s, 100.5, 103.5, recs, recs[:2])
    assert v.scrapes == 3
    assert (v.queue_mean, v.queue_max) == (2.0, 4)
    assert (v.batch_mean, v.batch_max) == (pytest.approx(10 / 3), 4)
    assert v.timings["queue_time"].count == 5 and v.timings["queue_time"].mean == pytest.approx(0.05)
    assert v.timings["prefill_time"].mean == pytest.approx(0.02)
    assert (v.server_ok, v.server_failed, v.client_completed) == (5, 1, 4)
    assert v.count_mismatch  # 6 counted by the server, 4 seen by the client, none near an edge
    assert v.ttft_mean == pytest.approx(0.15)
    assert v.unexplained_ttft == pytest.approx(0.15 - 0.05 - 0.02)


def test_the_emulators_metrics_have_tgis_names_types_labels_and_buckets() -> None:
    """Checked against TGI's source: router/src/server.rs (bucket layouts, request metrics),
    backends/v3/src/backend.rs (per-batch metrics by method), queue.rs (tgi_queue_size)."""
    from harness.emulator.metrics import TgiMetrics

    m = TgiMetrics(max_input_tokens=4000, max_total_tokens=4096)
    m.inc("tgi_request_count")
    m.inc("tgi_request_success")
    m.inc("tgi_request_failure", 'err="incomplete"')
    m.observe("tgi_request_queue_duration", 0.5)
    m.observe("tgi_batch_inference_duration", 0.02, 'method="prefill"')
    m.inc("tgi_batch_inference_count", 'method="decode"')
    m.observe("tgi_batch_next_size", 3)
    m.observe("tgi_request_input_length", 100)
    exp = parse(m.render({"tgi_queue_size": 2, "tgi_batch_current_size": 4}))
    assert exp.types["tgi_request_queue_duration"] == "histogram"
    assert exp.types["tgi_request_success"] == exp.types["tgi_request_failure"] == "counter"
    assert exp.types["tgi_queue_size"] == exp.types["tgi_batch_current_size"] == "gauge"
    les = [dict(lab)["le"] for n, lab, _ in exp.samples if n == "tgi_request_queue_duration_bucket"]
    expected, v = [], 0.0001
    for _ in range(35):  # server.rs: 35 buckets, value *= 1.5 from 0.0001
        v *= 1.5
        expected.append(v)
    assert [float(x) for x in les[:-1]] == expected and les[-1] == "+Inf"
    assert les[0] == "0.00015000000000000001"  # Rust's Display for f64, as the exporter prints it
    batch = [dict(lab)["le"] for n, lab, _ in exp.samples if n == "tgi_batch_next_size_bucket"]
    assert batch[:3] == ["1", "2", "3"] and len(batch) == 1025
    inp = [float(dict(lab)["le"]) for n, lab, _ in exp.samples if n == "tgi_request_input_length_bucket"]
    assert inp[:-1] == [4000 / 100 * (x + 1) for x in range(100)]
    samples = {(n, lab): v for n, lab, v in exp.samples}
    assert samples[("tgi_request_failure", (("err", "incomplete"),))] == 1
    assert samples[("tgi_batch_inference_count", (("method", "decode"),))] == 1
    assert samples[("tgi_batch_inference_duration_count", (("method", "prefill"),))] == 1
