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


def test_a_master_finds_the_file_it_would_load_with_the_same_errors_without_parsing(tmp_path):
    from harness.load.preflight import PreflightError, load_tokenizer_checked
    from harness.workload.tokenizer import default_tokenizer_dir, find_tokenizer

    assert find_tokenizer() == find_tokenizer("llama3") == default_tokenizer_dir() / "tokenizer.json"
    for spec in (str(tmp_path / "nope"), str(tmp_path)):  # no such path; a directory without the file
        with pytest.raises(RuntimeError) as found:
            find_tokenizer(spec)
        with pytest.raises(RuntimeError) as loaded:
            load_tokenizer(spec)
        assert str(found.value) == str(loaded.value)
        with pytest.raises(PreflightError) as checked:
            load_tokenizer_checked(spec, parse=False)
        assert checked.value.code == 2 and "cannot load it" in str(checked.value)
    (tmp_path / "tokenizer.json").write_text("{")  # found, not parsed: the workers report this one
    assert find_tokenizer(str(tmp_path)) == tmp_path / "tokenizer.json"
    with pytest.raises(RuntimeError, match="cannot load tokenizer"):
        load_tokenizer(str(tmp_path))
