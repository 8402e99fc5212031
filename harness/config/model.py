"""The one configuration model of a run: what to measure, how to load it, what to flag.

Every mode reads this model — `python -m harness sweep`, the web UI, plain `locust -f`, and every
worker of a master/worker run (the master resolves it once and Locust hands it to the workers
with its custom options, see harness.load.locust.config). It is plain validated data: pydantic v2
models with unknown keys forbidden and ranges checked, no I/O (but reading a trace step's file:
harness.config.model.Step).

Layers (harness.config.layers): scenario file < `HARNESS_*` environment < command line. Each
setting has ONE name, its key path below its section: `[request] timeout_s` is `--timeout-s` and
`HARNESS_TIMEOUT_S`; `[steps] measure = { min_s = 60 }` is `--measure-min-s` and
`HARNESS_MEASURE_MIN_S`. The one exception is the step list, `[steps] users` = `--steps`
(harness.config.settings derives the table).

Phase rule (warm-up and measurement window of each step): a phase ends as soon as
``elapsed >= max_s``, or when ``elapsed >= min_s`` **and** ``min_requests`` requests were counted:
for a warm-up, requests completed successfully during it; for a window, requests *sent* in it (the
window's measured requests, see harness.analysis.attribution). "60 s" is ``min_s = max_s = 60``;
"20 requests, at least 30 s, at most 5 min" is ``min_requests = 20, min_s = 30, max_s = 300``.
When ``max_s`` is omitted it is ``min_s`` (no request target) or ``min_s + timeout_s`` (with one),
so a dead server never hangs a sweep. After the window a cool-down keeps the load until every
request sent in it has ended, at most ``cooldown_max_s`` (default: timeout_s + 5 s).

Why not pydantic-settings: its sources nest environment names (`HARNESS_STEPS__MEASURE__MIN_S`)
and have no notion of per-step tables that a flag must override, nor of saying *which layer*
(file, variable or flag) gave a bad value. The three layers are a small merge of plain dicts in
harness.config.layers; validation, defaults and allowed values stay here, in one place.

Length: one model of every setting (steps with open-loop rates, telemetry, distributed runs,
reliability): splitting it would scatter the single source the flags and env names derive from.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Api = Literal["generate_stream", "chat", "completions"]
Arrival = Literal["constant", "poisson", "gamma"]
ServerKind = Literal["emulator", "neuronx-tgi", "tgi-gpu", "tgi-cpu"]
Stamps = Literal["kernel", "recv"]
APIS: tuple[str, ...] = Api.__args__
SERVER_KINDS: tuple[str, ...] = ServerKind.__args__
STAMPS: tuple[str, ...] = Stamps.__args__

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110 token)
_FRAMING = ("content-length", "transfer-encoding", "connection")  # the client's own


def header_problem(header: str) -> str | None:
    """Why `header` cannot be sent as given (None: it can)."""
    name, sep, value = header.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not _TOKEN.fullmatch(name) or any(c in value for c in "\r\n"):
        return f"--headers {header!r}: expected 'Name: value' on one line"
    if name.lower() in _FRAMING:
        return f"--headers {header!r}: the client sets {name} itself"
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return f"--headers {header!r}: HTTP header values are latin-1"
    return None


NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Pos = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


# --- resolved steps: what the load plan runs (plain data, cheap to poll) -----------------------


@dataclass(frozen=True, slots=True)
class PhaseRule:
    """When a warm-up or measurement phase ends (see the module docstring); max_s is resolved."""

    min_s: float = 0.0
    max_s: float = 0.0
    min_requests: int = 0

    def done(self, elapsed: float, completed: int) -> bool:
        if elapsed >= self.max_s:
            return True
        return elapsed >= self.min_s and completed >= self.min_requests

    def describe(self) -> str:
        if self.min_requests:
            return f"≥{self.min_requests} requests and ≥{self.min_s:g} s, ≤{self.max_s:g} s"
        return f"{self.min_s:g} s"


@dataclass(frozen=True, slots=True)
class StepSpec:
    """One step as the plan runs it: closed loop (`users`) or open loop (`rate`, users = 1: the
    arrival driver, one per load generator)."""

    users: int
    warmup: PhaseRule
    measure: PhaseRule
    cooldown_max_s: float = math.inf  # hard cap of the cool-down (requests still open: censored)
    rate: float | None = None  # open loop: requests/s (None: closed loop)
    arrival: str = "poisson"
    burstiness: float = 1.0
    max_concurrency: int | None = None  # open loop: requests in flight at most (the rest queue)
    trace: str | None = None  # trace replay: the trace file (resolved path); `rate` is its mean rate
    speed: float = 1.0  # trace replay: entry i is due at timestamp / speed

    @property
    def label(self) -> str:
        """How the report heads the step's column: "16" (users), "20 req/s" or "trace name ×2"."""
        if self.trace is not None:
            return trace_label(self.trace, self.speed)
        return str(self.users) if self.rate is None else f"{self.rate:g} req/s"


