"""Token counters: exact tokenizer, cached tiktoken only, named estimate otherwise."""

import hashlib

import pytest

from tastelens.errors import ConfigError
from tastelens.prompts import tokens
from tastelens.prompts.renderer import PromptRenderer, RendererConfig
from tastelens.prompts.selection import HistoryEntry
from tastelens.prompts.tokens import (
    CharEstimateCounter,
    HFTokenizerCounter,
    TiktokenCounter,
    TokenCounter,
    make_token_counter,
    tiktoken_is_cached,
)
from tastelens.schemas import Item

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}]


class WordTokenizer:
    """A fake HF tokenizer: one token per whitespace word, a chat template adding 3 per turn."""

    chat_template = "fake"

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        assert tokenize and add_generation_prompt
        ids = [t for m in messages for t in ["<s>", m["role"], *m["content"].split(), "</s>"]]
        return {"input_ids": ids + ["<s>", "assistant"]}  # a BatchEncoding-like mapping


def test_char_estimate_is_named_and_rounds_up():
    counter = CharEstimateCounter(chars_per_token=4.0, message_overhead=2)
    assert isinstance(counter, TokenCounter)
    assert counter.name == "chars/4-estimate"
    assert counter.count("abcde") == 2 and counter.count("") == 0
    assert counter.count_messages(MESSAGES) == 2 + 2 + 2 + 2
    assert CharEstimateCounter().name == "chars/2.5-estimate"
    with pytest.raises(ConfigError):
        CharEstimateCounter(chars_per_token=0)


def test_hf_counter_uses_the_chat_template():
    counter = HFTokenizerCounter(WordTokenizer(), name="word")
    assert counter.name == "tokenizer:word"
    assert counter.count("one two three") == 3
    assert counter.count_messages(MESSAGES) == (3 + 2) * 2 + 2


def test_without_tokenizer_or_cached_encoding_the_estimate_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    assert not tiktoken_is_cached("cl100k_base")
    assert isinstance(make_token_counter(), CharEstimateCounter)
    assert isinstance(make_token_counter(tiktoken_encoding=None), CharEstimateCounter)


def test_cached_tiktoken_encoding_is_used_without_download(tmp_path, monkeypatch, caplog):
    import tiktoken

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    url = tokens._TIKTOKEN_URLS["cl100k_base"]
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(b"cached")
    assert tiktoken_is_cached("cl100k_base") and not tiktoken_is_cached("nope")

    class Encoding:
        name = "cl100k_base"

        def encode(self, text, disallowed_special=()):
            return list(text)

    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: Encoding())
    counter = make_token_counter()
    assert isinstance(counter, TiktokenCounter) and counter.name == "tiktoken:cl100k_base"
    assert counter.count("abc") == 3

    def broken(name):
        raise ValueError("hash mismatch")

    monkeypatch.setattr(tiktoken, "get_encoding", broken)
    with caplog.at_level("WARNING", logger="tastelens.prompts"):
        assert isinstance(make_token_counter(), CharEstimateCounter)
    assert "cl100k_base is cached but cannot be loaded (hash mismatch)" in caplog.text


def test_missing_tokenizer_folder_is_an_error_not_a_silent_estimate(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        make_token_counter(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="cannot load a tokenizer"):
        make_token_counter(tmp_path / "empty")


def test_renderer_budget_holds_with_a_tokenizer_counter():
    counter = HFTokenizerCounter(WordTokenizer(), name="word")
    history = [HistoryEntry(Item(id=str(i), title=f"A film called number {i}",
                                 categories=("Drama", "War")), 4.0, i) for i in range(400)]
    renderer = PromptRenderer(RendererConfig(max_prompt_tokens=600, max_items=400),
                              token_counter=counter)
    prompt = renderer.render_profile(history, {"top_categories": "x", "recent_trend": "y"})
    assert prompt.token_counter == "tokenizer:word"
    assert prompt.prompt_tokens == counter.count_messages(prompt.messages) <= 600
    assert 10 < prompt.n_shown < 400
