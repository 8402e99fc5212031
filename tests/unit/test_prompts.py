"""Prompts: exact server-side token counts, seeded, llmperf-like distributions."""

from __future__ import annotations

import random
import statistics

import pytest

from harness.workload.prompts import (
    INSTRUCTION,
    LLAMA3_OPENERS,
    PromptBuilder,
    PromptPool,
    PromptSpec,
    build_pool,
    prefix_stats,
    shared_prefix,
)
from harness.workload.tokenizer import DEFAULT_TOKENIZER, load_tokenizer


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


@pytest.mark.parametrize("chat", [False, True])
def test_no_two_prompts_share_more_than_the_instruction(builders, chat):
    """A prefix-caching server must not see a prefix shared beyond the instruction (TTFT too low)."""
    b = builders[chat]
    prompts = b.build(PromptSpec(size=300, seed=21, input_mean=200, input_stddev=80))
    ids = [b.encode(p.text) for p in prompts]
    instruction = b.shared_tokens()
    # what every prompt shares is the (template head and) instruction, up to its closing blank line
    assert b.tok.backend.decode(ids[0][:instruction]).rstrip().endswith(INSTRUCTION.rstrip()[-20:])
    assert shared_prefix(ids) <= instruction
    assert shared_prefix(ids[:2] + ids[:1]) == len(ids[0])  # the statistic sees a repeated prompt
    stats = prefix_stats(b, prompts)
    assert stats["max_shared_prefix_tokens"] <= stats["instruction_tokens"] == instruction


def test_texts_per_run_lengths_per_workload(builders):
    """Another run (another text seed) sends none of the same prompts, with the same lengths."""
    b = builders[False]
    one = b.build(PromptSpec(size=40, seed=1, lengths_seed=11111))
    two = b.build(PromptSpec(size=40, seed=2, lengths_seed=11111))
    assert [p.input_tokens for p in one] == [p.input_tokens for p in two]
    assert not {p.text for p in one} & {p.text for p in two}
    # across runs openers are drawn independently: at most a word's first tokens may coincide
    assert shared_prefix([b.encode(p.text) for p in one + two]) <= b.shared_tokens() + 3


def test_shared_prefix_workload(builders):
    b = builders[False]
    spec = PromptSpec(size=30, seed=4, input_mean=400, input_stddev=0, prefix_tokens=120, prefix_groups=3)
    prompts = b.build(spec)
    ids = [b.encode(p.text) for p in prompts]
    base = b.shared_tokens()
    for g in range(3):
        group = ids[g::3]
        # the group's prompts share the instruction and ~120 tokens of passage, then part ways
        assert base + 110 <= shared_prefix(group[:2]) and shared_prefix(group) <= base + 130
    assert shared_prefix([ids[0], ids[1], ids[2]]) <= base + 1  # different groups: the instruction only
    assert all(p.input_tokens == 400 for p in prompts)


def test_a_run_draws_its_seed_unless_given():
    from harness.config.model import RunConfig, Workload

    drawn = {RunConfig().with_run_seed().workload.seed for _ in range(5)}
    assert None not in drawn and len(drawn) > 1
    given = RunConfig(workload=Workload(seed=7))
    assert given.with_run_seed() is given


def test_shipped_openers_are_the_bundled_tokenizers(builders):
    """harness/workload/data/llama3_openers.txt is what the vocabulary gives (regenerate it with
    PromptBuilder.opener_words when the bundled tokenizer changes)."""
    builder = builders[False]
    assert builder.tok.spec == DEFAULT_TOKENIZER
    assert LLAMA3_OPENERS.read_text(encoding="utf-8").split() == builder.opener_words() == builder.openers()


@pytest.mark.parametrize("chat", [False, True])
def test_given_sizes_a_trace_s_entries(builders, chat):
    """A trace step's prompts: one per (input tokens, max new tokens) given, exact, distinct; an input
    shorter than the instruction gets the shortest prompt there is (the instruction, an opener)."""
    b = builders[chat]
    sizes = [(300, 7), (120, 3), (900, 1), (300, 7), (1, 2)]
    prompts = b.build(PromptSpec(seed=5, min_input=500), sizes)
    assert [(p.input_tokens, p.max_new_tokens) for p in prompts[:4]] == sizes[:4]  # min_input not applied
    assert prompts[4].target_tokens == b.overhead + 1 and prompts[4].max_new_tokens == 2
    assert prompts[4].input_tokens <= b.overhead + 4
    assert shared_prefix([b.encode(p.text) for p in prompts]) <= b.shared_tokens()
    assert b.build(PromptSpec(seed=5, min_input=500), sizes) == prompts  # seeded
