"""`python -m harness emulate`: run the TGI emulator, configured like the real container.

Precedence: profile preset < environment (MODEL_ID, PORT, MAX_BATCH_SIZE, MAX_INPUT_TOKENS or
legacy MAX_INPUT_LENGTH, MAX_TOTAL_TOKENS, MAX_CONCURRENT_REQUESTS, HF_NUM_CORES,
HF_AUTO_CAST_TYPE) < flags. Prints exactly one line `READY http://HOST:PORT` once listening.

SIGTERM or SIGINT end it with status 0 at any point, start-up included (loading the tokenizer
takes seconds; --startup-delay-s may hold it for minutes): orchestrators stop containers that
are still loading. On stderr, `emulate: loading tokenizer ...` says the handlers are in place.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from harness.emulator.faults import ERROR_TYPES, FaultPolicy, ServerFaults, parse_fault
from harness.emulator.profiles import PROFILES, get_profile


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m harness emulate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="inf2-xlarge-llama3-8b", choices=sorted(PROFILES))
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=None, help="0 = ephemeral; default $PORT or 8080")
    ap.add_argument("--tokenizer", default=None, help="Hub id or path; default: bundled Llama 3")
    ap.add_argument("--model-id", default=None, help="reported model id (default $MODEL_ID or profile's)")
    ap.add_argument("--max-batch-size", type=int, default=None)
    ap.add_argument("--max-input-tokens", type=int, default=None)
    ap.add_argument("--max-total-tokens", type=int, default=None)
    ap.add_argument("--max-concurrent-requests", type=int, default=None)
    ap.add_argument("--ttft-ms", type=float, default=None, help="exact profile: time to first token")
    ap.add_argument("--itl-ms", type=float, default=None, help="exact profile: time between tokens")
    ap.add_argument("--eos-probability", type=float, default=0.0,
                    help="per-token chance of stopping early at EOS (default 0: always max_new_tokens)")
    ap.add_argument("--startup-delay-s", type=float, default=0.0,
                    help="refuse connections this long before listening (model loading)")
    ap.add_argument("--fault", action="append", default=[],
                    help="X-Emulator-Fault spec applied to --fault-rate of requests; given more than once, "
                         "the faulted requests take the specs in turn")
    ap.add_argument("--fault-rate", type=float, default=1.0)
    ap.add_argument("--error-rate", type=float, default=0.0,
                    help="share of requests failing at a random token with --error-type")
    ap.add_argument("--error-type", default="generation", choices=ERROR_TYPES)
    ap.add_argument("--unhealthy", action="store_true", help="fault: /health answers 503")
    ap.add_argument("--openai-only", action="store_true",
                    help="fault: /info, /generate, /generate_stream and / answer 404 (an OpenAI-only server)")
    ap.add_argument("--http-status", type=int, default=None,
                    help="fault: generation routes answer this HTTP status (e.g. 422, 424, 429, 500, 503)")
    ap.add_argument("--no-http-body", action="store_true", help="fault: --http-status without a body")
    ap.add_argument("--retry-after", default=None, help="fault: Retry-After header of --http-status")
    ap.add_argument("--hang", action="store_true", help="fault: generation routes never answer")
    ap.add_argument("--faults-after", type=int, default=0,
                    help="the faults above and --fault/--error-rate apply from generation request N+1 on")
    ap.add_argument("--seed", type=int, default=0, help="seed for corpus offsets, EOS and fault draws")
    ap.add_argument("--sse-keepalive-s", type=float, default=15.0, help="`:` comment after this silence")
    ap.add_argument("--no-uvloop", action="store_true", help="use the stdlib asyncio loop")
    return ap


def _env_int(env: dict, *names: str) -> int | None:
    for name in names:
        value = env.get(name)
        if value:
            return int(value)
    return None


def make_config(args: argparse.Namespace, env: dict | None = None):  # noqa: ANN201 - ServerConfig
    """Resolve preset < env < flags into a ServerConfig (pure: testable without a server)."""
    from harness.emulator.app import ServerConfig

    env = os.environ if env is None else env
    profile = get_profile(args.profile)
    changes: dict = {}

    def pick(flag: object, *env_names: str) -> int | None:
        return flag if flag is not None else _env_int(env, *env_names)

    for field_, flag, names in [
        ("max_batch_size", args.max_batch_size, ("MAX_BATCH_SIZE",)),
        ("max_input_tokens", args.max_input_tokens, ("MAX_INPUT_TOKENS", "MAX_INPUT_LENGTH")),
        ("max_total_tokens", args.max_total_tokens, ("MAX_TOTAL_TOKENS",)),
        ("max_concurrent_requests", args.max_concurrent_requests, ("MAX_CONCURRENT_REQUESTS",)),
    ]:
        value = pick(flag, *names)
        if value is not None:
            changes[field_] = value
    model_id = args.model_id or env.get("MODEL_ID")
    if model_id:
        changes["model_id"] = model_id
    if args.ttft_ms is not None:
        changes["ttft_ms"] = args.ttft_ms
    if args.itl_ms is not None:
        changes["itl_ms"] = args.itl_ms
    profile = profile.replace(**changes)
    errors = profile.validate()
    if errors:
        raise ValueError("; ".join(errors))
    port = args.port if args.port is not None else (_env_int(env, "PORT") or 8080)
    faults = tuple(parse_fault(spec) for spec in args.fault)
    extra = {k: env[k] for k in ("HF_NUM_CORES", "HF_AUTO_CAST_TYPE") if env.get(k)}
    return ServerConfig(
        profile=profile,
        host=args.host,
        port=port,
        tokenizer=args.tokenizer,
        eos_probability=args.eos_probability,
        startup_delay_s=args.startup_delay_s,
        faults=FaultPolicy(faults=faults, fault_rate=args.fault_rate, error_rate=args.error_rate,
                           error_type=args.error_type),
        server_faults=ServerFaults(
            unhealthy=args.unhealthy, openai_only=args.openai_only, http_status=args.http_status,
            http_body=not args.no_http_body, retry_after=args.retry_after, hang=args.hang,
            after=args.faults_after,
        ),
        seed=args.seed,
        keepalive_s=args.sse_keepalive_s,
        extra_info=extra,
    )


def raise_fd_limit() -> None:
    """One socket per stream: 1000+ concurrent streams need more than the usual 1024 fds."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


