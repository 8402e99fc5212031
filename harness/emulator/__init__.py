"""TGI emulator: an HTTP server speaking TGI's API with timing from a model of TGI's scheduler.

Run: `python -m harness emulate [--profile NAME] [--port N] ...` (see harness/cli/emulate.py);
tests use `harness.targets.emulator_process.EmulatorProcess`.

Modules: profiles (timing presets), engine (pure model of TGI's batching scheduler, clock
injected), app (ServerConfig, App: config, tokenizer tables, engine; `serve`), http (HTTP/1.1
parsing, the asyncio Protocol `Conn`), routes (routing, validation, the non-streaming routes),
stream (`Gen`: one request's events and endings), scheduler (the timerfd, lanes and release heap:
the per-token hot loop), wire (TGI byte formats), corpus (output tokens), faults (fault/timing
header grammar), metrics (lateness + Prometheus), loadgen (asyncio client for benches and
calibration).

Per-request headers (one server can serve many tests):

  X-Emulator-Fault: error=<generation|incomplete_generation|overloaded|validation>[;after=<k>]
  X-Emulator-Fault: disconnect=<k>              drop the connection after k tokens
  X-Emulator-Fault: stall_ms=<ms>[;after=<k>]   pause the stream <ms> after token k (default 1)
  X-Emulator-Fault: malformed=<k>               k-th token event carries truncated JSON
  X-Emulator-Timing: ttft_ms=<ms>;itl_ms=<ms>   own exact clock for this request, any profile

Emulator-only routes: GET /emulator/stats (lateness of token writes vs their deadlines, counters),
POST /emulator/reset (zero them), GET /emulator/config, POST /emulator/faults (the server-wide
faults of the flags, set at run time: harness.emulator.faults).
"""
