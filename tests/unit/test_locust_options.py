"""Locust's options for the users are derived from the configuration model, and every Locust mode
(plain, web UI, master, worker) resolves the same configuration.

Runs in a child interpreter: harness.load.locust imports locust, which gevent-patches the process
and must come before ssl/urllib3 — which other test modules in this process have imported already.
"""

from __future__ import annotations

from support.child import run_ok

CHILD = r"""
import os, types
from locust import events
from locust.argument_parser import get_parser
from harness.config.settings import settings
from harness.load.locust.listeners import LOCUST_OWN, LOCUST_ROLE, register, resolve_config
from harness.load.locust.users import prompt_spec, run_dir

register(events)
parser = get_parser(default_config_files=[])
flags = {a for action in parser._actions for a in action.option_strings}
missing = [s.flag for s in settings() if s.name not in LOCUST_OWN + LOCUST_ROLE and s.flag not in flags]
assert not missing, missing
# the role of a plain locustfile run is Locust's own --master/--worker/--master-host/--master-port
assert {"--master", "--worker", "--master-host", "--master-port", "--worker-records"} <= flags
assert "--scenario" in flags and "--input-tokens-mean" not in flags  # one name: the model's


def env_for(argv, host=None):
    return types.SimpleNamespace(parsed_options=parser.parse_args(argv), host=host, runner=None)


# Bug: users ran their own defaults (output 150±10) instead of the scenario's workload.
cfg = resolve_config(env_for(["--scenario", "default"], host="http://127.0.0.1:9"))
assert cfg.workload.output_stddev == 0 and prompt_spec(cfg).output_stddev == 0
assert cfg.target.url == "http://127.0.0.1:9" and cfg.users == [1, 2, 4, 8, 16]
assert resolve_config(env_for([])).workload.output_stddev == 0  # no scenario: the model's default
assert str(run_dir(cfg)).startswith("results/") and cfg.output.run_id.endswith("-default")

# HARNESS_* variables are the options' variables (one name in all three layers)
os.environ["HARNESS_OUTPUT_MEAN"] = "64"
cfg = resolve_config(env_for(["--scenario", "default", "--input-mean", "99", "--input-stddev", "20",
                                  "--records-dir", "/tmp/x"]))
assert (cfg.workload.output_mean, cfg.workload.input_mean, str(run_dir(cfg))) == (64, 99, "/tmp/x")

# A worker uses the master's resolved configuration, sent as a custom option with each spawn.
master = env_for(["--scenario", "seed"])
given = resolve_config(master)
worker = env_for(["--input-mean", "7"])
worker.parsed_options.harness_config = given.model_dump_json()
assert resolve_config(worker) == given

# The web form sends every custom field; an empty one (no default, e.g. --ignore-eos) is not given.
form = env_for(["--scenario", "default"])
form.parsed_options.ignore_eos = ""
form.parsed_options.input_mean = 123
form.parsed_options.input_stddev = 20  # no wider than the mean (harness.config.model)
cfg = resolve_config(form)
assert cfg.request.ignore_eos == resolve_config(env_for(["--scenario", "default"])).request.ignore_eos
assert cfg.workload.input_mean == 123
print("OK")
"""


def test_options_derive_from_the_model_and_every_mode_reads_the_same_config():
    run_ok(CHILD)
