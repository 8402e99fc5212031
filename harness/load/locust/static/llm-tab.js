// The LLM tab of Locust's web UI (harness/load/locust/webui.py). Plain SVG, no library: while the
// "LLM" tab (?tab=llm) is selected it polls ./llm/state every second and draws. Every figure
// comes from the server, which computes it from the records with the report's own functions.
(function () {
  "use strict";
  const POLL_MS = 1000;
  const SMOOTH_S = 5; // tokens/s: trailing mean over this many whole seconds
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"];
  const SVG = "http://www.w3.org/2000/svg";

  let test = null;
  let since = 0;
  let points = [];
  const tokens = new Map(); // wall second -> token events
  let last = null;

  const root = document.createElement("div");
  root.id = "llm-tab";
  root.style.cssText = "display:none;padding:8px 24px 32px;font:14px/1.4 Roboto,Helvetica,Arial,sans-serif";
  document.body.appendChild(root);
  const style = document.createElement("style");
  style.textContent = `
    #llm-tab .llm-status{font-size:16px;margin:8px 0 12px}
    #llm-tab .llm-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:12px}
    #llm-tab .llm-chart{border:1px solid #8884;border-radius:4px;padding:6px}
    #llm-tab .llm-chart h3{margin:0 0 2px;font-size:14px;font-weight:500}
    #llm-tab .llm-legend{font-size:12px;min-height:16px}
    #llm-tab .llm-legend span{margin-right:12px;white-space:nowrap}
    #llm-tab svg text{fill:currentColor;font-size:10px}
    #llm-tab table{border-collapse:collapse;margin-top:16px;font-size:13px}
    #llm-tab td,#llm-tab th{border:1px solid #8886;padding:3px 8px;text-align:right}
    #llm-tab td:first-child,#llm-tab th:first-child{text-align:left}
    #llm-tab .llm-report{font-size:16px;margin:12px 0}
    #llm-tab .llm-note{font-size:12px;opacity:.75}`;
  document.head.appendChild(style);

  function active() {
    return new URLSearchParams(window.location.search).get("tab") === "llm";
  }

  // Right below Locust's tab bar (inside its layout, above its footer); back to <body>, hidden,
  // while Locust shows no tabs (the start form).
  function place() {
    const bar = document.querySelector('[role="tablist"]');
    const anchor = bar && (bar.closest(".MuiTabs-root") || bar).parentElement;
    if (!anchor || !anchor.parentElement) {
      if (root.parentElement !== document.body) document.body.appendChild(root);
      return false;
    }
    if (anchor.nextSibling !== root) anchor.after(root);
    return true;
  }

  function el(tag, attrs, text) {
    const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function dur(s) {
    if (s === null || s === undefined) return "∞";
    s = Math.round(s);
    return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
  }

  function fmt(v, unit) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    const digits = Number.isInteger(v) || Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
    return `${v.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })} ${unit}`;
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 4, 6, 8, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // series: [{key, name, values: [[t, v]...]}]; spans: step phases for boundaries and windows.
  function chart(key, title, unit, series, t0, t1, spans, note) {
    const W = 460, H = 190, L = 52, R = 8, T = 8, B = 22;
    const box = el("div", { class: "llm-chart", "data-chart": key });
    box.appendChild(el("h3", {}, `${title} (${unit})`));
    const legend = el("div", { class: "llm-legend" });
    const svg = el("svg:svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": title });
    const ymax = niceMax(Math.max(0, ...series.flatMap((s) => s.values.map((p) => p[1]).filter((v) => v !== null))));
    const span = Math.max(t1 - t0, 1);
    const x = (t) => L + ((t - t0) / span) * (W - L - R);
    const y = (v) => H - B - (v / ymax) * (H - B - T);
    for (const s of spans) {
      if (s.phase === "measure") {
        const end = s.end === null ? t1 : s.end;
        svg.appendChild(el("svg:rect", { x: x(s.start), y: T, width: Math.max(x(end) - x(s.start), 0), height: H - B - T,
          fill: "#2ca02c", "fill-opacity": "0.08", "data-window": s.step }));
      }
    }
    const firsts = new Map();
    for (const s of spans) if (!firsts.has(s.step)) firsts.set(s.step, s);
    for (const s of firsts.values()) {
      svg.appendChild(el("svg:line", { x1: x(s.start), x2: x(s.start), y1: T, y2: H - B, stroke: "#888", "stroke-dasharray": "3,3",
        "data-boundary": s.step }));
      svg.appendChild(el("svg:text", { x: x(s.start) + 3, y: T + 9 }, `step ${s.step + 1} · ${s.users} users`));
    }
    for (let i = 0; i <= 4; i++) {
      const v = (ymax * i) / 4;
      svg.appendChild(el("svg:line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#8883" }));
      svg.appendChild(el("svg:text", { x: L - 4, y: y(v) + 3, "text-anchor": "end" }, String(+v.toFixed(3))));
    }
    for (let i = 0; i <= 4; i++) {
      const t = t0 + (span * i) / 4;
      svg.appendChild(el("svg:text", { x: x(t), y: H - 6, "text-anchor": "middle" }, dur(t - t0)));
    }
    series.forEach((s, i) => {
      const color = COLORS[i % COLORS.length];
      let d = "";
      let pen = false;
      for (const [t, v] of s.values) {
        if (v === null || v === undefined) { pen = false; continue; }
        d += `${pen ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
      }
      const n = s.values.filter((p) => p[1] !== null && p[1] !== undefined).length;
      svg.appendChild(el("svg:path", { d: d || "M0,0", fill: "none", stroke: color, "stroke-width": "1.6",
        "data-series": s.key, "data-points": n }));
      const lastv = [...s.values].reverse().find((p) => p[1] !== null && p[1] !== undefined);
      const item = el("span", { "data-series": s.key, "data-value": lastv ? lastv[1] : "" });
      item.appendChild(el("b", { style: `color:${color}` }, "━ "));
      const shown = unit === "count" || unit === "requests" ? "" : unit;
      item.appendChild(document.createTextNode(`${s.name} ${lastv ? fmt(lastv[1], shown).trim() : "–"}`));
      legend.appendChild(item);
    });
    box.appendChild(legend);
    box.appendChild(svg);
    if (note) box.appendChild(el("div", { class: "llm-note" }, note));
    return box;
  }

  function tokenSeries(now) {
    const secs = [...tokens.keys()].sort((a, b) => a - b);
    if (!secs.length) return [];
    const out = [];
    const end = Math.floor(now) - 1; // the current second is still filling
    for (let s = secs[0] + SMOOTH_S - 1; s <= end; s++) {
      let sum = 0;
      for (let k = s - SMOOTH_S + 1; k <= s; k++) sum += tokens.get(k) || 0;
      out.push([s + 1, sum / SMOOTH_S]);
    }
    return out;
  }

  function table(t) {
    const wrap = el("div", { "data-table": "steps" });
    wrap.appendChild(el("h3", { style: "margin:16px 0 0;font-size:15px;font-weight:500" },
      "Steps (the report's rows; an open window counts up to now)"));
    if (!t || !t.users.length) {
      wrap.appendChild(el("div", { class: "llm-note" }, "No measurement window has opened yet."));
      return wrap;
    }
    const tab = el("table", {});
    const head = el("tr", {});
    head.appendChild(el("th", {}, "Concurrent users"));
    t.users.forEach((u, i) => head.appendChild(el("th", { "data-step": t.steps[i] }, String(u))));
    tab.appendChild(head);
    for (const row of t.rows) {
      const tr = el("tr", { "data-row": row.label });
      tr.appendChild(el("td", {}, row.label));
      row.cells.forEach((c, i) => tr.appendChild(el("td", { "data-step": t.steps[i] }, c)));
      tab.appendChild(tr);
    }
    wrap.appendChild(tab);
    return wrap;
  }

  function render() {
    const s = last;
    root.replaceChildren();
    if (!s) return;
    const cur = s.current;
    let status = s.test && s.state !== "stopped"
      ? "No step plan (Locust's Default shape): the charts run; steps, phases and the table need StepSweep or FixedUsers."
      : "No sweep running. Start one with the StepSweep shape.";
    if (cur && s.test) {
      if (cur.phase === "done" || s.state === "stopped") {
        status = `Finished (${s.state}) at step ${cur.step + 1} of ${cur.steps}.`;
      } else {
        const [lo, hi] = cur.left_s;
        const left = hi !== null && Math.abs(hi - lo) < 1 ? dur(lo) : `${dur(lo)}–${dur(hi)}`;
        status = `Step ${cur.step + 1} of ${cur.steps} · ${cur.users} users · ${cur.phase_name} ` +
          `${dur(cur.phase_elapsed_s)} · ${left} left`;
      }
    }
    root.appendChild(el("div", { class: "llm-status", "data-status": cur ? cur.phase : "" }, status));
    if (s.distributed && s.test && !s.records) {
      root.appendChild(el("div", { class: "llm-note" }, "No records have reached this master yet: the " +
        "figures below fill in as the workers' records arrive (the report reads every worker's file)."));
    }
    if (s.report) {
      const p = el("div", { class: "llm-report" });
      p.appendChild(el("a", { href: s.report, target: "_blank", "data-report": "1" }, "Open this run's report (report.html)"));
      p.appendChild(document.createTextNode(`  ·  ${s.run_dir}`));
      root.appendChild(p);
    }
    const starts = s.spans.map((x) => x.start);
    const t0 = Math.min(...starts, ...(points.length ? [points[0].t] : []), s.now);
    const t1 = s.now;
    const at = (f) => points.map((p) => [p.t, f(p)]);
    const grid = el("div", { class: "llm-grid" });
    grid.appendChild(chart("ttft", "Time to first token", "ms",
      [{ key: "ttft_p50", name: "p50", values: at((p) => p.ttft_p50_ms) },
       { key: "ttft_p99", name: "p99", values: at((p) => p.ttft_p99_ms) }], t0, t1, s.spans,
      "Requests completed in the last 10 s; shaded: measurement windows."));
    grid.appendChild(chart("itl", "Inter-token latency", "ms/token",
      [{ key: "itl_p50", name: "p50", values: at((p) => p.itl_p50_ms) },
       { key: "itl_p99", name: "p99", values: at((p) => p.itl_p99_ms) }], t0, t1, s.spans,
      "(E2E − TTFT) / (tokens − 1) per request, requests completed in the last 10 s."));
    grid.appendChild(chart("tps", "Output tokens/s, all users", "tokens/s",
      [{ key: "tps", name: `${SMOOTH_S} s mean`, values: tokenSeries(s.now) }], t0, t1, s.spans,
      "By token arrival; the last seconds fill in as streams finish."));
    const inflight = s.distributed
      ? [{ key: "users", name: "users (all workers)", values: at((p) => p.users) }]
      : [{ key: "in_flight", name: "requests in flight", values: at((p) => p.in_flight) },
         { key: "users", name: "users", values: at((p) => p.users) }];
    grid.appendChild(chart("inflight", s.distributed ? "Users running" : "Requests in flight and users", "count",
      inflight, t0, t1, s.spans, s.distributed ? "A master does not see its workers' requests in flight." : ""));
    const types = [...new Set(points.flatMap((p) => Object.keys(p.errors || {})))].sort();
    grid.appendChild(chart("errors", "Errors by type, so far", "requests",
      types.map((k) => ({ key: `error_${k}`, name: k, values: at((p) => (p.errors || {})[k] || 0) })),
      t0, t1, s.spans, !types.length ? "No failed request." : types.includes("cancelled")
        ? "cancelled: in flight when the client stopped its users (a step change or STOP), not a server error." : ""));
    root.appendChild(grid);
    root.appendChild(table(s.table));
  }

  async function poll() {
    if (!active()) { // nothing to draw: leave the load generator's process alone
      root.style.display = "none";
      setTimeout(poll, POLL_MS / 2);
      return;
    }
    try {
      const res = await fetch(`./llm/state?since=${since}`, { cache: "no-store" });
      if (res.ok) {
        const s = await res.json();
        if (s.test !== test) {
          test = s.test;
          points = [];
          tokens.clear();
        }
        for (const p of s.points) if (!points.length || p.t > points[points.length - 1].t) points.push(p);
        for (const [sec, n] of s.tokens) tokens.set(sec, n);
        if (points.length) since = points[points.length - 1].t;
        last = s;
      }
    } catch (e) {
      // the UI server went away (Locust quit): keep the last picture
    }
    const show = active() && place();
    root.style.display = show ? "block" : "none";
    if (show) render();
    setTimeout(poll, POLL_MS);
  }

  poll();
})();
