"""The ranking prompt, shared by serving (:mod:`tastelens.agent.rank.reranker`) and the ranking
fine-tuning data, so a trained adapter sees exactly the prompt it is served with.

Candidates are labelled with capital letters ``A``, ``B``, … (at most 26). With SmolLM2's
chat template each bare letter right after the assistant prefix (``<|im_start|>assistant\\n``)
is one token with no leading space (``A`` = id 49, ``B`` = 50, …; ``" A"`` would be a
different token), so:

- ``mode="score"`` asks for the one letter of the item the user watches next; the reply is a
  single token and the re-ranker reads each label's next-token log-probability;
- ``mode="listwise"`` asks for ``{"ranking": ["C", "A", …]}`` (guided JSON, letters enum).

:func:`rank_target` gives the assistant text a training example should teach: the bare letter
(score) or the JSON ranking with the target first (listwise) — the same strings the re-ranker
reads back.

Item text (titles, genres) and the caller's wishes are shown as data: each piece is a JSON
string with ``<``/``>`` escaped (:func:`tastelens.prompts.renderer.json_data`), one item per
line inside ``<history>`` / ``<candidates>`` blocks, and the system prompt says such text is
never an instruction.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from string import Template
from typing import Literal

from tastelens.config.pipeline import MAX_RERANKED, RerankConfig
from tastelens.data.dataset import Dataset
from tastelens.errors import ConfigError, UnknownIdError
from tastelens.llm.base import ChatMessage, ChatRequest
from tastelens.prompts.renderer import TEMPLATES_DIR, item_text, json_data
from tastelens.schemas import Item

RankPromptMode = Literal["listwise", "score"]
MAX_CANDIDATES = MAX_RERANKED
LABELS = tuple(string.ascii_uppercase[:MAX_CANDIDATES])
RANK_FORMAT = "rank-line-v3"  # bump when the line formats below change: part of the version
_TEMPLATES = {"system": "rank_system.md", "score": "rank_score.md",
              "listwise": "rank_listwise.md"}
MAX_WISH_CHARS = 200
COMPACT_TITLE_CHARS = 48
"""Compact lines cut titles here (a catalog's longest titles are alternate names)."""


@dataclass(frozen=True)
class RankPrompt:
    """A ranking request and how to read its reply: candidate ``items[i]`` has ``labels[i]``."""

    request: ChatRequest
    labels: list[str]
    items: list[str]
    mode: RankPromptMode
    prompt_version: str
    history_shown: list[str] = field(default_factory=list)
    """Item ids of the history lines shown, oldest first."""

    def label_of(self, item_id: str) -> str:
        try:
            return self.labels[self.items.index(item_id)]
        except ValueError:
            raise UnknownIdError(f"item {item_id!r} is not one of this prompt's "
                                 f"{len(self.items)} candidates") from None

    def item_of(self, label: str) -> str | None:
        """The candidate behind a label, None for anything else (model output is data)."""
        label = label.strip()
        return self.items[self.labels.index(label)] if label in self.labels else None


@lru_cache(maxsize=4)
def _templates(folder: Path) -> tuple[dict[str, str], str]:
    texts: dict[str, str] = {}
    digest = hashlib.sha256(RANK_FORMAT.encode())
    for key, name in sorted(_TEMPLATES.items()):
        path = folder / name
        if not path.is_file():
            raise ConfigError(f"prompt template {path} is missing")
        texts[key] = path.read_text(encoding="utf-8").strip()
        digest.update(f"\0{name}\0{texts[key]}".encode())
    return texts, f"rank-{digest.hexdigest()[:12]}"


def rank_prompt_version(templates_dir: Path | None = None) -> str:
    """Hash of the ranking templates and line format (changes when the prompt changes)."""
    return _templates(Path(templates_dir or TEMPLATES_DIR))[1]


def compact_title(item: Item) -> str:
    """The title without a trailing ``(year)`` that repeats the item's year (digits cost a
    token each), cut at :data:`COMPACT_TITLE_CHARS`."""
    title = item.title
    if item.year is not None and title.endswith(f"({item.year})"):
        title = title[: -len(f"({item.year})")].rstrip() or item.title
    return title[:COMPACT_TITLE_CHARS].rstrip()


def _item_line(item: Item, compact: bool) -> str:
    return json_data(compact_title(item)) if compact else item_text(item)


def _history_line(item: Item, rating: float | None, compact: bool) -> str:
    line = _item_line(item, compact)
    if rating is None:
        return line
    return f"{line} {rating:g}" if compact else f"{line} rating {rating:g}"


def rank_request(dataset: Dataset, history: Sequence[tuple[str, float | None]],
                 candidates: Sequence[str], *, mode: RankPromptMode,
                 wishes: Sequence[str] = (), max_history: int | None = None,
                 compact: bool | None = None, templates_dir: Path | None = None,
                 ) -> RankPrompt:
    """The ranking prompt for one user.

    ``history``: (item id, rating or None), oldest first; the most recent ``max_history``
    are shown (None: the re-ranker's default, ``RerankConfig.max_history``); ``compact``
    shows titles only (None: ``RerankConfig.compact``). ``candidates``:
    item ids, labelled A, B, … in this order (at most 26, no repeats). ``wishes``: free-text
    requests ("funnier"), shown quoted. The request carries no
    ``json_schema``/``logprobs``/``max_tokens``: the re-ranker sets those per mode.
    """
    if mode not in ("listwise", "score"):
        raise ConfigError(f"rank mode must be 'listwise' or 'score', not {mode!r}")
    if not candidates:
        raise ConfigError("cannot build a ranking prompt without candidates")
    if len(candidates) > MAX_CANDIDATES:
        raise ConfigError(f"{len(candidates)} candidates; a ranking prompt labels at most "
                          f"{MAX_CANDIDATES} (A-Z): lower rerank.max_candidates")
    if len(set(candidates)) != len(candidates):
        raise ConfigError("ranking candidates contain duplicate item ids")
    defaults = RerankConfig()
    max_history = defaults.max_history if max_history is None else max_history
    compact = defaults.compact if compact is None else compact
    if max_history < 0:
        raise ConfigError(f"max_history must be ≥ 0, not {max_history}")
    texts, version = _templates(Path(templates_dir or TEMPLATES_DIR))
    shown = list(history)[-max_history:] if max_history else []
    history_lines = [_history_line(dataset.item(i), r, compact) for i, r in shown]
    labels = list(LABELS[: len(candidates)])
    candidate_lines = [f"{label} {_item_line(dataset.item(i), compact)}"
                       for label, i in zip(labels, candidates)]
    wish_list = [" ".join(w.split())[:MAX_WISH_CHARS] for w in wishes if w.strip()]
    wish_text = ("Their wishes for this request: "
                 + "; ".join(json_data(w) for w in wish_list)) if wish_list else ""
    user = Template(texts[mode]).substitute(
        history="\n".join(history_lines) or "(no history)",
        candidates="\n".join(candidate_lines), wishes=wish_text)
    user = re.sub(r"\n{3,}", "\n\n", user)
    request = ChatRequest(messages=(ChatMessage(role="system", content=texts["system"]),
                                    ChatMessage(role="user", content=user)))
    return RankPrompt(request=request, labels=labels, items=list(candidates), mode=mode,
                      prompt_version=version, history_shown=[i for i, _ in shown])


def listwise_text(labels: Sequence[str]) -> str:
    """A listwise reply as the model writes it under guided JSON."""
    return json.dumps({"ranking": list(labels)})


def rank_target(prompt: RankPrompt, item_id: str) -> str:
    """The assistant text that teaches ``item_id`` as the next item: its bare label (score
    mode, no leading space — the single token the re-ranker reads), or the listwise JSON with
    its label first and the other candidates in prompt order."""
    label = prompt.label_of(item_id)
    if prompt.mode == "score":
        return label
    return listwise_text([label, *(x for x in prompt.labels if x != label)])
