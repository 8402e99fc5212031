"""report.html in a real browser: it renders without console errors and every plot image loads."""

from __future__ import annotations

from support.records import make_record

from harness.records import runlog
from harness.report.build import build_report


def write_run(run) -> None:
    """Two steps of made-up records (1 and 2 users, 10 s windows) and their run log."""
    run.mkdir()
    lines = []
    for step, users in ((0, 1), (1, 2)):
        base = 1000.0 + step * 20
        for i in range(12 * users):
            ttft = 40_000 + 3_000 * (i % 5) * users
            tokens = tuple(ttft + 20_000 * k for k in range(8))
            lines.append(make_record(
                i, request_id=f"s{step}-{i}", step=step, users=users, phase="measure",
                wall_start=base + 1 + i * 0.6 / users, t_send=10.0, t_end=10.0 + tokens[-1] / 1e6 + 0.001,
                token_us=tokens, output_tokens=8, server_output_tokens=8, max_new_tokens=8,
            ).to_json())
    (run / "records-h-1.jsonl").write_text("\n".join(lines) + "\n")
    runlog.write_header(run, {"run_id": run.name, "config": {"name": "browser-report"}})
    runlog.write_steps(run, [
        {"step": s, "users": u,
         "phases": {"measure": {"start_wall": 1000.0 + s * 20, "end_wall": 1012.0 + s * 20}}}
        for s, u in ((0, 1), (1, 2))
    ])


def test_report_html_loads_cleanly(browser, tmp_path):
    run = tmp_path / "run"
    write_run(run)
    steps, _ = build_report(run)
    assert [s.m.ok for s in steps] == [12, 24]
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("requestfailed", lambda req: problems.append(f"failed: {req.url}"))
    page.goto((run / "report.html").as_uri())
    page.wait_for_load_state("load")
    images = page.evaluate(
        "() => [...document.images].map((i) => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0}))")
    assert len(images) >= 6, images
    assert all(i["ok"] for i in images), images
    assert page.locator("table tr").count() > 10
    assert page.locator("table th").nth(1).inner_text() == "1"
    page.screenshot(path=tmp_path / "report.png", full_page=True)
    assert not problems, problems
