"""Fault injection, per request (headers) or for a share of all requests (flags).

Header grammar (case-insensitive keys, `;`-separated `key=value`, whitespace ignored):

  X-Emulator-Fault: error=<type>[;after=<k>]   error instead of token k+1 (default k=0).
                       <type>: generation | incomplete_generation | overloaded | validation.
                       overloaded/validation are answered at once (no tokens, as TGI would);
                       generation/incomplete_generation at the time token k+1 would be sent.
                       Stream: HTTP 200 + `data:{"error":..,"error_type":..}`; non-stream: 424/500/429/422.
  X-Emulator-Fault: disconnect=<k>             close the TCP connection after k tokens (no final chunk).
  X-Emulator-Fault: stall_ms=<ms>[;after=<k>]  after k tokens (default 1) hold the stream for <ms>.
  X-Emulator-Fault: malformed=<k>              the k-th token event carries truncated JSON.
  X-Emulator-Fault: tokens_per_event=<k>       one SSE event per k generated tokens (as speculative or
                       multi-step decoding servers send): the event of every k-th token (and the final
                       one) stands for the tokens since the previous event; details / usage still
                       count every token.
  Several may be combined: `stall_ms=500;after=2;malformed=5`.

Server-wide faults of the routes themselves (`ServerFaults`, flags of `python -m harness emulate`):
  --unhealthy             /health answers 503 (a server that never becomes healthy).
  --openai-only           /info, /generate, /generate_stream and / answer 404 (vLLM, llama.cpp).
  --http-status CODE      generation routes answer CODE (422/424/429/500/503 ...), with TGI's JSON
                          body or none (--no-http-body), and `Retry-After` (--retry-after S).
  --hang                  generation routes read the request and never answer.
  --faults-after N        the two above (and --fault/--error-rate) apply from request N+1 on, so a
                          pre-flight request passes and the run meets the fault.
  POST /emulator/faults   the same at run time, as JSON (`ServerFaults.from_json`; `after` counts
                          from that moment): one server serves several fault tests in turn.

  X-Emulator-Timing: ttft_ms=<ms>;itl_ms=<ms>   this request runs on its own exact clock (first token
                       ttft_ms after arrival, then one every itl_ms), whatever the profile.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

ERROR_TYPES = ("generation", "incomplete_generation", "overloaded", "validation")


@dataclass(frozen=True)
class Fault:
    error: str | None = None
    after: int | None = None
    disconnect: int | None = None
    stall_ms: float = 0.0
    malformed: int | None = None
    tokens_per_event: int = 1

    @property
    def error_after(self) -> int:
        return self.after or 0

    @property
    def stall_after(self) -> int:
        return 1 if self.after is None else self.after

    @property
    def immediate_error(self) -> bool:
        return self.error in ("overloaded", "validation")


def _pairs(spec: str) -> dict[str, str]:
    out = {}
    for part in spec.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"expected key=value, got {part!r}")
        out[key.strip().lower()] = value.strip()
    return out


def parse_fault(spec: str) -> Fault:
    """Parse the X-Emulator-Fault grammar; raises ValueError with a readable message."""
    kv = _pairs(spec)
    known = {"error", "after", "disconnect", "stall_ms", "malformed", "tokens_per_event"}
    unknown = set(kv) - known
    if unknown:
        raise ValueError(f"unknown fault keys {sorted(unknown)}; known: {sorted(known)}")
    error = kv.get("error")
    if error is not None and error not in ERROR_TYPES:
        raise ValueError(f"error must be one of {ERROR_TYPES}, got {error!r}")
    try:
        return Fault(
            error=error,
            after=int(kv["after"]) if "after" in kv else None,
            disconnect=int(kv["disconnect"]) if "disconnect" in kv else None,
            stall_ms=float(kv.get("stall_ms", 0)),
            malformed=int(kv["malformed"]) if "malformed" in kv else None,
            tokens_per_event=max(1, int(kv.get("tokens_per_event", 1))),
        )
    except ValueError as exc:
        raise ValueError(f"bad fault value in {spec!r}: {exc}") from None


def parse_timing(spec: str) -> tuple[float, float]:
    """Parse X-Emulator-Timing → (ttft_s, itl_s)."""
    kv = _pairs(spec)
    unknown = set(kv) - {"ttft_ms", "itl_ms"}
    if unknown:
        raise ValueError(f"unknown timing keys {sorted(unknown)}; known: ['itl_ms', 'ttft_ms']")
    try:
        ttft, itl = float(kv.get("ttft_ms", 0)), float(kv.get("itl_ms", 0))
    except ValueError as exc:
        raise ValueError(f"bad timing value in {spec!r}: {exc}") from None
    if ttft < 0 or itl < 0:
        raise ValueError("ttft_ms and itl_ms must be >= 0")
    return ttft / 1000.0, itl / 1000.0


@dataclass
class FaultPolicy:
    """Server-wide faults from flags: `faults` applied to a share `fault_rate` of requests, plus
    `error_rate` generation-type errors at a random token position.

    Several faults (`--fault` given more than once) take turns: the faulted requests cycle through
    them in order, so one emulator shows every kind in one run (the fault tests start one server,
    not one per kind)."""

    faults: tuple[Fault, ...] = ()
    fault_rate: float = 1.0
    error_rate: float = 0.0
    error_type: str = "generation"
    drawn: int = field(default=0, init=False, compare=False)  # faulted requests so far (the turn)

    def draw(self, rng: random.Random, n_tokens: int) -> Fault | None:
        if self.error_rate > 0 and rng.random() < self.error_rate:
            return Fault(error=self.error_type, after=rng.randrange(max(1, n_tokens)))
        if self.faults and (self.fault_rate >= 1 or rng.random() < self.fault_rate):
            fault = self.faults[self.drawn % len(self.faults)]
            self.drawn += 1
            return fault
        return None


@dataclass(frozen=True)
class ServerFaults:
    """Faults of the routes (module docstring), for the fault tests of the load generator."""

    unhealthy: bool = False
    openai_only: bool = False
    http_status: int | None = None
    http_body: bool = True
    retry_after: str | None = None
    hang: bool = False
    after: int = 0

    @classmethod
    def from_json(cls, obj: object, generation_requests: int) -> ServerFaults:
        """POST /emulator/faults' body: the flags' settings (absent ones at their defaults), with
        `after` counted from now (`generation_requests` so far); ValueError names a bad key."""
        if not isinstance(obj, dict):
            raise ValueError("expected a JSON object")
        kinds = {"unhealthy": bool, "openai_only": bool, "http_status": int, "http_body": bool,
                 "retry_after": str, "hang": bool, "after": int}
        unknown = set(obj) - set(kinds)
        if unknown:
            raise ValueError(f"unknown server fault keys {sorted(unknown)}; known: {sorted(kinds)}")
        for key, value in obj.items():
            if not (value is None and key in ("http_status", "retry_after")) and (
                    type(value) is not kinds[key]):
                raise ValueError(f"{key} must be {kinds[key].__name__}, got {value!r}")
        return cls(**{**obj, "after": generation_requests + obj.get("after", 0)})

    def active(self, generation_requests: int) -> bool:
        """Whether the per-request faults apply to the generation request numbered so (1-based)."""
        return generation_requests > self.after
