"""One definition per metric: what each figure of a step means, which records count, what peers call it.

The report's row explanations ("how each row is computed" in summary.md and report.html) and
docs/metrics.md are generated from `METRICS`, so a definition is written once; the computation is in
`harness.analysis.metrics`, the record selection in `harness.analysis.attribution`.

Peer names were read from the peers' own code and docs: vLLM `vllm/benchmarks/serve.py`
(`BenchmarkMetrics`), GuideLLM `GenerativeMetrics` and docs/guides/metrics.md, AIPerf
docs/metrics-reference.md (metric tags), llmperf `src/llmperf/common_metrics.py` (result keys, which
token_benchmark_ray.py prefixes with `results_`). "—" means the tool has no such figure.

Regenerate the docs with `python -m harness.analysis.definitions > docs/metrics.md`
(tests/unit/test_definitions.py fails when they differ).

Length: over 400 lines because it is the registry's data (one entry per figure, client and server
side); splitting it would put definitions that one docs page lists together in two places.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from harness.analysis.attribution import ATTRIBUTION_DETAIL, ATTRIBUTION_RULE

NONE = "—"  # the tool has no equivalent

# Which records count, in the words of the attribution rule (harness.analysis.attribution).
MEASURED_OK = "successful measured requests (sent inside the step's window, ended before the step closed)"
MEASURED_ALL = "measured requests, successful and failed (censored ones excluded)"
COUNTED = "requests sent inside the step's measurement window"
ARRIVED = (
    "token events that arrived between the window's opening and the step's close, from successful or "
    "client-cancelled requests of any step"
)
COMPLETED_OK = (
    "successful requests that completed between the window's opening and the step's close, whichever "
    "step sent them"
)
CLIENT = "not records: the sweep samples the load generator during the window (steps.json)"


@dataclass(frozen=True)
class Metric:
    """One figure of a step.

    `definition` is the sentence the report's row text is built from, so it is written for that row;
    `aka` is the report's own short note on what a peer calls the figure (the full names
    are the peer fields, shown in docs/metrics.md).
    """

    key: str  # StepMetrics field / summary.csv column stem
    name: str
    unit: str
    definition: str
    counts: str
    vllm: str = NONE
    guidellm: str = NONE
    aiperf: str = NONE
    llmperf: str = NONE
    aka: str = ""


METRICS: tuple[Metric, ...] = (
    Metric(
        key="requests",
        name="Requests measured",
        unit="requests (ok / failed / censored)",
        definition="requests sent inside this step's measurement window, by outcome: ok; failed = HTTP "
        "error, error event, timeout or cut stream; censored = still open when the cool-down's hard cap "
        "closed the step (or cancelled by the client)",
        counts=COUNTED,
        vllm="`completed` / `failed`",
        guidellm="successful / errored / incomplete requests",
        aiperf="`request_count` / `error_request_count`",
        llmperf="`num_completed_requests` / `number_errors`",
    ),
    Metric(
        key="mean_input_tokens",
        name="Mean input tokens",
        unit="tokens",
        definition="mean over successful measured requests of the server's input_length/prompt_tokens (else "
        "our tokenizer's count of what was sent, chat template included)",
        counts=MEASURED_OK,
        vllm="`total_input` (a total)",
        guidellm="`prompt_token_count`",
        aiperf="`input_sequence_length` (ISL)",
        llmperf="`number_input_tokens` (the sampled target, not a measurement)",
    ),
    Metric(
        key="mean_output_tokens",
        name="Mean output tokens",
        unit="tokens",
        definition="mean tokens generated per successful measured request: the server's count "
        "(details.generated_tokens / usage.completion_tokens) when reported, else the token events "
        "received (never re-tokenized)",
        counts=MEASURED_OK,
        vllm="`total_output` (a total)",
        guidellm="`output_token_count`",
        aiperf="`output_sequence_length` (OSL)",
        llmperf="`number_output_tokens`",
    ),
    Metric(
        key="mean_output_events",
        name="Token events",
        unit="events per request (coalesced)",
        definition="mean token events received per successful measured request, beside the tokens: they "
        "differ when a server packs several tokens in an event or sends a role-only one; coalesced = "
        "events that arrived in the same read as the previous one (the token gaps of 0)",
        counts=MEASURED_OK,
        vllm="chunks (one `itl` sample each)",
        aiperf="`inter_chunk_latency` samples",
    ),
    Metric(
        key="ttft",
        name="TTFT",
        unit="ms",
        definition="time from sending to the first token event",
        counts=MEASURED_OK + " that received a token",
        vllm="`ttft` (TTFT)",
        guidellm="`time_to_first_token_ms`",
        aiperf="`time_to_first_token` (TTFT)",
        llmperf="`ttft_s`",
    ),
    Metric(
        key="itl",
        name="ITL",
        unit="ms/token",
        definition="per request (last token's arrival − first token's arrival) ÷ (output tokens − 1)",
        counts=MEASURED_OK + " with at least 2 token events",
        vllm="`tpot` (TPOT)",
        guidellm="`inter_token_latency_ms` (ITL)",
        aiperf="`inter_token_latency` (ITL)",
        aka="vLLM TPOT, GuideLLM/genai-perf ITL",
    ),
    Metric(
        key="e2e_per_token",
        name="E2E ÷ tokens",
        unit="ms/token",
        definition="per request E2E ÷ output tokens, TTFT included",
        counts=MEASURED_OK + " with at least 1 token event",
        guidellm="`time_per_output_token_ms` (TPOT)",
        llmperf="`inter_token_latency_s`",
        aka="llmperf's \"inter-token latency\"",
    ),
    Metric(
        key="gap",
        name="Token gap",
        unit="ms",
        definition="all gaps between successive token arrivals pooled over requests",
        counts="every gap between token events of the " + MEASURED_OK,
        vllm="`itl` (ITL; one sample per streamed chunk)",
        aiperf="`inter_chunk_latency` (ICL; per chunk)",
        aka="vLLM ITL",
    ),
    Metric(
        key="max_gap",
        name="Largest gap",
        unit="ms",
        definition="each request's largest gap between tokens (stalls)",
        counts=MEASURED_OK + " with at least 2 token events",
    ),
    Metric(
        key="e2e",
        name="E2E",
        unit="s",
        definition="time from sending to the last event",
        counts=MEASURED_OK,
        vllm="`e2el` (E2EL)",
        guidellm="`request_latency`",
        aiperf="`request_latency`",
        llmperf="`end_to_end_latency_s`",
    ),
    Metric(
        key="throughput_tps",
        name="Throughput",
        unit="output tokens/s",
        definition="tokens of successful (or client-cancelled) requests that arrived between the "
        "window's opening and the step's close ÷ that span (each event weighs its request's tokens per "
        "event; n/a when the step measured no request)",
        counts=ARRIVED,
        vllm="`output_throughput` (Σ output tokens ÷ benchmark duration)",
        guidellm="`output_tokens_per_second` (time-weighted over token timestamps)",
        aiperf="`output_token_throughput` (Σ OSL ÷ benchmark duration)",
        llmperf="`mean_output_throughput_token_per_s` (Σ output tokens ÷ run time)",
    ),
    Metric(
        key="completed_throughput_tps",
        name="Throughput, completed requests",
        unit="output tokens/s",
        definition="output tokens of successful requests completed between the window's opening and the "
        "step's close ÷ that span",
        counts=COMPLETED_OK,
    ),
    Metric(
        key="output_tps",
        name="Per-request output tokens/s",
        unit="tokens/s",
        definition="per request output tokens ÷ E2E",
        counts=MEASURED_OK + " with at least 1 token event",
        guidellm="a request's `output_tokens_per_second`",
        aiperf="`e2e_output_token_throughput`",
        llmperf="`request_output_throughput_token_per_s`",
        aka="llmperf's per-request throughput",
    ),
    Metric(
        key="rpm",
        name="Requests per minute",
        unit="requests/min",
        definition="successful requests completed between the window's opening and the step's close × 60 "
        "÷ that span",
        counts=COMPLETED_OK,
        vllm="`request_throughput` (per second)",
        guidellm="`requests_per_second`",
        aiperf="`request_throughput` (per second)",
        llmperf="`num_completed_requests_per_min`",
    ),
    Metric(
        key="errors",
        name="Errors",
        unit="requests, by error type",
        definition="failed measured requests, by error type",
        counts=MEASURED_ALL,
        vllm="`failed` (a count)",
        guidellm="errored requests (a count)",
        aiperf="`error_request_count` (a count)",
        llmperf="`error_code_frequency`",
    ),
    Metric(
        key="error_rate",
        name="Error rate",
        unit="%",
        definition="failed ÷ measured requests",
        counts=MEASURED_ALL,
        llmperf="`error_rate`",
    ),
    Metric(
        key="cost_per_million",
        name="Cost per 1M output tokens",
        unit="$",
        definition="instance $/h ÷ (throughput × 3600) × 10⁶ (n/a when the step measured no request)",
        counts=ARRIVED + " (via throughput)",
    ),
    Metric(
        key="window_s",
        name="Window",
        unit="s",
        definition="length of the measurement window (requests sent in it count), and of the cool-down "
        "after it (the load unchanged until they ended)",
        counts="not records: the step's measure and cooldown phases in steps.json (without it, the span "
        "of its measure-phase sends)",
        vllm="Benchmark duration (s) (the whole run)",
        guidellm="the measurement window (`measure_start` to `measure_end`)",
        aiperf="`benchmark_duration` (the whole run)",
    ),
    Metric(
        key="achieved_rps",
        name="Rate (open loop)",
        unit="requests/s: nominal / offered / achieved",
        definition="rate and trace steps: the step's nominal rate (a trace's: entries ÷ its replayed "
        "length); offered = requests the arrival schedule meant to send inside the window ÷ window; "
        "achieved = requests sent inside it ÷ window",
        counts="every request the step sent (offered: by intended send time), " + COUNTED + " (achieved)",
        vllm="`--request-rate` / `request_throughput`",
        guidellm="the rate profile / `requests_per_second`",
        aiperf="`--request-rate` / `request_throughput`",
    ),
    Metric(
        key="lag_p99_s",
        name="Schedule lag",
        unit="ms (p50 / p99)",
        definition="rate steps: actual send − intended send, less the wait for a concurrency slot (the "
        "client's own lateness)",
        counts=COUNTED,
        aiperf="credit issue lag",
    ),
    Metric(
        key="queue_p99_s",
        name="Client queue time",
        unit="ms (p50 / p99)",
        definition="rate steps with max_concurrency: how long an arrival waited for a slot",
        counts=COUNTED + " that waited for a slot",
    ),
    Metric(
        key="ttft_intended_p99_s",
        name="TTFT from intended send",
        unit="ms (p50 / p99)",
        definition="rate steps: TTFT counted from the intended send (lag and queue time included: "
        "coordinated omission shown, not hidden)",
        counts=MEASURED_OK + " that received a token",
    ),
    Metric(
        key="achieved_load",
        name="Load: offered → achieved",
        unit="users or requests/s → requests/s",
        definition="the load the step offered (its users, or its nominal rate) and the requests it sent "
        "inside the window ÷ the window",
        counts=COUNTED,
        vllm="`--request-rate` / `--max-concurrency` → `request_throughput`",
        guidellm="the rate or concurrency profile → `requests_per_second`",
        aiperf="`--request-rate` / `--concurrency` → `request_throughput`",
    ),
    Metric(
        key="objectives",
        name="SLO",
        unit="pass, or the objectives missed",
        definition="each step objective of [slo] that is set, against its limit: TTFT p99, ITL p99 and "
        "E2E p99 over the successful measured requests (no sample: missed), error rate = (failed + "
        "censored) ÷ requests sent in the window; a figure at most its limit passes",
        counts=MEASURED_OK + "; error rate: " + COUNTED,
        vllm="— (goodput thresholds only)",
        guidellm="— (its over-saturation stop is not an SLO)",
        aiperf="— (goodput thresholds only)",
    ),
    Metric(
        key="goodput_rps",
        name="Goodput",
        unit="requests/s (output tokens/s)",
        definition="successful requests sent inside the window that met every per-request threshold of "
        "[slo] (request_ttft_ms, request_itl_ms on the request's mean ITL, request_e2e_s; none set: every "
        "successful one) ÷ the window, and their output tokens ÷ the window (DistServe's goodput)",
        counts=MEASURED_OK + " meeting every per-request threshold",
        vllm="`request_goodput` (`--goodput ttft:… tpot:… e2el:…`, req/s)",
        aiperf="`goodput` (`--goodput`, req/s)",
    ),
    Metric(
        key="cost_per_million_good",
        name="Cost per 1M output tokens at goodput",
        unit="$",
        definition="instance $/h ÷ (goodput in output tokens/s × 3600) × 10⁶: what a million tokens that "
        "met the thresholds cost (n/a without a price or a measured request)",
        counts=MEASURED_OK + " meeting every per-request threshold (via goodput)",
    ),
    Metric(
        key="client_cpu_percent",
        name="Client CPU",
        unit="% (100 = one core)",
        definition="load generator process CPU during the window (100 = one core)",
        counts=CLIENT,
    ),
    Metric(
        key="sched_lag_p99_ms",
        name="Client lag",
        unit="ms",
        definition="how late a 10 ms sleep in the client woke up",
        counts=CLIENT,
    ),
)

# Server-side figures: not records but the server's own Prometheus metrics, scraped during the run
# (server_metrics.jsonl; harness.telemetry). Computed in harness.telemetry.server_steps.
SCRAPES = "not records: the server's metrics scraped during the window (server_metrics.jsonl)"
DELTA = "not records: the server's counters and histogram buckets, increase over the window"
BUCKETS = (
    "; percentiles are bucket-bounded: the upper bound of the histogram bucket holding the percentile "
    "(the true value lies between it and the bucket below)"
)
NEURON = "not records: neuron-monitor's reports during the window (neuron_metrics.jsonl), neuronx-tgi only"
SERVER_METRICS: tuple[Metric, ...] = (
    Metric(
        key="server_queue_size",
        name="Server queue size",
        unit="requests (mean / max)",
        definition="requests waiting in the server's queue, mean and max over the scrapes inside the window "
        "(TGI `tgi_queue_size`, vLLM `vllm:num_requests_waiting`, llama.cpp `llamacpp:requests_deferred`)",
        counts=SCRAPES,
        vllm="`vllm:num_requests_waiting` (not in its benchmark)",
        guidellm=NONE,
        aiperf=NONE,
        llmperf=NONE,
    ),
    Metric(
        key="server_batch_size",
        name="Server batch size",
        unit="requests (mean / max)",
        definition="requests in the running batch, mean and max over the scrapes inside the window "
        "(TGI `tgi_batch_current_size`, vLLM `vllm:num_requests_running`, llama.cpp "
        "`llamacpp:requests_processing`)",
        counts=SCRAPES,
        vllm="`vllm:num_requests_running` (not in its benchmark)",
    ),
    Metric(
        key="server_kv_cache",
        name="KV-cache usage",
        unit="% (mean / max)",
        definition="share of the KV cache in use, mean and max over the scrapes inside the window "
        "(vLLM `vllm:kv_cache_usage_perc` or `vllm:gpu_cache_usage_perc`, llama.cpp "
        "`llamacpp:kv_cache_usage_ratio`)",
        counts=SCRAPES,
        vllm="`vllm:kv_cache_usage_perc` (not in its benchmark)",
    ),
    Metric(
        key="server_queue_time",
        name="Server queue time",
        unit="ms (mean, p50, p99)",
        definition="time requests that finished in the window waited in the server's queue: Δsum ÷ Δcount of "
        "`tgi_request_queue_duration` (vLLM `vllm:request_queue_time_seconds`)" + BUCKETS,
        counts=DELTA,
    ),
    Metric(
        key="server_prefill_time",
        name="Server prefill batch time",
        unit="ms (mean)",
        definition="mean duration of the server's prefill batches in the window: "
        "`tgi_batch_inference_duration{method=\"prefill\"}` (vLLM `vllm:request_prefill_time_seconds`)",
        counts=DELTA,
    ),
    Metric(
        key="server_inference_time",
        name="Server inference time",
        unit="ms (mean, p50, p99)",
        definition="time from a request's first batch to its last token, per request finished in the window: "
        "`tgi_request_inference_duration` (vLLM `vllm:request_inference_time_seconds`)" + BUCKETS,
        counts=DELTA,
    ),
    Metric(
        key="server_time_per_token",
        name="Server time per token",
        unit="ms/token (mean, p50, p99)",
        definition="the server's inference time ÷ generated tokens, per request finished in the window: "
        "`tgi_request_mean_time_per_token_duration` (vLLM `vllm:time_per_output_token_seconds`; llama.cpp: "
        "Δ`llamacpp:tokens_predicted_seconds_total` ÷ Δ`llamacpp:tokens_predicted_total`, a mean only)"
        + BUCKETS,
        counts=DELTA,
    ),
    Metric(
        key="server_requests",
        name="Requests the server counted",
        unit="requests (ok / failed)",
        definition="increase of `tgi_request_success` and `tgi_request_failure` "
        "(vLLM `vllm:request_success`) between the scrapes bracketing the window, beside the requests "
        "the client saw finish between "
        "those same scrapes; flagged when they differ by more than the requests that finished within "
        "0.25 s of either scrape",
        counts=DELTA,
    ),
    Metric(
        key="ttft_breakdown",
        name="Where the TTFT went",
        unit="ms (client TTFT = server queue + prefill + rest)",
        definition="mean client TTFT of the step's successful measured requests, beside the server's mean "
        "queue time and mean prefill batch time in the window; the rest is validation, network and the "
        "client (means add, percentiles do not)",
        counts=MEASURED_OK + "; and " + DELTA,
    ),
    Metric(
        key="neuroncore_utilization",
        name="NeuronCore utilization",
        unit="% (mean / max)",
        definition="neuron-monitor's `neuroncore_counters.neuroncores_in_use[core].neuroncore_utilization`, "
        "averaged over the NeuronCores in use at each report; mean and max over the reports inside the "
        "window",
        counts=NEURON,
    ),
    Metric(
        key="neuron_device_memory",
        name="Neuron device memory",
        unit="GiB (mean / max)",
        definition="neuron-monitor's `memory_used.neuron_runtime_used_bytes.neuron_device`, mean and max "
        "over the reports inside the window",
        counts=NEURON,
    ),
    Metric(
        key="neuron_errors",
        name="Neuron execution errors",
        unit="errors",
        definition="sum of neuron-monitor's per-period `execution_stats.error_summary` counts over the "
        "reports inside the window",
        counts=NEURON,
    ),
)

BY_KEY: dict[str, Metric] = {m.key: m for m in METRICS + SERVER_METRICS}

PEERS = (
    ("vllm", "vLLM `bench serve`"),
    ("guidellm", "GuideLLM"),
    ("aiperf", "AIPerf"),
    ("llmperf", "llmperf"),
)


def metric(key: str) -> Metric:
    """The registry entry for `key` (a KeyError names the missing key, so a typo fails at import)."""
    return BY_KEY[key]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def docs_markdown() -> str:
    """docs/metrics.md: the registry and the attribution rule as one page (generated, never edited)."""
    lines = [
        "<!-- Generated from harness/analysis/definitions.py by",
        "     `python -m harness.analysis.definitions > docs/metrics.md`; do not edit by hand",
        "     (tests/unit/test_definitions.py fails when this file differs from the registry). -->",
        "",
        "# Metrics",
        "",
        "Every figure of a step, as the report shows it. Each is a pure function of the saved records "
        "(`harness/analysis/metrics.py`); percentiles are exact (linear interpolation over the raw records), "
        "not Locust's bucketed ones. The report shows p50/p90/p99 of TTFT and p50/p99 of the other "
        "distributions, the number of samples n beside each, and marks a percentile \"≈ max\" when "
        "n < 100 ÷ (100 − q): with fewer samples the q-th percentile is about the largest one.",
        "",
        "## Which requests a step counts",
        "",
        ATTRIBUTION_RULE,
        "",
        ATTRIBUTION_DETAIL,
        "",
        "## Definitions",
        "",
        "| metric | key | unit | definition | records counted |",
        "|---|---|---|---|---|",
    ]
    for m in METRICS:
        lines.append(
            f"| {_cell(m.name)} | `{m.key}` | {_cell(m.unit)} | {_cell(m.definition)} | {_cell(m.counts)} |"
        )
    lines += [
        "",
        "## What the peers call them",
        "",
        "Read from each tool's code or docs (see `harness/analysis/definitions.py`); — where a tool has "
        "no equivalent. Peers measure a whole run rather than a window per step, so their throughputs "
        "divide by the run's duration.",
        "",
        "| metric | " + " | ".join(title for _, title in PEERS) + " |",
        "|---|" + "---|" * len(PEERS),
    ]
    for m in METRICS:
        names = " | ".join(_cell(getattr(m, attr)) for attr, _ in PEERS)
        lines.append(f"| {_cell(m.name)} | {names} |")
    lines += [
        "",
        "## Server-side figures",
        "",
        "From the server's own Prometheus metrics, scraped every second during the run "
        "(`server_metrics.jsonl`, see [telemetry.md](telemetry.md)); shown when the server has them. "
        "Counters and histograms are read as their increase over the step's window, never as totals "
        "since the server started. None of the peers reports these per step.",
        "",
        "| metric | key | unit | definition | source |",
        "|---|---|---|---|---|",
    ]
    for m in SERVER_METRICS:
        lines.append(
            f"| {_cell(m.name)} | `{m.key}` | {_cell(m.unit)} | {_cell(m.definition)} | {_cell(m.counts)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    sys.stdout.write(docs_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