class _Stopped(BaseException):
    """SIGTERM/SIGINT during start-up, before the event loop took the signals over.

    A BaseException, like KeyboardInterrupt, so that no `except Exception` in the tokenizer's
    import and load code swallows it."""


def _stop_start_up(signum: int, frame: object) -> None:
    raise _Stopped(signum)


def main(argv: list[str]) -> int:
    # First of all, so a stop request during the slow start-up is never lost nor left to the
    # default action (killed by SIGTERM: status -15). SIGINT is set explicitly, not assumed: a
    # parent started from a background shell passes SIGINT on ignored (SIG_IGN survives exec).
    previous = {sig: signal.signal(sig, _stop_start_up) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _main(argv)
    except (_Stopped, KeyboardInterrupt):  # the latter: SIGINT as asyncio.run hands the signal back
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = make_config(args)
    except ValueError as exc:
        print(f"emulate: {exc}", file=sys.stderr)
        return 2
    print(f"emulate: loading tokenizer {cfg.tokenizer or '(bundled)'}", file=sys.stderr, flush=True)
    from harness.emulator.app import serve
    from harness.workload.tokenizer import load_tokenizer

    try:
        tokenizer = load_tokenizer(cfg.tokenizer)
    except RuntimeError as exc:
        print(f"emulate: {exc}", file=sys.stderr)
        return 2
    raise_fd_limit()
    if not args.no_uvloop:
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            pass

    def ready(host: str, port: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        print(f"READY http://{shown}:{port}", flush=True)

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):  # from here on the loop handles them: stop.set
            loop.add_signal_handler(sig, stop.set)
        if cfg.startup_delay_s > 0:
            print(f"emulate: start-up delay {cfg.startup_delay_s:g} s, refusing connections",
                  file=sys.stderr, flush=True)
        return await serve(cfg, tokenizer, ready=ready, stop=stop)

    return asyncio.run(run())
