"""The exit codes of every command (`sweep`, `ui`, `report`, plain `locust -f` runs), in one table.

CI gates on them, so they are few and each means one thing; `--help` prints `EPILOG` and
docs/reliability.md holds the same table. Pure: no I/O.
"""

from __future__ import annotations

OK = 0  # the run completed, nothing failed
THRESHOLDS = 1  # thresholds or SLOs missed (a flagged step with --strict)
BAD_INPUT = 2  # configuration, flags, environment, tokenizer, results directory (unwritable, full)
DEGRADED = 3  # measured, but not to be trusted: client-bound, lost worker, censored, nothing measured
TARGET_UNUSABLE = 4  # unreachable, unhealthy, wrong API, every request failing, crashed mid-run
SLO_UNMET = 5  # `search`: no load met the SLOs, not even the lowest one tried
INTERRUPTED = 130  # Ctrl-C (SIGINT)
TERMINATED = 143  # SIGTERM

TABLE: tuple[tuple[int, str], ...] = (
    (OK, "clean run"),
    (THRESHOLDS, "thresholds or SLOs missed"),
    (BAD_INPUT, "bad input: configuration, flags, environment, tokenizer, results directory "
                "(unwritable, or full mid-run)"),
    (DEGRADED, "degraded: client-bound, lost worker, censored over max_censored_fraction, nothing measured"),
    (TARGET_UNUSABLE, "target unusable: unreachable, unhealthy, wrong API, error storm, no response, "
                      "crashed mid-run"),
    (SLO_UNMET, "search: the SLOs were missed even at the lowest load tried"),
    (INTERRUPTED, "interrupted (Ctrl-C); the report is written from what was recorded"),
    (TERMINATED, "terminated (SIGTERM); the report is written from what was recorded"),
)

EPILOG = "exit codes:\n" + "\n".join(f"  {code:<4} {text}" for code, text in TABLE)


CLIENT_BOUND = "client-bound"  # the report's flag (harness.report.flags) that means "degraded"
# The report's flags whose step was measured but must not be trusted: the client was the bottleneck,
# requests sent in the window were still open at the cool-down's cap (the slowest ones are missing
# from the latencies), or no request of the window was measured at all.
DEGRADING_FLAGS = (CLIENT_BOUND, "censored", "nothing measured")


def for_flags(flags: list[str]) -> int:
    """`--strict`: the exit code for the report's step flags (OK when there are none)."""
    if any(f.startswith(DEGRADING_FLAGS) for f in flags):
        return DEGRADED
    return THRESHOLDS if flags else OK


def describe(code: int) -> str:
    """The table's line for `code` ("unknown exit code N" for any other)."""
    for known, text in TABLE:
        if known == code:
            return text
    return f"unknown exit code {code}"


def markdown_table() -> str:
    """The table as docs/reliability.md shows it (a unit test compares the two)."""
    rows = ["| exit code | meaning |", "|---|---|"]
    rows += [f"| {code} | {text} |" for code, text in TABLE]
    return "\n".join(rows)
