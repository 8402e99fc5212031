"""Options: one definition for Locust's parser (env vars, web UI) and plain argparse (the sweep)."""

from __future__ import annotations

import argparse

import configargparse
import pytest

from harness.load.options import HarnessOptions, add_arguments


def test_plain_argparse_defaults_and_values():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    opts = HarnessOptions.from_namespace(parser.parse_args([]))
    assert opts == HarnessOptions()
    ns = parser.parse_args(["--api", "chat", "--input-tokens-stddev", "0", "--ignore-eos", "--model", "m"])
    opts = HarnessOptions.from_namespace(ns)
    assert (opts.api, opts.input_tokens_stddev, opts.ignore_eos, opts.model) == ("chat", 0, True, "m")
    assert opts.prompt_spec().input_stddev == 0 and opts.prompt_spec().size == 1000
    with pytest.raises(SystemExit):
        parser.parse_args(["--api", "nope"])
    assert opts.stamps == "kernel"
    assert HarnessOptions.from_namespace(parser.parse_args(["--stamps", "recv"])).stamps == "recv"
    with pytest.raises(SystemExit):
        parser.parse_args(["--stamps", "wall"])


def test_env_vars_with_configargparse(monkeypatch):
    parser = configargparse.ArgumentParser()
    add_arguments(parser)
    monkeypatch.setenv("LOCUST_OUTPUT_TOKENS_MEAN", "64")
    monkeypatch.setenv("LOCUST_RECORDS_DIR", "/tmp/x")
    opts = HarnessOptions.from_namespace(parser.parse_args([]))
    assert (opts.output_tokens_mean, opts.records_dir) == (64, "/tmp/x")


def test_missing_namespace_means_defaults():
    assert HarnessOptions.from_namespace(None) == HarnessOptions()
    assert HarnessOptions.from_namespace(argparse.Namespace(seed=3)).seed == 3


def test_request_headers(monkeypatch):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    ns = parser.parse_args(["--header", "X-A: 1", "--header", "X-B:two words ", "--bearer-token-env", "TOK"])
    opts = HarnessOptions.from_namespace(ns)
    assert opts.headers == ("X-A: 1", "X-B:two words ") and opts.bearer_token_env == "TOK"
    expected = {"X-A": "1", "X-B": "two words", "Authorization": "Bearer abc"}
    assert opts.request_headers({"TOK": "abc"}) == expected
    with pytest.raises(ValueError, match="TOK"):
        opts.request_headers({})  # named but unset: fail, never send an empty token
    assert HarnessOptions().request_headers({"TOK": "abc"}) == {}
    for bad in ("no colon", ": empty name", "X-C: a\r\nX-D: b", "Bad Name: x", "Content-Length: 5",
                "transfer-encoding: chunked", "X-E: \u20ac"):
        with pytest.raises(ValueError):
            HarnessOptions(headers=(bad,)).request_headers({})
    # names are case-insensitive: the last one given wins, and the token replaces any Authorization
    opts = HarnessOptions(headers=("x-a: 1", "X-A: 2", "authorization: Basic x"), bearer_token_env="T")
    assert opts.request_headers({"T": "t"}) == {"X-A": "2", "Authorization": "Bearer t"}