def trace_label(path: str, speed: float = 1.0) -> str:
    """A trace step's column heading: "trace synthetic" or "trace synthetic ×2"."""
    name = path.rsplit("/", 1)[-1].removesuffix(".jsonl")
    return f"trace {name}" + ("" if speed == 1.0 else f" ×{speed:g}")


# --- the sections --------------------------------------------------------------------------


class Phase(_Section):
    """A warm-up or window rule as written; `max_s` None means "derived" (module docstring)."""

    min_s: NonNeg | None = Field(None, description="at least this many seconds")
    max_s: NonNeg | None = Field(None, description="at most this many seconds")
    min_requests: Annotated[int, Field(ge=0)] | None = Field(
        None, description="at least this many successful requests"
    )

    def over(self, base: Phase) -> Phase:
        """This rule's keys over `base`'s (a step's own table over the [steps] default)."""
        return Phase(**{**base.model_dump(exclude_none=True), **self.model_dump(exclude_none=True)})

    def resolve(self, timeout_s: float, where: str) -> PhaseRule:
        min_s = self.min_s or 0.0
        min_requests = self.min_requests or 0
        if self.max_s is None:
            max_s = min_s + timeout_s if min_requests else min_s
        else:
            max_s = self.max_s
        if max_s < min_s:
            raise ValueError(f"{where}.max_s ({max_s:g}) is less than {where}.min_s ({min_s:g})")
        return PhaseRule(min_s=min_s, max_s=max_s, min_requests=min_requests)


class Step(_Section):
    """One entry of `[steps] users` written as a table: its own windows over the defaults, and
    either `users` (closed loop), `rate` (open loop: requests/s with an arrival process) or `trace`
    (open loop: a recorded trace replayed on its own clock, harness.workload.trace).

    A trace step has no warm-up and its window is the trace: it opens with the step (the trace's
    time 0) and closes once every entry was sent (`measure.max_s` caps it; default: the trace's
    duration / speed + timeout_s), then the cool-down as usual. The file is read and checked here,
    when the configuration is validated (the model's one file read; a bad line stops the run
    before any server starts, naming file:line)."""

    users: Annotated[int, Field(gt=0)] | None = None
    rate: Pos | None = None
    trace: str | None = None
    speed: Pos = 1.0
    arrival: Arrival = "poisson"
    burstiness: Pos = 1.0
    max_concurrency: Annotated[int, Field(gt=0)] | None = None
    warmup: Phase = Phase()
    measure: Phase = Phase()

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        if sum(x is not None for x in (self.users, self.rate, self.trace)) != 1:
            raise ValueError("a step gives users (closed loop), rate or trace (open loop): exactly one")
        if self.rate is None and (self.arrival != "poisson" or self.burstiness != 1.0):
            raise ValueError("arrival and burstiness apply to rate steps only")
        if self.users is not None and self.max_concurrency is not None:
            raise ValueError("max_concurrency applies to rate and trace steps only")
        if self.trace is None and self.speed != 1.0:
            raise ValueError("speed applies to trace steps only")
        if self.trace is not None:
            if self.warmup != Phase():
                raise ValueError("a trace step has no warm-up (its window is the whole trace)")
            from harness.workload.trace import load_trace  # plain data; cached per file version

            load_trace(self.trace)  # TraceError (a ValueError): one line naming file:line
        return self

    def resolved_trace(self) -> tuple[str, int, float]:
        """A trace step's (resolved path, entries, mean rate at its speed, to 4 significant digits:
        the report's nominal rate)."""
        from harness.workload.trace import load_trace

        t = load_trace(self.trace or "")
        return t.path, len(t.entries), float(f"{t.mean_rate(self.speed):.4g}")

    def trace_window(self, timeout_s: float) -> PhaseRule:
        """A trace step's window: every entry sent, at most measure.max_s (default: the trace's
        duration / speed + timeout_s); its own measure table may lower min_requests or add min_s."""
        from harness.workload.trace import LEAD_S, load_trace

        t = load_trace(self.trace or "")
        m = self.measure
        max_s = m.max_s if m.max_s is not None else LEAD_S + t.duration_s / self.speed + timeout_s
        min_s = m.min_s or 0.0
        if max_s < min_s:
            raise ValueError(f"max_s ({max_s:g}) is less than min_s ({min_s:g})")
        n = len(t.entries) if m.min_requests is None else min(m.min_requests, len(t.entries))
        return PhaseRule(min_s=min_s, max_s=max_s, min_requests=n)


