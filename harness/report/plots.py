"""The report's plots (matplotlib, Agg backend): latency, throughput and cost against users, and CDFs."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

from harness.analysis import metrics
from harness.analysis.attribution import measured_records
from harness.records.record import Record
from harness.report.steps import StepReport


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def plots(steps: Sequence[StepReport], records: Sequence[Record]) -> list[tuple[str, str]]:
    """(title, base64 PNG) pairs: latency/throughput/cost vs users and per-step CDFs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: list[tuple[str, str]] = []
    if not steps:
        return out
    closed = all(s.info.rate is None for s in steps)
    # closed loop: users on a log axis; with open-loop steps: the steps in order, labelled by load
    users = [s.info.users for s in steps] if closed else list(range(len(steps)))

    def vs_users(title: str, series: dict[str, list[float]], ylabel: str) -> None:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for label, ys in series.items():
            ax.plot(users, ys, marker="o", label=label)
        if closed:
            ax.set_xscale("log", base=2)
        ax.set_xticks(users, [s.info.label for s in steps])
        ax.set_xlabel("concurrent users" if closed else "step (users or requests/s)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend()
        ax.set_title(title)
        out.append((title, _png(fig)))

    vs_users("TTFT vs users", {f"p{q}": [s.m.ttft[q] * 1000 for s in steps] for q in (50, 90, 99)}, "ms")
    vs_users(
        "ITL vs users",
        {
            "ITL p50 (last−first token)/(N−1)": [s.m.itl[50] * 1000 for s in steps],
            "ITL p99": [s.m.itl[99] * 1000 for s in steps],
            "gap p99 (pooled)": [s.m.gap[99] * 1000 for s in steps],
            "E2E/N p50 (llmperf)": [s.m.e2e_per_token[50] * 1000 for s in steps],
        },
        "ms / token",
    )
    vs_users(
        "Throughput vs users",
        {"output tokens/s (aggregate)": [s.m.throughput_tps for s in steps]},
        "tokens/s",
    )
    if any(not math.isnan(s.m.cost_per_million) for s in steps):
        vs_users("Cost vs users", {"$ per 1M output tokens": [s.m.cost_per_million for s in steps]}, "$")

    for key, title, scale in (
        ("ttft", "TTFT CDF per step", 1000),
        ("itl", "ITL CDF per step", 1000),
        ("e2e", "E2E CDF per step", 1),
    ):
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for s in steps:
            measured = measured_records(records, s.info.step, s.info.closed_at)
            xs = sorted(v * scale for v in metrics.latency_samples(measured)[key])
            if xs:
                ax.step(
                    xs,
                    [(i + 1) / len(xs) for i in range(len(xs))],
                    where="post",
                    label=f"{s.info.label} users" if s.info.rate is None else s.info.label,
                )
        ax.set_xlabel("ms" if scale == 1000 else "s")
        ax.set_ylabel("fraction of requests")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        ax.set_title(title)
        out.append((title, _png(fig)))
    return out


def server_plot(steps: Sequence[StepReport], scrapes: Any, neuron: Any = None) -> list[tuple[str, str]]:
    """Queue and batch size (and NeuronCore utilization, when neuron-monitor ran) over the run, each
    step's measurement window shaded: the server's side of the sweep as a time series."""
    import matplotlib

    from harness.telemetry.neuron import core_utilization
    from harness.telemetry.server_steps import SOURCES

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {}
    if scrapes is not None and scrapes.times:
        for figure, label in (("queue", "queue size"), ("batch", "batch size")):
            for name, match in SOURCES[figure]:
                keys = scrapes.keys(name, match)
                if keys:
                    series[f"{label} ({name})"] = [
                        (t, sum(scrapes.value_at(k, t) or 0.0 for k in keys)) for t in scrapes.times
                    ]
                    break
    util = []
    if neuron is not None and neuron.times:
        util = list(zip(neuron.times, core_utilization(neuron, -math.inf, math.inf), strict=False))
    if not steps or (not series and not util):
        return []
    times = [t for values in series.values() for t, _ in values] + [t for t, _ in util]
    t0 = min(times)
    panels = (1 if series else 0) + (1 if util else 0)
    fig, axes = plt.subplots(panels, 1, figsize=(9, 3.2 * panels), sharex=True, squeeze=False)
    axes = [row[0] for row in axes]
    if series:
        for label, values in series.items():
            axes[0].step([t - t0 for t, _ in values], [v for _, v in values], where="post", label=label)
        axes[0].set_ylabel("requests")
    if util:
        ax = axes[-1]
        ax.step([t - t0 for t, _ in util], [v for _, v in util], where="post", color="tab:purple",
                label="NeuronCore utilization (mean over cores)")
        ax.set_ylabel("%")
        ax.set_ylim(0, 105)
    for ax in axes:
        for i, s in enumerate(steps):  # alternating shades: adjacent windows stay apart
            w = s.info.window
            ax.axvspan(w.start - t0, w.end - t0, alpha=0.12, color=("tab:green", "tab:blue")[i % 2])
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    for s in steps:
        w = s.info.window
        axes[0].text((w.start + w.end) / 2 - t0, 1.0, f"{s.info.users}u",
                     transform=axes[0].get_xaxis_transform(), ha="center", va="bottom", fontsize="small")
    axes[-1].set_xlabel("seconds since the first sample (shaded: measurement windows)")
    title = "Server queue and batch size over the run" if series else "NeuronCore utilization over the run"
    if series and util:
        title = "Server queue, batch size and NeuronCore utilization over the run"
    axes[0].set_title(title, pad=14)
    return [(title, _png(fig))]
