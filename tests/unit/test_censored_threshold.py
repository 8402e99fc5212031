"""`[flags] max_censored_fraction`: a step is flagged *censored* only when more than that fraction
of the requests sent in its window were still open at the close, and such a step makes `--strict`
exit 3 (degraded); at the default 0 any censored request flags the step, as before."""

from __future__ import annotations

import pytest
from support.records import make_record

from harness import exitcodes
from harness.analysis import metrics
from harness.analysis.attribution import Window
from harness.config.layers import ConfigError, load_config
from harness.config.model import Flags
from harness.report.flags import step_flags
from harness.report.inputs import StepInfo


def _flags_for(censored: int, sent: int, flags: Flags) -> list[str]:
    measured = [make_record(i) for i in range(sent - censored)]
    open_at_close = [make_record(1000 + i, error_type="cancelled", token_us=()) for i in range(censored)]
    m = metrics.step_metrics(0, 1, measured, measured, Window(0, 100), None, censored=open_at_close)
    assert m.sent == sent and m.censored == censored
    return step_flags(StepInfo(step=0, users=1, window=Window(0, 100)), m, flags)


@pytest.mark.parametrize("censored, threshold, flagged", [
    (1, 0.0, True),      # the default: any censored request
    (0, 0.0, False),
    (5, 0.1, False),     # 5 of 100 = 5 % ≤ 10 %
    (10, 0.1, False),    # exactly at the threshold: not over it
    (11, 0.1, True),     # 11 % > 10 %
    (100, 0.99, True),
])
def test_censored_is_flagged_over_the_threshold(censored: int, threshold: float, flagged: bool) -> None:
    flags = _flags_for(censored, 100, Flags(max_censored_fraction=threshold))
    hit = [f for f in flags if f.startswith("censored")]
    assert bool(hit) == flagged, flags
    code = exitcodes.for_flags(flags)
    if flagged:
        assert hit == [f"censored ({censored} of 100 still open at the close)"]
        assert code == exitcodes.DEGRADED  # --strict: degraded, not merely thresholds missed
    else:
        assert code == exitcodes.OK


def test_threshold_is_a_fraction_from_the_scenario_env_or_flag(tmp_path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("[flags]\nmax_censored_fraction = 0.05\n")
    assert load_config(path).flags.max_censored_fraction == 0.05
    env = {"HARNESS_MAX_CENSORED_FRACTION": "0.2"}
    assert load_config(path, environ=env).flags.max_censored_fraction == 0.2
    for bad in ("1.5", "-0.1", "nan"):
        with pytest.raises(ConfigError, match="max_censored_fraction"):
            load_config(None, environ={"HARNESS_MAX_CENSORED_FRACTION": bad})
