"""The fine-tuning JSONL format: one :class:`Example` per line, written and read back strictly.

    {"id": "rank-12-t37", "task": "rank",
     "messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "..."}],
     "target": "C", "meta": {...}}

``messages`` is the prompt exactly as serving sends it (system + user turns; the trainer
applies the tokenizer's chat template with a generation prompt); ``target`` is the assistant
turn, the only text the loss is computed on. ``meta`` is free-form provenance (user, position,
candidate ids...) that trainers ignore.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tastelens.errors import DataFormatError

TRAIN_FILE = "train.jsonl"
EVAL_FILE = "eval.jsonl"
CARD_FILE = "card.json"


class PromptMessage(BaseModel):
    """One prompt turn; the assistant turn is the example's ``target``, never a message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "user"]
    content: str = Field(min_length=1)


class Example(BaseModel):
    """One supervised fine-tuning example."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="Unique within its data set.")
    task: Literal["rank", "profile"]
    messages: list[PromptMessage] = Field(min_length=1)
    target: str = Field(min_length=1, description="The assistant text the loss is taken on.")
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, messages: list[PromptMessage]) -> list[PromptMessage]:
        if messages[-1].role != "user":
            raise ValueError("the last prompt message must be the user's turn")
        return messages

    def chat(self) -> list[dict[str, str]]:
        """The prompt as plain role/content dicts (what chat templates take)."""
        return [m.model_dump() for m in self.messages]


def dumps(example: Example) -> str:
    return json.dumps(example.model_dump(mode="json"), ensure_ascii=False)


def write_jsonl(path: Path, examples: Iterable[Example]) -> int:
    """Write ``examples`` one per line to ``path`` (callers stage the folder); returns count."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for example in examples:
            fh.write(dumps(example) + "\n")
            n += 1
    return n


def iter_jsonl(path: Path) -> Iterator[Example]:
    """Read examples back; a bad line raises DataFormatError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "fine-tuning data file does not exist")
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield Example.model_validate_json(line)
            except ValidationError as exc:
                err = exc.errors()[0]
                field = ".".join(str(p) for p in err["loc"]) or None
                raise DataFormatError(path, err["msg"], line=lineno, field=field) from None


def read_jsonl(path: Path) -> list[Example]:
    return list(iter_jsonl(path))
