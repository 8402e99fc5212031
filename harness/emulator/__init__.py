"""TGI emulator: an HTTP server speaking TGI's API with timing from a model of TGI's scheduler.

Run: `python -m harness emulate [--profile NAME] [--port N] ...` (see cli.py); tests use
`harness.targets.emulator_process.EmulatorProcess`.

Modules: profiles (timing presets), engine (pure scheduler model, clock injected), server (raw
asyncio HTTP/1.1), wire (TGI byte formats), corpus (output tokens), faults (fault/timing header
grammar), metrics (lateness + Prometheus), testing (subprocess fixture).

Per-request headers (one server can serve many tests):

  X-Emulator-Fault: error=<generation|incomplete_generation|overloaded|validation>[;after=<k>]
  X-Emulator-Fault: disconnect=<k>              drop the connection after k tokens
  X-Emulator-Fault: stall_ms=<ms>[;after=<k>]   pause the stream <ms> after token k (default 1)
  X-Emulator-Fault: malformed=<k>               k-th token event carries truncated JSON
  X-Emulator-Timing: ttft_ms=<ms>;itl_ms=<ms>   own exact clock for this request, any profile

Emulator-only routes: GET /emulator/stats (lateness of token writes vs their deadlines, counters),
POST /emulator/reset (zero them), GET /emulator/config.
"""
