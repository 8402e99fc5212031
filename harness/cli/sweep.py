"""`python -m harness sweep`: run a configuration's steps and write results/<run-id>/.

Target, in this order: the configuration's `url` (a running server), its `server` (a container
started with docker-py, harness.targets.container), or else the emulator in a subprocess
(`emulator_profile`, ephemeral port), stopped at the end. Every setting of harness.config is a
flag here (`--help`); the run's outputs are `harness.report` on the records and the run log.
"""

from __future__ import annotations

# isort: off
import harness.cli.locust_first  # noqa: F401 - first: gevent monkey-patches sockets before anything else imports them
# isort: on

import argparse
import errno
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from harness import exitcodes
from harness.client.transport import stamp_source
from harness.config.layers import ConfigError, find_scenario, load_config
from harness.config.model import RunConfig
from harness.config.settings import add_arguments, from_namespace
from harness.load.distributed import LOST_WORKER
from harness.load.headers import request_headers
from harness.load.locust import interrupts
from harness.load.manifest import build_manifest, run_id_for
from harness.load.preflight import Preflight, PreflightError, configure_from_server, load_tokenizer_checked
from harness.records import runlog

SWEEP_DESCRIPTION = ("Sweep user counts against a server; write results/<run-id>/. Every setting: "
                     "scenario file < HARNESS_<NAME> < --name.")


def parse(argv: list[str] | None, prog: str = "python -m harness sweep",
          description: str = SWEEP_DESCRIPTION) -> RunConfig:
    ap = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=exitcodes.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--scenario", default=os.environ.get("HARNESS_SCENARIO"),
                    help="scenario TOML file or a shipped name: default, seed (default: built-in defaults)")
    add_arguments(ap)
    args = ap.parse_args(argv)
    path = find_scenario(args.scenario) if args.scenario else None
    return load_config(path, cli=from_namespace(args))


def _with(cfg: RunConfig, section: str, **changes: Any) -> RunConfig:
    return cfg.model_copy(update={section: getattr(cfg, section).model_copy(update=changes)})


def _remove_if_empty(run_dir: Path) -> None:
    try:
        run_dir.rmdir()  # only when empty: a started server's log stays
    except OSError:
        pass


def preflight(cfg: RunConfig, url: str) -> tuple[RunConfig, Preflight]:
    """harness.load.preflight against `url`: the configuration with the API and model it chose."""
    cfg, pre = configure_from_server(cfg, url, os.environ)
    for warning in pre.warnings:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    return cfg, pre


def main(argv: list[str] | None = None, search: Any = None) -> int:
    """`search`: the capacity search's hooks (harness.cli.search.Search), else a plain sweep."""
    try:
        return _main(argv, search)
    except PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("interrupted before the sweep started", file=sys.stderr)
        return exitcodes.TERMINATED if interrupts.terminated() else exitcodes.INTERRUPTED
    except OSError as exc:
        if exc.errno not in _DISK_ERRORS:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: cannot write the results directory{where}: {exc.strerror}", file=sys.stderr)
        return exitcodes.BAD_INPUT


# A results directory that stops taking writes mid-run: full, over quota, remounted read-only.
_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)


def _main(argv: list[str] | None, search: Any = None) -> int:
    interrupts.sigterm_as_interrupt()
    code = _run(argv, search)
    if code == exitcodes.INTERRUPTED and interrupts.terminated():
        return exitcodes.TERMINATED
    return code


