"""Token counters for prompt budgets: the model's own tokenizer, tiktoken, or an estimate.

:func:`make_token_counter` picks the most faithful counter available without a network:

1. the model's tokenizer (transformers ``AutoTokenizer``) from a local checkpoint folder,
   counting whole conversations with the model's chat template;
2. tiktoken, but only when the encoding file is already in tiktoken's cache: tiktoken
   downloads encodings from the internet on first use, and this machine has none;
3. :class:`CharEstimateCounter`, a deliberately pessimistic characters-per-token estimate.

Every counter has a ``name`` that is recorded with each rendered prompt, so a reader knows
whether a budget was counted or estimated.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from tastelens.errors import ConfigError

Messages = Sequence[dict[str, str]]
log = logging.getLogger("tastelens.prompts")

# tiktoken's own download URLs: its cache key is sha1(url) (tiktoken/load.py).
_TIKTOKEN_URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


@runtime_checkable
class TokenCounter(Protocol):
    """Counts tokens of a text and of a whole chat conversation."""

    name: str

    def count(self, text: str) -> int: ...

    def count_messages(self, messages: Messages) -> int: ...


class CharEstimateCounter:
    """ceil(len(text) / chars_per_token), plus a fixed overhead per chat message.

    An *estimate*, named as one, and pessimistic on purpose. The usual "4 characters per
    token" holds for English prose with GPT tokenizers, not here: whole profile prompts
    (quoted titles, genre lists, ratings) measured 2.70–3.07 characters per SmolLM2 token
    over all 610 ml-latest-small users, so chars/4 overshot a 1,536-token budget for 492 of
    them (by up to 47%). At the default 2.5 no user went over (largest real count 1,370).
    """

    def __init__(self, chars_per_token: float = 2.5, message_overhead: int = 8) -> None:
        if chars_per_token <= 0:
            raise ConfigError(f"chars_per_token must be > 0, got {chars_per_token}")
        self.chars_per_token = chars_per_token
        self.message_overhead = message_overhead
        self.name = f"chars/{chars_per_token:g}-estimate"

    def count(self, text: str) -> int:
        return math.ceil(len(text) / self.chars_per_token)

    def count_messages(self, messages: Messages) -> int:
        return sum(self.count(m["content"]) + self.message_overhead for m in messages)


class TiktokenCounter:
    """A tiktoken encoding: a stand-in for the model's tokenizer, not the real one."""

    def __init__(self, encoding: object, message_overhead: int = 4) -> None:
        self._encoding = encoding
        self.message_overhead = message_overhead
        self.name = f"tiktoken:{getattr(encoding, 'name', 'unknown')}"

    def count(self, text: str) -> int:
        return len(self._encoding.encode(text, disallowed_special=()))

    def count_messages(self, messages: Messages) -> int:
        return sum(self.count(m["content"]) + self.message_overhead for m in messages)


class HFTokenizerCounter:
    """The model's own tokenizer; conversations are counted through its chat template."""

    def __init__(self, tokenizer: object, name: str = "hf") -> None:
        self._tokenizer = tokenizer
        self.name = f"tokenizer:{name}"

    @classmethod
    def from_path(cls, path: Path) -> HFTokenizerCounter:
        path = Path(path)
        if not path.is_dir():
            raise ConfigError(f"tokenizer folder {path} does not exist")
        if not any((path / name).is_file() for name in _TOKENIZER_FILES):
            # Checked before importing transformers, which takes seconds.
            raise ConfigError(f"cannot load a tokenizer from {path}: it holds none of "
                              f"{', '.join(_TOKENIZER_FILES)}")
        from transformers import AutoTokenizer  # heavy import, only when a path is given

        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        return cls(tokenizer, name=path.name)

    def count(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_messages(self, messages: Messages) -> int:
        if getattr(self._tokenizer, "chat_template", None):
            ids = self._tokenizer.apply_chat_template(
                list(messages), tokenize=True, add_generation_prompt=True)
            if hasattr(ids, "keys"):  # transformers 5 may return a BatchEncoding
                ids = ids["input_ids"]
            return len(ids)
        return sum(self.count(m["content"]) + 4 for m in messages)


def tiktoken_cache_dir() -> Path:
    """Where tiktoken itself looks: $TIKTOKEN_CACHE_DIR, $DATA_GYM_CACHE_DIR or a temp dir."""
    value = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    return Path(value) if value else Path(tempfile.gettempdir()) / "data-gym-cache"


def tiktoken_is_cached(encoding: str) -> bool:
    """True when tiktoken can load ``encoding`` without a download."""
    url = _TIKTOKEN_URLS.get(encoding)
    if url is None:
        return False
    key = hashlib.sha1(url.encode()).hexdigest()
    return (tiktoken_cache_dir() / key).is_file()


def make_token_counter(tokenizer_path: Path | None = None, *,
                       tiktoken_encoding: str | None = "cl100k_base") -> TokenCounter:
    """The best counter available offline (see the module docstring for the order).

    A given ``tokenizer_path`` that cannot be loaded is an error, not a silent fallback:
    the caller asked for exact counts.
    """
    if tokenizer_path is not None:
        try:
            return HFTokenizerCounter.from_path(Path(tokenizer_path))
        except ConfigError:
            raise
        except Exception as exc:  # transformers raises OSError/ValueError variants
            raise ConfigError(
                f"cannot load a tokenizer from {tokenizer_path}: {exc}. Prepare the model with "
                "`tastelens models prepare` or pass no tokenizer path to use an estimate") from exc
    if tiktoken_encoding and tiktoken_is_cached(tiktoken_encoding):
        try:
            import tiktoken

            return TiktokenCounter(tiktoken.get_encoding(tiktoken_encoding))
        except (ImportError, OSError, ValueError) as exc:  # not installed, or a corrupt cache
            log.warning("tiktoken encoding %s is cached but cannot be loaded (%s); counting "
                        "with the characters-per-token estimate", tiktoken_encoding, exc)
    return CharEstimateCounter()
