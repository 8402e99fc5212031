"""Prompts: exact server-side token counts, seeded, llmperf-like distributions."""

from __future__ import annotations

import random
import statistics

import pytest

from harness.workload.prompts import PromptBuilder, PromptPool, PromptSpec, build_pool
from harness.workload.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.fixture(scope="module")
def builders(tok):
    return {False: PromptBuilder(tok, chat=False), True: PromptBuilder(tok, chat=True)}


@pytest.mark.parametrize("chat", [False, True])
def test_counts_are_exact_as_the_server_counts(tok, builders, chat):
    prompts = builders[chat].build(PromptSpec(size=60, seed=3))
    for p in prompts:
        assert p.input_tokens == p.target_tokens
        if chat:
            assert tok.count_chat([{"role": "user", "content": p.text}]) == p.input_tokens
        else:
            assert tok.count(p.text) == p.input_tokens  # BOS included, as TGI counts


@pytest.mark.parametrize("chat", [False, True])
def test_longer_than_the_corpus(tok, builders, chat):
    p = builders[chat].make(3 * len(builders[chat].ids), 10, random.Random(1))
    assert p.input_tokens == p.target_tokens


def test_seeded_and_reproducible(builders):
    a = builders[False].build(PromptSpec(size=20, seed=7))
    b = builders[False].build(PromptSpec(size=20, seed=7))
    c = builders[False].build(PromptSpec(size=20, seed=8))
    assert a == b
    assert a != c


def test_distributions_and_clipping(builders):
    prompts = builders[False].build(PromptSpec(size=400, seed=11111))
    n_in = [p.input_tokens for p in prompts]
    n_out = [p.max_new_tokens for p in prompts]
    assert statistics.mean(n_in) == pytest.approx(550, abs=25)
    assert statistics.stdev(n_in) == pytest.approx(150, abs=25)
    assert statistics.mean(n_out) == pytest.approx(150, abs=3)
    assert statistics.stdev(n_out) == pytest.approx(10, abs=3)
    fixed = builders[False].build(
        PromptSpec(input_mean=40, input_stddev=100, output_stddev=0, size=50, seed=1)
    )
    assert {p.max_new_tokens for p in fixed} == {150}
    assert min(p.input_tokens for p in fixed) >= 50  # clipped to min_input


def test_prompt_text_invites_a_long_answer(builders):
    p = builders[True].build(PromptSpec(size=1, seed=5))[0]
    assert p.text.startswith("Here are some lines of poetry. Write a long, detailed commentary")


def test_pool_round_robin(tok):
    pool = build_pool(tok, False, PromptSpec(size=3, seed=2), start=4)
    seq = [pool.next() for _ in range(6)]
    assert seq[:3] == seq[3:] and seq[0] == pool.prompts[1]
    with pytest.raises(ValueError):
        PromptPool([])
