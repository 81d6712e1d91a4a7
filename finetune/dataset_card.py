"""``card.json``: what a fine-tuning data set holds and how it was made.

The card records counts (examples, users, what was dropped and why), token-length stats of
prompts and targets counted with the model's own tokenizer (or a named estimate when the
checkpoint is not prepared), the seed, the split, the resolved config, the source dataset's
path and content hash, and the usual run record (git commit, package versions).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tastelens.config.settings import Settings
from tastelens.data.dataset import Dataset
from tastelens.finetune.jsonl import Example
from tastelens.prompts.tokens import TokenCounter, make_token_counter


class LengthStats(BaseModel):
    """Distribution of one token length over a set of examples."""

    model_config = ConfigDict(extra="forbid")

    n: int
    min: int = 0
    mean: float = 0.0
    p50: float = 0.0
    p95: float = 0.0
    max: int = 0
    total: int = 0

    @classmethod
    def of(cls, values: Sequence[int]) -> LengthStats:
        if not values:
            return cls(n=0)
        arr = np.asarray(values, dtype=np.int64)
        return cls(n=len(arr), min=int(arr.min()), mean=round(float(arr.mean()), 1),
                   p50=float(np.percentile(arr, 50)), p95=float(np.percentile(arr, 95)),
                   max=int(arr.max()), total=int(arr.sum()))


class TokenStats(BaseModel):
    """Prompt (chat template + generation prompt), target and total token lengths."""

    model_config = ConfigDict(extra="forbid")

    counter: str = Field(description="Which counter: 'tokenizer:<model>' or an estimate.")
    prompt: LengthStats
    target: LengthStats
    total: LengthStats


def token_counter_for(settings: Settings, *, use_tokenizer: bool = True) -> TokenCounter:
    """The model's tokenizer when its checkpoint folder is on disk, else an estimate."""
    from tastelens.llm.errors import ModelNotPreparedError
    from tastelens.llm.models import resolve_model_path

    if use_tokenizer:
        try:
            path = Path(resolve_model_path(settings))
        except ModelNotPreparedError:
            path = None
        if path is not None and path.is_dir():
            return make_token_counter(path)
    return make_token_counter(None, tiktoken_encoding=None)


def token_stats(examples: Sequence[Example], counter: TokenCounter) -> TokenStats:
    prompts = [counter.count_messages(e.chat()) for e in examples]
    # +1: the end-of-turn token the trainer appends after the target.
    targets = [counter.count(e.target) + 1 for e in examples]
    return TokenStats(counter=counter.name, prompt=LengthStats.of(prompts),
                      target=LengthStats.of(targets),
                      total=LengthStats.of([p + t for p, t in zip(prompts, targets)]))


def source_fingerprint(dataset: Dataset) -> dict[str, Any]:
    """Path and sha256 of the dataset: over its files when it came from a folder or file,
    else over its content (items and interactions), so a card names exactly what it used."""
    source = dataset.source
    digest = hashlib.sha256()
    if source is not None and Path(source).exists():
        root = Path(source)
        files = sorted(p for p in (root.rglob("*") if root.is_dir() else [root]) if p.is_file())
        for path in files:
            digest.update(f"{path.relative_to(root) if root.is_dir() else path.name}\0".encode())
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
        return {"name": dataset.name, "path": str(root.resolve()), "sha256": digest.hexdigest(),
                "hash_of": "files", "files": [str(p.relative_to(root)) if root.is_dir()
                                              else p.name for p in files]}
    digest.update(pd.util.hash_pandas_object(dataset.interactions, index=False).values.tobytes())
    for item in dataset.items.values():
        digest.update(item.model_dump_json().encode())
    return {"name": dataset.name, "path": None, "sha256": digest.hexdigest(),
            "hash_of": "content"}


class DataCard(BaseModel):
    """The body of ``card.json`` (the run record's fields are added beside it)."""

    model_config = ConfigDict(extra="forbid")

    task: str
    seed: int
    counts: dict[str, int] = Field(description="train/eval examples and users, candidates.")
    dropped: dict[str, int] = Field(default_factory=dict,
                                    description="Reason -> examples or users not written.")
    tokens: dict[str, TokenStats] = Field(description="'train' and 'eval' length stats.")
    split: dict[str, Any]
    target_source: str = Field(description="How targets were made (data / teacher).")
    source: dict[str, Any]
    config: dict[str, Any]
    files: dict[str, str]
    seconds: float
    extra: dict[str, Any] = Field(default_factory=dict)

    def summary_rows(self) -> list[tuple[str, str]]:
        """Label/value rows for a CLI table."""
        rows = [("task", self.task), ("source", f"{self.source['name']} "
                                              f"({self.source['sha256'][:12]})")]
        rows += [(k.replace("_", " "), f"{v:,}") for k, v in self.counts.items()]
        for reason, n in self.dropped.items():
            rows.append((f"dropped: {reason}", f"{n:,}"))
        for part, stats in self.tokens.items():
            if stats.total.n:
                rows.append((f"{part} tokens (prompt / target / total)",
                             f"mean {stats.prompt.mean:.0f} / {stats.target.mean:.0f} / "
                             f"{stats.total.mean:.0f}, p95 {stats.total.p95:.0f}, "
                             f"max {stats.total.max}"))
        rows.append(("token counter", next(iter(self.tokens.values())).counter))
        rows.append(("seconds", f"{self.seconds:.1f}"))
        return rows