class Steps(_Section):
    users: list[Annotated[int, Field(gt=0)] | Step] = Field(
        default_factory=lambda: [1, 2, 4, 8, 16, 32, 64],
        min_length=1,
        description="user counts, rates and traces, e.g. 1,2,4 or 5/s,10/s:constant,20/s:gamma:0.5 or "
        "trace:synthetic.jsonl@2 (in a file, entries may be tables with their own windows)",
    )
    warmup: Phase = Field(Phase(min_s=10.0), description="warm-up rule of every step")
    measure: Phase = Field(
        Phase(min_requests=100, max_s=900.0),
        description="measurement window rule of every step (min_requests: requests sent in the window)",
    )
    cooldown_max_s: NonNeg | None = Field(
        None,
        description="after a window, wait at most this long for its requests to end "
        "(default: timeout_s + 5; those still open are reported as censored)",
    )
    restart: bool = Field(
        False, description="stop all users at each step boundary and start the step's users together"
    )
    stop_min_s: NonNeg = Field(
        0.0, description="with restart: pause at least this long after stopping users (the server drains)"
    )
    spawn_rate: Pos = Field(100.0, description="users started per second when a step ramps")


class Target(_Section):
    url: str | None = Field(None, description="a running server's base URL (nothing is started)")
    server: ServerKind | None = Field(None, description="a container to start with docker-py")
    model_id: str | None = Field(None, description="the model the started server loads (MODEL_ID)")
    image: str | None = Field(None, description="container image (default: the profile's)")
    instance: str | None = Field(None, description="instance type, for the report (e.g. inf2.xlarge)")
    price_per_hour: NonNeg | None = Field(None, description="instance price in $/h (cost per 1M tokens)")
    emulator_profile: str = Field(
        "inf2-xlarge-llama3-8b", description="emulator profile when neither url nor server is given"
    )
    emulator_args: str = Field("", description="extra emulator flags, e.g. '--error-rate 0.2'")
    server_env: dict[str, str] = Field(
        default_factory=dict, description="server environment NAME=VALUE (MAX_BATCH_SIZE, ...)"
    )
    startup_timeout_s: Pos = Field(1800.0, description="how long a started server may take to be healthy")
    host_port: Annotated[int, Field(ge=0, le=65535)] = Field(0, description="host port; 0: any free one")
    privileged: bool = Field(False, description="run the container --privileged")
    devices: list[str] | None = Field(None, description="device paths (default: found on the host)")
    pull: bool = Field(True, description="pull the image when it is missing (--no-pull: never)")
    keep_server: bool = Field(False, description="leave the started container running")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a port that is not a number in 0-65535
        except ValueError as exc:
            raise ValueError(f"{value!r}: {exc}") from None
        if not parts.hostname or any(c.isspace() for c in value):
            raise ValueError(f"expected http(s)://host[:port], got {value!r}")
        return value.rstrip("/")

    @field_validator("emulator_profile")
    @classmethod
    def _profile(cls, value: str) -> str:
        from harness.emulator.profiles import PROFILES  # plain data

        if value not in PROFILES:
            raise ValueError(f"unknown emulator profile {value!r} (allowed: {', '.join(sorted(PROFILES))})")
        return value

    @field_validator("server_env", mode="before")
    @classmethod
    def _env_strings(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, bool) or not isinstance(v, str | int | float):
                    raise ValueError(f"{k} must be a string or number, got {v!r}")
            return {str(k): str(v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _one_target(self) -> Target:
        if self.url and self.server:
            raise ValueError("give url (a running server) or server (a container to start), not both")
        return self


class Request(_Section):
    api: Api | None = Field(
        None, description="route: generate_stream (TGI), chat or completions (default: generate_stream on "
        "TGI, else chat, from the server's /info)"
    )
    model_name: str | None = Field(
        None,
        description="'model' sent on the OpenAI routes (default: the server's own model id; 'tgi' on TGI)",
    )
    ignore_eos: bool = Field(False, description="send ignore_eos (vLLM, llama.cpp; TGI has none)")
    headers: list[str] = Field(
        default_factory=list,
        description="extra header 'Name: value' (repeatable; saved as given: no secrets)",
    )
    bearer_token_env: str | None = Field(
        None, description="environment variable whose value is sent as 'Authorization: Bearer …'"
    )
    timeout_s: Pos = Field(600.0, description="seconds per request, connect to last byte")
    stamps: Stamps = Field(
        "kernel", description="token arrival stamps: kernel receive time or recv (read time)"
    )
    stop_after_requests: Annotated[int, Field(gt=0)] | None = Field(
        None,
        description="send exactly this many requests in total (all users and workers), wait for those "
        "in flight, then stop the test (locustfiles)",
    )

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: list[str]) -> list[str]:
        for header in value:
            problem = header_problem(header)
            if problem:
                raise ValueError(problem)
        return value


class Workload(_Section):
    tokenizer: str = Field("llama3", description="'llama3' (bundled), a Hub id or a directory")
    seed: Annotated[int, Field(ge=0)] | None = Field(
        None,
        description="seed of the prompt texts (default: drawn per run and recorded in the manifest, so "
        "no run resends an earlier run's prompts; give it to reproduce a run exactly)",
    )
    lengths_seed: Annotated[int, Field(ge=0)] = Field(
        11111, description="seed of the input/output length sequence (the workload's shape, every run)"
    )
    prefix_tokens: Annotated[int, Field(ge=0)] = Field(
        0, description="tokens of a passage shared by prompts after the instruction (measures prefix caching)"
    )
    prefix_groups: Annotated[int, Field(gt=0)] = Field(
        1, description="how many different shared passages (prompt i gets passage i mod groups)"
    )
    input_mean: Annotated[int, Field(gt=0)] = Field(550, description="mean input tokens")
    input_stddev: Annotated[int, Field(ge=0)] = Field(150, description="stddev of input tokens (0: fixed)")
    input_min: Annotated[int, Field(gt=0)] = Field(50, description="lower clip of the input length")
    output_mean: Annotated[int, Field(gt=0)] = Field(150, description="mean max new tokens")
    output_stddev: Annotated[int, Field(ge=0)] = Field(0, description="stddev of max new tokens (0: fixed)")
    prompt_pool_size: Annotated[int, Field(gt=0)] = Field(
        1000, description="prompts built before the test starts, used round-robin"
    )

    @model_validator(mode="after")
    def _spread(self) -> Workload:
        # A spread wider than the mean clips most of one side of the distribution to the minimum:
        # the lengths sent would no longer have the mean asked for.
        for name in ("input", "output"):
            mean, sd = getattr(self, f"{name}_mean"), getattr(self, f"{name}_stddev")
            if sd > mean:
                raise ValueError(f"{name}_stddev ({sd}) is larger than {name}_mean ({mean}): "
                                 f"lower --{name}-stddev too")
        return self


class Flags(_Section):
    """Thresholds above which a step is flagged in the report (and --strict exits 3)."""

    max_error_rate: NonNeg = Field(0.01, description="flag a step above this error rate")
    min_samples: Annotated[int, Field(ge=0)] = Field(10, description="flag a step with fewer successes")
    max_client_cpu_percent: Pos = Field(85.0, description="flag a step whose client CPU is above this")
    max_sched_lag_ms: Pos = Field(10.0, description="flag a step whose client lag p99 is above this")
    max_clock_uncertainty: Pos = Field(
        0.01, description="distributed: flag a step when a worker's clock offset uncertainty is above "
        "this fraction of the step's window")
    max_censored_fraction: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] = Field(
        0.0, description="flag a step censored when more than this fraction of the requests sent in its "
        "window were still open at the close (0: any; --strict then exits 3)")


