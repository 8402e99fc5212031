"""`python -m harness <command>`: one module per subcommand, imported lazily.

Lazy imports matter: `emulate` runs asyncio/uvloop and must never import locust (which
monkey-patches with gevent), while `sweep`/`ui` must import locust before docker-py.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "emulate": ("harness.cli.emulate", "run the TGI emulator (HTTP server)"),
    "sweep": ("harness.cli.sweep", "headless sweep through user counts; writes results/<run-id>/"),
    "search": ("harness.cli.search", "highest load meeting the SLOs ([slo]); writes results/<run-id>/"),
    "report": ("harness.cli.report", "recompute a report from a results directory"),
    "collect": ("harness.cli.collect", "merge the records of several hosts' directories, then report"),
    "ui": ("harness.cli.ui", "Locust web UI against the emulator or a TGI URL"),
    "trace-convert": ("harness.cli.trace_convert", "convert a public request trace (Azure CSV) to JSONL"),
}


def usage() -> str:
    lines = ["usage: python -m harness <command> [options]", "", "commands:"]
    lines += [f"  {name:<13} {help_}" for name, (_, help_) in COMMANDS.items()]
    from harness.exitcodes import EPILOG

    return "\n".join(lines) + "\n\n" + EPILOG


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    from harness.report.parquet import plain_rows_process

    plain_rows_process()  # no command hands pyarrow pandas objects: pandas is not imported for it
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
