"""Why a step's numbers should not be taken at face value: the flags and the text that explains them."""

from __future__ import annotations

from harness.analysis.metrics import StepMetrics
from harness.analysis.openloop import OpenLoop
from harness.config.model import Flags
from harness.report.inputs import StepInfo

# Shown under the table (summary.md, report.html); keep it in step with `step_flags`.
FLAGS_NOTE = (
    "Flags: *nothing measured* (no successful request sent in the window ended before the step "
    "closed: no figure of the step is a measurement), *censored* (more of the requests sent in the "
    "window than max_censored_fraction, default 0: any, were still open when the cool-down's hard cap "
    "closed the step: the latencies miss the slowest ones), "
    "*high error rate* (above the scenario's max_error_rate), *too few samples* (fewer successful "
    "requests than min_samples: p99 is then mostly the maximum), *client-bound* (client CPU or "
    "scheduling lag above the thresholds: latencies include client delay), *window capped* (max_s "
    "reached before min_requests were sent in the window), *cut short* (the test was stopped during the "
    "window: STOP, Ctrl-C, --run-time), *tokens ≠ events* (the server's token count and the token events "
    "differ by more than 1 in some requests: it packs several tokens per event, so per-token figures use "
    "its count and the token gaps are per event), *server count differs* (the server's own request "
    "counters moved by a different number than the client saw finish between the same two scrapes), "
    "*degraded: lost worker* (a worker of a distributed run stopped answering during the step: its users' "
    "load was missing from then on), *clock uncertain* (a worker's clock offset to the master is known "
    "less precisely than max_clock_uncertainty of the window: requests near the window's edges may be "
    "counted in the wrong step); rate steps: *client-bound* also when achieved ÷ offered rate < 0.99 or "
    "the schedule lag p99 > 5 ms, *queued at max_concurrency* when arrivals waited for a slot (the client "
    "queue time); with [slo]: *SLO missed* (an objective's figure above its limit, or unknown)."
)


def step_flags(info: StepInfo, m: StepMetrics, flags: Flags, loop: OpenLoop | None = None) -> list[str]:
    """Why a step's numbers should not be taken at face value."""
    out = []
    if not m.ok:
        out.append("nothing measured")
    if m.censored and m.censored > flags.max_censored_fraction * m.sent:
        out.append(f"censored ({m.censored} of {m.sent} still open at the close)")
    if loop is not None and loop.client_bound:
        out.append(f"client-bound (achieved {loop.achieved_rps:.2f} of {loop.offered_rps:.2f} req/s offered, "
                   f"lag p99 {loop.lag_p99_s * 1000:.1f} ms)")
    if loop is not None and loop.queued:
        out.append(f"queued at max_concurrency (queue p99 {loop.queue_p99_s * 1000:.0f} ms)")
    if m.token_count_differs:
        out.append(f"tokens ≠ events ({m.token_count_differs} of {m.ok} requests)")
    if m.requests and m.error_rate > flags.max_error_rate:
        out.append(f"high error rate ({m.error_rate:.0%})")
    if m.ok < flags.min_samples:
        out.append(f"too few samples ({m.ok} < {flags.min_samples})")
    if info.client_cpu_percent is not None and info.client_cpu_percent > flags.max_client_cpu_percent:
        out.append(f"client-bound (CPU {info.client_cpu_percent:.0f}%)")
    elif info.sched_lag_p99_ms is not None and info.sched_lag_p99_ms > flags.max_sched_lag_ms:
        out.append(f"client-bound (scheduling lag p99 {info.sched_lag_p99_ms:.0f} ms)")
    measure = (info.spans or {}).get("measure") or {}
    if measure.get("cut_short"):
        out.append(f"cut short (test stopped {m.window_s:.0f} s into the window)")
    elif info.min_requests and m.sent < info.min_requests:
        out.append(f"window capped ({m.sent} < {info.min_requests} requests sent)")
    out.extend(info.degraded)
    unsure, span = info.clock_uncertainty_s, info.window.end - info.window.start
    if unsure is not None and span > 0 and unsure > flags.max_clock_uncertainty * span:
        out.append(f"clock uncertain (±{unsure * 1000:.0f} ms in a {span:.0f} s window)")
    return out