class Output(_Section):
    results_dir: str = Field("results", description="parent directory of run directories")
    run_id: str | None = Field(None, description="run directory name (default: UTC time and name)")
    records_dir: str | None = Field(None, description="write records here instead of results_dir/run_id")
    progress_every_s: Pos = Field(5.0, description="seconds between progress lines")
    quiet: bool = Field(False, description="no progress lines")
    plots: bool = Field(True, description="plots in report.html")
    strict: bool = Field(
        False,
        description="exit 1 when a step is flagged (3 when client-bound or censored; harness.exitcodes)",
    )


class Telemetry(_Section):
    """What the sweep collects from the server beside the client's records (harness.telemetry)."""

    scrape_every_s: NonNeg = Field(
        1.0, description="seconds between scrapes of the server's Prometheus metrics (0: none)"
    )
    metrics_path: str = Field("/metrics", description="path of the server's Prometheus endpoint")
    neuron_monitor: bool = Field(
        True, description="run neuron-monitor in a neuronx-tgi container during the run"
    )


class Distributed(_Section):
    """Master/worker runs (harness.load.locust.cluster): where the load comes from and where records go."""

    workers: Annotated[int, Field(ge=0)] = Field(
        0, description="worker processes (0: one process); started locally unless --master")
    master: bool = Field(False, description="run the master only: wait for --workers remote workers")
    worker: bool = Field(False, description="run a worker only: connect to --master-host")
    master_host: str = Field("127.0.0.1", description="the master's address (workers connect to it)")
    master_port: Annotated[int, Field(ge=1, le=65535)] = Field(5557, description="the master's port")
    worker_records: Literal["master", "local", "both"] = Field(
        "master", description="workers send records to the master, keep them in their own records "
        "directory (merge with `python -m harness collect`), or both")
    connect_timeout_s: Pos = Field(120.0, description="how long the master waits for its workers")
    heartbeat_liveness_s: Annotated[int, Field(ge=1, le=60)] = Field(
        10, description="master: seconds without a worker's heartbeat (sent every 1 s) before it is "
        "lost; one back within as long again was a stall (listed in the manifest, its step not flagged)")
    report_every_s: Annotated[float, Field(gt=0, le=10)] = Field(
        3.0, description="seconds between a worker's stats reports to the master (Locust's 3): a step's "
        "cool-down lasts at least this and 1 s, so the master sees the window's last requests end")


