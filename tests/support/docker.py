"""What the docker tier shares: the locally built emulator image, a fake HF token that must never
leak into results, and the label the harness puts on its containers."""

from __future__ import annotations

from pathlib import Path

import harness

EMULATOR_IMAGE = f"tgi-loadtest/emulator:{harness.__version__}"
SECRET = "hf_DOCKERTESTsecret0123456789abcdef"
LABEL_RUN_ID = "tgi-loadtest.run-id"


def assert_no_secret(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), f"HF token leaked into {path}"

