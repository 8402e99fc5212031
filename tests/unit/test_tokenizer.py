"""The bundled Llama 3 tokenizer loads offline and counts like TGI."""

from __future__ import annotations

import pytest

from harness.workload.tokenizer import load_tokenizer


def test_default_is_llama3_offline():
    tok = load_tokenizer()
    ids = tok.encode("Hello world")
    assert ids == [128000, 9906, 1917]  # <|begin_of_text|> Hello  world
    assert tok.count("Hello world") == 3
    assert tok.piece(1917) == " world"


def test_chat_template_counts_template_tokens():
    tok = load_tokenizer()
    messages = [{"role": "user", "content": "Hello there"}]
    text = tok.render_chat(messages)
    head = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello there<|eot_id|>"
    assert text.startswith(head)
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    # BOS + 3 header tokens + "\n\n" + 2 content + eot + 3 header tokens + "\n\n" = 12
    assert tok.count_chat(messages) == 12


def test_bad_spec_is_one_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="cannot load tokenizer"):
        load_tokenizer(str(tmp_path / "nope"))
