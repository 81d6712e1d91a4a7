"""The ``eval chat`` run config: one TOML file (``eval/configs/chat-redial.toml``) plus CLI
overrides. Like the ``eval run`` config, every section forbids unknown keys and every
problem is a :class:`~tastelens.errors.ConfigError` naming the file and the dotted key.

Example::

    protocol = "first"        # or "every"
    split = "all"             # "tune" (~70 %), "check" (~30 %) or "all"

    [dialogues]
    path = "../shared/data/redial/dialogues.jsonl"
    format = "redial"

    [[baselines]]
    name = "itemknn"
    type = "itemknn"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, model_validator

from tastelens.config.base import ConfigSection, format_validation_error, read_toml
from tastelens.config.pipeline import MAX_K
from tastelens.errors import ConfigError
from tastelens.eval.config import DatasetSection


class DialoguesSection(ConfigSection):
    """Which dialogues are replayed (formats: :mod:`tastelens.eval.chat.dialogues`)."""

    path: Path | None = Field(
        default=None, description="JSON Lines file of conversations; relative paths are "
                                  "relative to the working directory. CLI --dialogues wins.")
    format: Literal["redial", "jsonl", "auto"] = Field(
        default="auto", description="'redial', 'jsonl' (the generic format) or 'auto' (by "
                                    "each line's keys).")


class ChatSection(ConfigSection):
    """Which chat answers: in this process (default) or a running ``tastelens api``."""

    llm: bool = Field(default=False, description="In process: read messages with the LLM too "
                                                 "(chat.use_llm) and let the pipeline ask it; "
                                                 "false: rules only, the LLM never asked.")
    api: str | None = Field(default=None, description="Base URL of a running `tastelens api` "
                                                      "(e.g. http://127.0.0.1:8080); the list "
                                                      "size is then the server's chat.k.")
    timeout_s: float = Field(default=120.0, gt=0, description="HTTP: seconds per request.")


class MetricsSection(ConfigSection):
    """Cut-offs: Recall@K for each K; the chat is asked for max(k) items."""

    k: list[int] = Field(default_factory=lambda: [1, 10, 50], min_length=1)
    mrr_k: int = Field(default=10, ge=1, description="Cut-off of the MRR.")

    @model_validator(mode="after")
    def _check(self) -> MetricsSection:
        if any(k < 1 or k > MAX_K for k in self.k) or len(set(self.k)) != len(self.k):
            raise ValueError(f"k: distinct cut-offs between 1 and {MAX_K}")
        if 10 not in self.k:
            raise ValueError("k: must include 10 (the paired intervals are on Recall@10)")
        self.k = sorted(self.k)
        return self


class BootstrapSection(ConfigSection):
    """Percentile bootstrap over conversations."""

    n_resamples: int = Field(default=1000, ge=10)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    seed: int = Field(default=0, description="Seed of the resampling (CLI --seed).")


class BaselineSpec(ConfigSection):
    """One baseline: a column label, a registered system type (or 'dialogue-embedding')
    and that type's params."""

    name: str = Field(min_length=1)
    type: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class ChatEvalConfig(ConfigSection):
    """A complete ``eval chat`` run."""

    protocol: Literal["first", "every"] = Field(
        default="first", description="'first': the first new suggestion of each conversation; "
                                     "'every': each one, with the transcript as context.")
    split: Literal["tune", "check", "all"] = Field(
        default="all", description="Fixed split of conversations by a hash of their id.")
    limit: int | None = Field(default=None, ge=1, description="Only the first N cases.")
    dataset: DatasetSection = Field(default_factory=DatasetSection)
    dialogues: DialoguesSection = Field(default_factory=DialoguesSection)
    chat: ChatSection = Field(default_factory=ChatSection)
    metrics: MetricsSection = Field(default_factory=MetricsSection)
    bootstrap: BootstrapSection = Field(default_factory=BootstrapSection)
    baselines: list[BaselineSpec] = Field(default_factory=list)

    _source: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> Path | None:
        return self._source

    def where(self, key: str) -> str:
        return f"{self.source or '<chat eval config>'}: key {key!r}"

    def with_overrides(self, **overrides: Any) -> ChatEvalConfig:
        """CLI overrides (None = keep): dialogues, format, protocol, split, limit, seed, llm,
        api, data, baselines (names to keep)."""
        raw = self.model_dump()
        simple = {"protocol": ("protocol",), "split": ("split",), "limit": ("limit",),
                  "dialogues": ("dialogues", "path"), "format": ("dialogues", "format"),
                  "seed": ("bootstrap", "seed"), "llm": ("chat", "llm"),
                  "api": ("chat", "api"), "data": ("dataset", "path")}
        for name, value in overrides.items():
            if value is None or name == "baselines":
                continue
            if name not in simple:
                raise TypeError(f"unknown override {name!r}")
            *parents, key = simple[name]
            table = raw
            for p in parents:
                table = table[p]
            table[key] = value
        keep = overrides.get("baselines")
        if keep is not None:
            known = [b["name"] for b in raw["baselines"]]
            unknown = [n for n in keep if n not in known]
            if unknown:
                raise ConfigError(f"--baseline {', '.join(unknown)}: not in "
                                  f"{self.source or 'the config'} (baselines: "
                                  f"{', '.join(known) or 'none'})")
            raw["baselines"] = [b for b in raw["baselines"] if b["name"] in keep]
        return _validate(raw, self.source)


def _validate(raw: dict[str, Any], source: Path | None) -> ChatEvalConfig:
    try:
        config = ChatEvalConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "chat eval config", source)) from None
    config._source = source
    return config


def load_chat_eval_config(path: Path) -> ChatEvalConfig:
    """Read and validate a chat eval config TOML."""
    path = Path(path)
    return _validate(read_toml(path, "chat eval config"), path)
