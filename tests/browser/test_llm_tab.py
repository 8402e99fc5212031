"""The LLM tab in a real browser: a sweep started by clicking Locust's start form, the live charts and
step table, STOP from the page and the report link — the shown numbers checked against the records.

Screenshots go to the test's tmp directory; with HARNESS_DOCS_SCREENSHOTS=1 the tab's picture is also
written to docs/img/llm-tab.png (the README's).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from support.background import default_sigint
from support.net import free_port

from harness.records.runlog import read_run_log
from harness.report.build import build_report
from harness.report.tables import rows_for

ROOT = Path(__file__).resolve().parents[2]
DOCS_IMG = ROOT / "docs" / "img" / "llm-tab.png"

# Step 1: 1 user, a 1 s warm-up and a 3 s window; step 2 measures until STOP is clicked.
SCENARIO = """\
name = "browser"

[workload]
tokenizer = "llama3"
seed = 7
input_mean = 200
input_stddev = 50
output_mean = 40
output_stddev = 0
prompt_pool_size = 40

[steps]
spawn_rate = 100
users = [1, { users = 2, measure = { min_s = 300, max_s = 300 } }]
warmup = { min_s = 1, max_s = 1 }
measure = { min_s = 3, max_s = 3 }
restart = true

[request]
api = "generate_stream"
timeout_s = 60
"""


WAIT_MS = 120_000  # hang guards: make test runs this beside other tests (tokenizer, prompt pools, steps)


@pytest.fixture
def web_ui(fast_emulator, tmp_path):
    """Locust's web UI on the step-sweep locustfile against the emulator: (base URL, run directory)."""
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(SCENARIO)
    run = tmp_path / "run"
    port = free_port()
    env = {**os.environ, "HARNESS_SCENARIO": str(scenario), "HARNESS_RECORDS_DIR": str(run),
           "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    log = open(tmp_path / "locust.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "sweep.py"), "--class-picker",
         "--web-host", "127.0.0.1", "--web-port", str(port), "--host", fast_emulator.url],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        preexec_fn=default_sigint,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.close()
                pytest.fail("the web UI did not start:\n" + (tmp_path / "locust.log").read_text()[-3000:])
            time.sleep(0.2)
    try:
        yield url, run
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
        # shown by pytest only when the test failed ("Captured stdout teardown")
        print("locust.log (last 4000 characters):\n" + (tmp_path / "locust.log").read_text()[-4000:])


def shown_column(page, step: int) -> dict[str, str]:
    """The live step table's column of `step`: {row label: cell text}."""
    return page.evaluate(
        """(step) => Object.fromEntries([...document.querySelectorAll('#llm-tab tr[data-row]')].map(
               (tr) => [tr.dataset.row, tr.querySelector(`td[data-step="${step}"]`).textContent]))""",
        step,
    )


def number(cell: str) -> float:
    return float(cell.replace(",", "").split()[0])


def shows(cell: str, value: float) -> bool:
    """The cell is `value` rounded to the digits it shows (the table keeps 3-4 significant digits)."""
    text = cell.replace(",", "").split()[0]
    decimals = len(text.split(".")[1]) if "." in text else 0
    return abs(float(text) - value) <= 0.5 * 10 ** -decimals + 1e-9


def records_of(run: Path) -> list[dict]:
    out = []
    for path in run.glob("records*.jsonl"):
        out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out


def on_llm_tab_until(page, condition: str) -> None:
    """Wait for `condition` (JS) with the LLM tab shown. Locust's UI switches tabs itself once the
    swarm starts — later than a click right after Start on a busy machine — and the tab polls only
    while it is shown: select it again whenever it is not."""
    tab = page.get_by_role("tab", name="LLM")
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        if tab.get_attribute("aria-selected", timeout=WAIT_MS) != "true":
            tab.click()
        if page.evaluate(condition):
            return
        page.wait_for_timeout(250)
    raise AssertionError(f"not shown on the LLM tab within {WAIT_MS / 1000:.0f} s: {condition}")


