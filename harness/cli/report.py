"""`python -m harness report DIR`: rebuild every report file of a run from its records and run log."""

from __future__ import annotations

from harness.report.build import main

__all__ = ["main"]