class Slo(_Section):
    """Service-level objectives (harness.analysis.slo): per step, each objective set here passes or
    fails, and goodput counts the requests that met every per-request threshold. Unset: not checked."""

    ttft_p99_ms: Pos | None = Field(None, description="SLO: TTFT p99 of a step at most this (ms)")
    itl_p99_ms: Pos | None = Field(None, description="SLO: ITL p99 of a step at most this (ms/token)")
    e2e_p99_s: Pos | None = Field(None, description="SLO: E2E p99 of a step at most this (s)")
    error_rate: Annotated[float, Field(ge=0, le=1)] | None = Field(
        None, description="SLO: (failed + censored) ÷ requests sent in the window at most this (0..1)")
    request_ttft_ms: Pos | None = Field(
        None, description="goodput: a request is good only if its TTFT is at most this (ms)")
    request_itl_ms: Pos | None = Field(
        None, description="goodput: ... and its mean ITL, (last − first token) ÷ (tokens − 1), at most "
        "this (ms/token; vLLM's per-request TPOT)")
    request_e2e_s: Pos | None = Field(
        None, description="goodput: ... and its E2E at most this (s)")

    @property
    def step_objectives(self) -> bool:
        return any(v is not None for v in (self.ttft_p99_ms, self.itl_p99_ms, self.e2e_p99_s,
                                           self.error_rate))

    @property
    def any(self) -> bool:
        return any(v is not None for v in self.model_dump().values())