def test_sweep_started_from_the_form_shows_the_records_figures(browser, web_ui, tmp_path):
    url, run = web_ui
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)

    # The start form preselects the step sweep; start it by clicking.
    assert page.locator("select#shapeClass").input_value() == "StepSweep"
    page.get_by_role("button", name="Start").click()

    # Charts show TTFT and ITL series while step 1 runs, with its boundary marked.
    on_llm_tab_until(page, """() => ['ttft_p50', 'ttft_p99', 'itl_p50', 'itl_p99'].every((k) => {
               const p = document.querySelector(`#llm-tab path[data-series="${k}"]`);
               return p && Number(p.dataset.points) > 0; })
           && document.querySelector('#llm-tab line[data-boundary="0"]')""")
    assert "Step 1 of 2" in page.locator("#llm-tab .llm-status").inner_text()
    tps_title = page.locator('#llm-tab [data-chart="tps"] h3').inner_text()
    assert tps_title == "Output tokens/s, all users (tokens/s)"
    page.screenshot(path=tmp_path / "llm-tab-step1.png", full_page=True)

    # Step 2's window opens (step 1's closed and all its records came in); then STOP from the page.
    on_llm_tab_until(page, """() => !!document.querySelector('#llm-tab th[data-step="1"]')""")
    on_llm_tab_until(page, "() => /Step 2 of 2 .* measure/.test("
                           "document.querySelector('#llm-tab .llm-status').textContent)")
    page.wait_for_timeout(1500)  # a few points of step 2 on the charts
    page.screenshot(path=tmp_path / "llm-tab-step2.png", full_page=True)
    if os.environ.get("HARNESS_DOCS_SCREENSHOTS") == "1":
        DOCS_IMG.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=DOCS_IMG)  # the viewport: Locust's header, its tabs and the charts
    page.get_by_role("button", name="Stop").click()
    on_llm_tab_until(page, "() => !!document.querySelector('#llm-tab a[data-report]')")
    link = page.wait_for_selector("#llm-tab a[data-report]", timeout=WAIT_MS)
    shown = shown_column(page, 0)
    legend = '#llm-tab [data-chart="ttft"] span[data-series="ttft_p50"]'
    ttft_legend = float(page.get_attribute(legend, "data-value"))

    # The shown step-1 column equals the report's, rebuilt from the files...
    steps, _ = build_report(run, write=False, with_plots=False)
    first = next(s for s in steps if s.info.step == 0)
    assert shown == {row.label: row.cell(first) for row in rows_for(steps)}

    # ... and the records' own figures, computed here from the JSONL with numpy.
    _, steps_json = read_run_log(run)
    phases = next(s for s in steps_json if s["step"] == 0)["phases"]
    window = phases["measure"]
    close = (phases.get("cooldown") or window)["end_wall"]  # the step closes when its cool-down ends
    recs = records_of(run)

    def wall_end(r: dict) -> float:
        return r["wall_start"] + r["t_end"] - r["t_send"]

    # sent in the window (tag "measure"); ended before the step closed, else censored
    sent = [r for r in recs if r["step"] == 0 and r["phase"] == "measure"]
    censored = [r for r in sent if r["error_type"] == "cancelled" or wall_end(r) > close]
    measured = [r for r in sent if r not in censored]
    ok = [r for r in measured if r["error_type"] is None]
    assert shown["Requests measured (ok / failed / censored)"] == (
        f"{len(ok)} / {len(measured) - len(ok)} / {len(censored)}")
    assert len(ok) >= 5

    def tokens(r: dict) -> int:
        return r["server_output_tokens"] if r["server_output_tokens"] is not None else r["output_tokens"]

    ttft = np.array([r["token_us"][0] / 1e3 for r in ok])
    itl = np.array([(r["token_us"][-1] - r["token_us"][0]) / 1e3 / (tokens(r) - 1) for r in ok])
    assert shows(shown["TTFT p50 (ms)"], np.percentile(ttft, 50)), (shown, np.percentile(ttft, 50))
    assert shows(shown["TTFT p99 (ms)"], np.percentile(ttft, 99)), (shown, np.percentile(ttft, 99))
    assert shows(shown["ITL p50 (ms/token)"], np.percentile(itl, 50)), (shown, np.percentile(itl, 50))
    span = close - window["start_wall"]  # throughput: from the window's opening to the step's close
    arrived = sum(tokens(r) / len(r["token_us"]) for r in recs if r["error_type"] in (None, "cancelled")
                  for t in r["token_us"] if window["start_wall"] <= r["wall_start"] + t / 1e6 < close)
    assert shows(shown["Throughput (output tokens/s)"], arrived / span), (shown, arrived / span)
    all_ttft = [r["token_us"][0] / 1e3 for r in recs if r["error_type"] is None and r["token_us"]]
    assert min(all_ttft) <= ttft_legend <= max(all_ttft)

    # The report link opens the run's report.html, served by the UI, with the same first column.
    with page.context.expect_page() as opened:
        link.click()
    report = opened.value
    report.wait_for_load_state()
    assert report.url.endswith("/llm/run/report.html")
    cells = report.evaluate(
        """() => Object.fromEntries([...document.querySelector('table').querySelectorAll('tr')].slice(1).map(
               (tr) => [tr.querySelector('th').textContent, tr.querySelector('td').textContent]))"""
    )
    assert cells == shown
    report.screenshot(path=tmp_path / "report.png")
    assert not errors, errors
    assert (run / "report.html").is_file()
    shutil.copy(run / "report.html", tmp_path / "report.html")
