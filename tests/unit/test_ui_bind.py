"""The web UI binds loopback unless a login is set: it starts load against a server."""

from __future__ import annotations

import pytest

from harness import exitcodes
from harness.cli import ui


def test_loopback_is_accepted() -> None:
    for host in ("127.0.0.1", "localhost", "::1"):
        assert ui.web_host_problem(host, []) is None


@pytest.mark.parametrize("host,extra", [
    ("0.0.0.0", []), ("10.0.0.5", []), ("127.0.0.1", ["--web-host", "0.0.0.0"]),
    ("127.0.0.1", ["--web-host=*"]),
])
def test_any_other_address_is_refused_in_one_line(host: str, extra: list[str],
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_WEB_AUTH", raising=False)  # without a login
    assert ui.main(["--web-host", host, "--", *extra]) == exitcodes.BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SSH tunnel" in err