def _run(argv: list[str] | None, search: Any = None) -> int:
    try:
        cfg = search.parse(argv) if search else parse(argv)
        cfg = cfg.with_run_seed()  # prompts no earlier run sent, unless --seed is given
        headers = request_headers(cfg.request, os.environ)  # a header that cannot be built: exit 2
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    d = cfg.distributed
    if d.master and d.worker:
        print("error: --master and --worker: a process is one or the other", file=sys.stderr)
        return exitcodes.BAD_INPUT
    if d.master and not d.workers:
        print("error: --master needs --workers N (how many workers to wait for)", file=sys.stderr)
        return exitcodes.BAD_INPUT
    if d.worker:
        from harness.load.locust.cluster import run_worker

        return run_worker(cfg)
    # Before anything starts, the tokenizer's file is found, or exit 2 in one line. It is parsed (0.6
    # CPU-s for Llama 3's) once the target has answered, and never by a master (its workers build the
    # prompts): a run that fails its pre-flight does not pay for it.
    load_tokenizer_checked(cfg.workload.tokenizer, parse=False)
    run_id = cfg.output.run_id or run_id_for(cfg)
    out = cfg.output
    run_dir = Path(out.records_dir) if out.records_dir else Path(out.results_dir) / run_id
    t = cfg.target
    pre: Preflight | None = None
    if t.url:  # a running server: checked before a results directory exists
        cfg, pre = preflight(cfg, t.url)
    try:
        if run_dir.exists() and any(run_dir.iterdir()):
            print(f"error: {run_dir} already exists and is not empty", file=sys.stderr)
            return exitcodes.BAD_INPUT
        run_dir.mkdir(parents=True, exist_ok=True)
        probe_file = run_dir / ".writable"
        probe_file.write_text("")
        probe_file.unlink()
    except OSError as exc:
        print(f"error: cannot write the results directory {run_dir}: {exc.strerror or exc}",
              file=sys.stderr)
        return exitcodes.BAD_INPUT
    cfg = _with(cfg, "output", run_id=run_id, records_dir=str(run_dir))
    server: dict[str, Any] = {}
    emulator = container = neuron = None
    interrupted = False
    storm: str | None = None
    try:
        if t.server:
            from harness.targets.container import ManagedServer
            from harness.targets.servers import ServerConfigError, settings_from_target

            settings = settings_from_target(t)
            problems = settings.validate()
            if problems:
                print("error: server settings: " + "; ".join(problems), file=sys.stderr)
                return exitcodes.BAD_INPUT
            try:
                container = ManagedServer(settings, run_id=run_id, results_dir=run_dir, no_pull=not t.pull,
                                          keep=t.keep_server, headers=headers).start()
            except (ServerConfigError, RuntimeError, OSError) as exc:
                print(f"error: server did not start: {exc}", file=sys.stderr)
                return exitcodes.TARGET_UNUSABLE
            url = container.url
            server = {"kind": t.server, "url": url, "description": f"container {settings.profile}"}
            if settings.profile == "neuronx-tgi" and cfg.telemetry.neuron_monitor and container.container_id:
                from harness.targets.neuron_monitor import ContainerNeuronMonitor

                neuron = ContainerNeuronMonitor(container.client.api, container.container_id, run_dir).start()
        elif t.url:
            url = t.url
            server = {"kind": "url", "url": url, "description": url}
        else:
            from harness.targets.emulator_process import EmulatorProcess

            extra = shlex.split(t.emulator_args)
            if "MAX_BATCH_SIZE" in t.server_env and "--max-batch-size" not in extra:
                extra += ["--max-batch-size", t.server_env["MAX_BATCH_SIZE"]]
            if t.model_id and "--model-id" not in extra:
                extra += ["--model-id", t.model_id]
            print(f"starting the emulator ({t.emulator_profile}) ...", flush=True)
            starting = EmulatorProcess(profile=t.emulator_profile, args=extra)
            try:
                emulator = starting.start()
            except RuntimeError as exc:
                print(f"error: the emulator did not start: {' '.join(str(exc).split())[:300]}",
                      file=sys.stderr)
                _remove_if_empty(run_dir)
                bad_args = starting.proc is not None and starting.proc.returncode == 2  # argparse
                return exitcodes.BAD_INPUT if bad_args else exitcodes.TARGET_UNUSABLE
            url = emulator.url
            server = {"kind": "emulator", "url": url, "profile": t.emulator_profile, "args": extra,
                      "description": f"the emulator ({t.emulator_profile})"}
        if pre is None:
            try:
                cfg, pre = preflight(cfg, url)
            except PreflightError:
                _remove_if_empty(run_dir)
                raise
        if not d.workers:
            try:
                load_tokenizer_checked(cfg.workload.tokenizer)  # a file that does not parse: exit 2
            except PreflightError:
                _remove_if_empty(run_dir)
                raise
        ident = pre.identity
        server.update(info=ident.info, models=ident.models, model_id=ident.model_id,
                      preflight={"api": pre.api, "model_name": pre.model_name, "warnings": pre.warnings})
        manifest = build_manifest(cfg, run_id, server, stamp_source(cfg.request.stamps, url),
                                  source=" ".join(sys.argv[1:]))
        if search:
            manifest["search"] = search.describe(cfg)
        runlog.write_header(run_dir, manifest)
        users = ", ".join(cfg.step_labels)
        print(f"sweep {cfg.name}: {pre.api} on {url} ({ident.model_id or 'model unknown'}), users {users} "
              f"→ {run_dir}", flush=True)
        from harness.load.locust.runner import run_locust

        try:
            started = emulator or container  # a server we started: its death stops the run (exit 4)
            shape = run_locust(cfg, url, run_dir, search.shape() if search else None,
                               target_gone=started.crashed if started else None)
        except RuntimeError as exc:  # workers that never connected
            print(f"error: {exc}", file=sys.stderr)
            return exitcodes.DEGRADED
        interrupted = bool(getattr(shape, "interrupted", False))
        storm = getattr(shape, "storm", None)
        io_error = getattr(shape, "io_error", None)
        if io_error:  # a full disk: the records up to the fault are kept; no report fits beside them
            print(f"error: {io_error}; the run stopped: the records written before are kept, no report "
                  f"(free space, then: python -m harness report {run_dir})", file=sys.stderr)
            return exitcodes.BAD_INPUT
        runlog.write_steps(run_dir, shape.steps_json())
        from harness.load.locust.users import shared

        if shared.prompt_stats:  # the seeds and how much of a prefix any two prompts shared
            runlog.write_end(run_dir, prompts=shared.prompt_stats)
        if interrupted or storm:
            runlog.write_end(run_dir, interrupted=interrupted, stopped=storm)
        if emulator is not None and emulator.crashed() is None:
            from harness.targets.identity import get_json

            runlog.write_end(run_dir, server={"emulator_stats": get_json(url + "/emulator/stats")})
    finally:
        try:  # (a full disk: these facts are lost, the servers are still stopped)
            if neuron is not None:
                runlog.write_end(run_dir, telemetry={"neuron": neuron.stop()})
            elif (run_dir / runlog.RUN_LOG).is_file():
                why = ("disabled ([telemetry] neuron_monitor = false)" if not cfg.telemetry.neuron_monitor
                       else "not collected: neuron-monitor runs only in a started neuronx-tgi container")
                runlog.write_end(run_dir, telemetry={"neuron": {"note": why}})
        except OSError:
            pass
        if emulator is not None:
            emulator.stop()
        if container is not None:
            container.stop()
            try:
                runlog.write_end(run_dir, server={"container": container.manifest()})
            except OSError:
                pass

    from harness.report.build import build_report, markdown_table

    if d.workers and d.worker_records == "local":
        print("the workers kept their records (--worker-records local): merge their directories with "
              f"python -m harness collect MERGED {run_dir} WORKER_DIR... (it builds the report)", flush=True)

    reports, _ = build_report(run_dir, with_plots=cfg.output.plots)
    print()
    print(markdown_table(reports))
    print(f"\nreport: {run_dir / 'report.html'}")
    if search:
        return search.finish(run_dir, reports, storm=storm, interrupted=interrupted)
    if storm:
        print(f"error: stopped early: {storm}", file=sys.stderr)
        return exitcodes.TARGET_UNUSABLE
    if interrupted:
        return exitcodes.INTERRUPTED
    if any(f.startswith(LOST_WORKER) for r in reports for f in r.flags):
        print("degraded: a worker was lost during the run (exit code 3)", file=sys.stderr)
        return exitcodes.DEGRADED
    if cfg.output.strict:
        return exitcodes.for_flags([f for r in reports for f in r.flags])
    return exitcodes.OK