class Search(_Section):
    """`python -m harness search` (harness.load.search): the highest load that meets [slo]."""

    kind: Literal["users", "rate"] = Field(
        "users", description="search: over closed-loop user counts or open-loop request rates")
    start_load: Pos = Field(1.0, description="search: the first load tried (users or requests/s)")
    min_load: Pos = Field(1.0, description="search: never below this load (a miss here: exit 5)")
    max_load: Pos = Field(256.0, description="search: never above this load")
    resolution: Annotated[float, Field(ge=0, le=1)] = Field(
        0.1, description="search: stop when the bracket [last pass, first fail] is at most this fraction "
        "of its lower end wide (users: at least 1 user)")
    max_tries: Annotated[int, Field(gt=0)] = Field(16, description="search: steps tried at most")
    arrival: Arrival = Field("poisson", description="search --kind rate: the arrival process")
    early_stop: bool = Field(
        True, description="search: close a step's window early when TTFT grows steadily within it "
        "(over-saturated, harness.analysis.saturation)")

    @model_validator(mode="after")
    def _range(self) -> Search:
        if not self.min_load <= self.start_load <= self.max_load:
            raise ValueError(f"search needs min_load ≤ start_load ≤ max_load, got {self.min_load:g}, "
                             f"{self.start_load:g}, {self.max_load:g}")
        return self


class RunConfig(_Section):
    name: str = Field("scenario", description="run name (used in the run id)")
    description: str = Field("", description="one line about the scenario")
    target: Target = Target()
    request: Request = Request()
    workload: Workload = Workload()
    steps: Steps = Steps()
    flags: Flags = Flags()
    output: Output = Output()
    telemetry: Telemetry = Telemetry()
    distributed: Distributed = Distributed()
    slo: Slo = Slo()
    search: Search = Search()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value or any(c in value for c in "/\\ "):
            raise ValueError(f"must be non-empty without spaces or slashes, got {value!r}")
        return value

    @model_validator(mode="after")
    def _resolvable(self) -> RunConfig:
        self.plan_steps()  # every window resolves (max_s ≥ min_s, > 0)
        return self

    def plan_steps(self) -> tuple[StepSpec, ...]:
        """The steps with every window resolved (defaults under each step's own table)."""
        out = []
        s, timeout = self.steps, self.request.timeout_s
        for i, entry in enumerate(s.users):
            own = entry if isinstance(entry, Step) else Step(users=entry)
            where = f"steps.users[{i}]" if isinstance(entry, Step) else "steps"
            cap = s.cooldown_max_s if s.cooldown_max_s is not None else timeout + 5.0
            if own.trace is not None:  # the trace's own window, no warm-up (see Step)
                try:
                    meas = own.trace_window(timeout)
                except ValueError as exc:
                    raise ValueError(f"{where}.measure: {exc}") from None
                path, _, mean_rate = own.resolved_trace()
                out.append(StepSpec(
                    users=1, warmup=PhaseRule(), measure=meas, cooldown_max_s=cap, rate=mean_rate,
                    max_concurrency=own.max_concurrency, trace=path, speed=own.speed,
                ))
                continue
            warm = own.warmup.over(s.warmup).resolve(timeout, where + ".warmup")
            meas = own.measure.over(s.measure).resolve(timeout, where + ".measure")
            if meas.max_s <= 0 or math.isnan(meas.max_s):
                raise ValueError(f"{where}.measure: the window must last > 0 s (set min_s or max_s)")
            out.append(StepSpec(
                users=own.users or 1, warmup=warm, measure=meas, cooldown_max_s=cap, rate=own.rate,
                arrival=own.arrival, burstiness=own.burstiness, max_concurrency=own.max_concurrency,
            ))
        return tuple(out)

    def with_run_seed(self) -> RunConfig:
        """This configuration with `workload.seed` drawn when none was given: called once per run
        where the run is resolved (the sweep, a Locust master or local runner), so every process
        of the run builds the same prompts and the manifest records the seed."""
        if self.workload.seed is not None:
            return self
        seed = secrets.randbelow(2**31)
        return self.model_copy(update={"workload": self.workload.model_copy(update={"seed": seed})})

    @property
    def users(self) -> list[int]:
        return [st.users for st in self.plan_steps()]

    @property
    def step_labels(self) -> list[str]:
        """Each step as the report heads it: "16" (users), "20 req/s" or "trace synthetic"."""
        return [st.label for st in self.plan_steps()]

    @property
    def chat(self) -> bool:
        return self.request.api == "chat"
