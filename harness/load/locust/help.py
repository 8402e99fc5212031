"""`locust -f locustfiles/<any>.py --help` lists the project's options.

Why they were missing: Locust handles `--help` *before* it imports the locustfile
(`locust.argument_parser.parse_locustfile_option` prints the help of a parser built while only
Locust's own listeners exist; upstream issue locustio/locust#2917), so the options a locustfile
adds through `init_command_line_parser` never reach that help — whatever the locustfile does.

The fix runs before Locust's `main`: the one-line `tgi_loadtest_locust_help.pth` in the venv's
site-packages (written by `make venv`, or `python -m harness.load.locust.help --install`) calls
`add_before_help()` at interpreter start when the command line holds -h/--help. It does nothing
unless the program is Locust and a `-f` file hooks this suite (mentions `harness.load.locust`);
then it registers the suite's options on Locust's events, so the help Locust prints lists them.
Nothing here is imported otherwise (no side effects at import: Locust is imported inside).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

PTH_NAME = "tgi_loadtest_locust_help.pth"
PTH_LINE = (
    'import sys; exec("try:\\n import harness.load.locust.help as _h; _h.add_before_help()\\n'
    'except Exception:\\n pass") if ("-h" in sys.argv or "--help" in sys.argv) else None\n'
)
MARK = "harness.load.locust"


def is_locust(argv: Sequence[str], orig_argv: Sequence[str]) -> bool:
    """The command is Locust's (`locust ...` or `python -m locust ...`)."""
    if argv and os.path.basename(argv[0]) == "locust":
        return True
    args = list(orig_argv)
    return any(a == "-m" and i + 1 < len(args) and args[i + 1] == "locust" for i, a in enumerate(args))


def locustfiles(argv: Sequence[str], env: dict[str, str]) -> list[str]:
    """The -f/--locustfile values on the command line (else LOCUST_LOCUSTFILE, else locustfile.py)."""
    out: list[str] = []
    args = list(argv)
    for i, a in enumerate(args):
        if a in ("-f", "--locustfile") and i + 1 < len(args):
            out += args[i + 1].split(",")
        elif a.startswith("--locustfile="):
            out += a.split("=", 1)[1].split(",")
        elif a.startswith("-f") and len(a) > 2 and not a.startswith("--"):
            out += a[2:].split(",")
    if not out:
        out = env.get("LOCUST_LOCUSTFILE", "locustfile.py").split(",")
    return [p.strip() for p in out if p.strip()]


def hooks_suite(paths: Sequence[str]) -> bool:
    """Any of these locustfiles hooks this suite into Locust."""
    for p in paths:
        path = Path(p if p.endswith(".py") or Path(p).exists() else p + ".py")
        try:
            if MARK in path.read_text(encoding="utf-8", errors="replace"):
                return True
        except OSError:
            continue
    return False


def add_before_help() -> None:
    """Register the suite's options on Locust's events, for a `locust ... --help` of our locustfiles."""
    argv = list(getattr(sys, "argv", []) or [])
    if not ("-h" in argv or "--help" in argv) or not is_locust(argv, getattr(sys, "orig_argv", argv)):
        return
    if not hooks_suite(locustfiles(argv[1:], dict(os.environ))):
        return
    from locust import events

    from harness.load.locust.listeners import register

    register(events)


def install(site_packages: str | None = None) -> Path:
    """Write the .pth into this interpreter's site-packages (what `make venv` runs)."""
    import sysconfig

    target = Path(site_packages or sysconfig.get_paths()["purelib"]) / PTH_NAME
    target.write_text(PTH_LINE)
    return target


if __name__ == "__main__":
    if sys.argv[1:] == ["--install"]:
        print(install())
    else:
        print(f"usage: python -m {__spec__.name if __spec__ else 'harness.load.locust.help'} --install")
