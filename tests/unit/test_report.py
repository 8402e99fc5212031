"""The report recomputed from a synthetic run directory (records + the run log run.jsonl)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from harness.config.layers import find_scenario, load_config
from harness.records import runlog
from harness.records.record import Record, RecordWriter
from harness.report import build as report

ROOT = Path(__file__).resolve().parents[2]


def rec(
    i: int,
    step: int,
    users: int,
    phase: str,
    wall_start: float,
    ttft: float,
    n: int = 150,
    gap: float = 0.05,
    error: str | None = None,
) -> Record:
    tokens = tuple(round((ttft + k * gap) * 1e6) for k in range(n)) if error is None else ()
    e2e = ttft + (n - 1) * gap if error is None else 0.2
    return Record(
        request_id=f"r{i}",
        worker="h:1",
        api="generate_stream",
        step=step,
        users=users,
        wall_start=wall_start,
        t_send=100.0,
        t_end=100.0 + e2e,
        token_us=tokens,
        input_tokens=550,
        server_input_tokens=551 if error is None else None,
        output_tokens=len(tokens),
        server_output_tokens=len(tokens) or None,
        max_new_tokens=n,
        finish_reason="length" if error is None else None,
        status=200,
        error_type=error,
        phase=phase,
    )


def make_run(tmp_path: Path) -> Path:
    """Two steps: 1 user, 10 clean requests; 16 users where half the requests fail fast."""
    config = load_config(find_scenario("default"), environ={})
    run = tmp_path / "run"
    run.mkdir()
    records = []
    t = 1000.0
    records.append(rec(0, 0, 1, "warmup", t - 10, 1.0))
    for i in range(10):
        records.append(rec(i + 1, 0, 1, "measure", t + i * 9.0, 1.0 + i * 0.01))
    t2 = 2000.0
    for i in range(20):
        err = "overloaded" if i % 2 else None
        records.append(rec(100 + i, 1, 16, "measure", t2 + i, 7.5, error=err))
    with RecordWriter(run / "records-h-1.jsonl") as w:
        w.extend(records)
    steps = [
        {
            "step": 0,
            "users": 1,
            "min_requests": 5,
            "phases": {
                "warmup": {"start_wall": t - 10, "end_wall": t},
                "measure": {"start_wall": t, "end_wall": t + 90},
            },
            "client": {"cpu_percent": 12.0, "sched_lag_p99_ms": 2.0},
        },
        {
            "step": 1,
            "users": 16,
            "min_requests": 5,
            "phases": {"measure": {"start_wall": t2, "end_wall": t2 + 30}},
            "client": {"cpu_percent": 97.0, "sched_lag_p99_ms": 80.0},
        },
    ]
    runlog.write_header(run, {"run_id": "test", "config": config.model_dump(mode="json"),
                              "server": {"model_id": "org/served-model", "description": "a server"}})
    runlog.write_steps(run, steps)
    return run


def test_report_from_records(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    assert report.main([str(run)]) == 0
    for name in ("summary.md", "summary.csv", "records.parquet", "report.html"):
        assert (run / name).stat().st_size > 0, name
    rows = list(csv.DictReader(open(run / "summary.csv")))
    assert [r["users"] for r in rows] == ["1", "16"]
    one, sixteen = rows
    # step 0: 10 requests of 150 tokens; E2E = 1.0x + 149*0.05 ≈ 8.45 s; all complete inside the 90 s window
    # except those whose end passes t+90 (the last starts at t+81, ends ≈ t+89.5: inside)
    assert int(one["ok"]) == 10 and int(one["failed"]) == 0
    assert float(one["throughput_tps"]) == pytest.approx(10 * 150 / 90)
    assert float(one["ttft_p50_s"]) == pytest.approx(1.045)
    assert float(one["itl_p50_s"]) == pytest.approx(0.05)
    assert float(one["mean_input_tokens"]) == 551
    # step 1: failures are errors, never tokens. Independent computation from the raw JSONL:
    # latency rows use requests of step 1 sent after the ramp that ended inside [t2, t2 + 30)
    raw = [json.loads(line) for line in open(run / "records-h-1.jsonl")]
    t2, end = 2000.0, 2030.0
    mine = [r for r in raw if r["step"] == 1 and t2 <= r["wall_start"] + r["t_end"] - r["t_send"] < end]
    ok = [r for r in mine if r["error_type"] is None]
    assert int(sixteen["ok"]) == len(ok) == 8 and int(sixteen["failed"]) == 10
    assert json.loads(sixteen["errors"]) == {"overloaded": 10}
    arrived = sum(
        1
        for r in raw
        if r["error_type"] is None
        for t in r["token_us"]
        if t2 <= r["wall_start"] + t / 1e6 < end
    )
    assert arrived == 8 * 150 + 130 + 90  # the requests sent at +16 s and +18 s stream partly inside
    assert float(sixteen["throughput_tps"]) == pytest.approx(arrived / 30)
    assert float(sixteen["cost_per_million"]) == pytest.approx(0.76 / (arrived / 30 * 3600) * 1e6)
    assert "high error rate" in sixteen["flags"] and "client-bound" in sixteen["flags"]
    assert "too few samples" in sixteen["flags"] and "client-bound" not in one["flags"]
    md = (run / "summary.md").read_text()
    assert "| Concurrent users | 1 | 16 |" in md
    assert "How each row is computed" in md and "overloaded: 10" in md
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 6
    df = pd.read_parquet(run / "records.parquet")
    assert len(df) == 31 and {"ttft_s", "itl_s", "token_us", "phase"} <= set(df.columns)


def test_report_without_steps_json(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    (run / "run.jsonl").unlink()  # no windows saved at all: each step's window spans its sends
    steps, md = report.build_report(run, write=False)
    assert [s.info.users for s in steps] == [1, 16]
    assert steps[0].m.ok == 10


def test_records_and_run_log_rebuild_every_file_identically(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    report.build_report(run)
    outputs = ("manifest.json", "steps.json", "summary.md", "summary.csv", "records.parquet", "report.html")
    first = {name: (run / name).read_bytes() for name in outputs}
    for name in outputs:
        (run / name).unlink()
    assert report.main([str(run)]) == 0
    for name in outputs:
        assert (run / name).read_bytes() == first[name], name
    md = first["summary.md"].decode()
    assert "Model org/served-model on a server" in md and "price $0.76/h" in md
    assert json.loads(first["steps.json"])[1]["client"]["cpu_percent"] == 97.0


def test_a_directory_without_run_log_still_reports(tmp_path: Path) -> None:
    """Run directories written before the run log: manifest.json and steps.json as they are."""
    run = make_run(tmp_path)
    report.build_report(run)
    (run / "run.jsonl").unlink()
    steps, md = report.build_report(run, write=False)
    assert [s.info.users for s in steps] == [1, 16] and "client-bound" in "; ".join(steps[1].flags)


def test_missing_dir_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report.main([str(tmp_path / "nope")]) == 2
    assert "no such results directory" in capsys.readouterr().err


def test_report_html_carries_table_plots_definitions_and_manifest_escaped(tmp_path: Path) -> None:
    from harness.report.tables import OPEN_LOOP_METRICS, ROWS, SLO_METRICS

    run = make_run(tmp_path)
    manifest, steps = runlog.read_run_log(run)
    manifest["run_id"] = "<script>x</script>"
    runlog.write_header(run, manifest)
    runlog.write_steps(run, steps)
    report.build_report(run)
    html = (run / "report.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html  # autoescaped
    for row in ROWS:  # every row, but the open-loop ones of a closed-loop run and the SLO ones without SLOs
        shown = f"<b>{row.label}</b>" in html.replace("&#39;", "'").replace("&amp;", "&")
        assert shown == (row.metric not in OPEN_LOOP_METRICS + SLO_METRICS), row.label
    assert html.count("data:image/png;base64,") >= 6 and "<h2>Manifest</h2>" in html
    assert "&#34;price_per_hour&#34;" in html or "&quot;price_per_hour&quot;" in html


def test_distributed_flags_lost_worker_and_uncertain_clock(tmp_path: Path) -> None:
    """A step a worker was lost in says so; a worker clock known only to ±0.5 s flags a 30 s window
    (max_clock_uncertainty 1 %), one known to ±0.5 ms does not."""
    run = make_run(tmp_path)
    manifest, steps = runlog.read_run_log(run)
    assert manifest is not None and steps is not None
    steps[1]["degraded"] = ["degraded: lost worker h:9"]
    runlog.write_steps(run, steps)
    runlog.write_end(run, workers={"h:1": {"clock": {"offset_s": 0.2, "uncertainty_s": 0.5}}})
    got, _ = report.build_report(run, write=False)
    assert "degraded: lost worker h:9" in got[1].flags
    assert not any("lost worker" in f for f in got[0].flags)
    assert any(f.startswith("clock uncertain (±500 ms in a 30 s window)") for f in got[1].flags)
    runlog.write_end(run, workers={"h:1": {"clock": {"offset_s": 0.2, "uncertainty_s": 0.0005}}})
    got, _ = report.build_report(run, write=False)
    assert not any(f.startswith("clock uncertain") for s in got for f in s.flags)


def test_each_workers_clock_records_and_health_are_in_the_report(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    _, md = report.build_report(run, write=False)
    assert "Workers (distributed run)" not in md  # one process: no such section
    manifest, steps = runlog.read_run_log(run)
    assert steps is not None
    steps[1]["client"]["workers"] = {"node-a": {"cpu_percent": 97.0, "sched_lag_p99_ms": 80.0},
                                     "node-b": {"cpu_percent": 12.0, "sched_lag_p99_ms": 1.5}}
    runlog.write_steps(run, steps)
    runlog.write_end(run, workers={
        "h:1": {"node": "node-a", "clock": {"offset_s": 0.0012, "uncertainty_s": 0.0004},
                "records_received": 20, "lost": []},
        "h:2": {"node": "node-b", "clock": None, "records_received": 11,
                "lost": [{"lost_at": 10.0, "back_at": None}]},
    })
    report.build_report(run, with_plots=False)
    md = (run / "summary.md").read_text()
    assert "| h:1 | +1.20 ± 0.40 | 20 | — | – / – | 97 / 80.0 |" in md, md
    assert "| h:2 | – | 11 | gone | – / – | 12 / 1.5 |" in md, md
    html = (run / "report.html").read_text()
    assert "<h2>Workers</h2>" in html and "+1.20 ± 0.40" in html
