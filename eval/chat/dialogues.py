"""Dialogues to replay through the chat: ReDial's format and a small generic JSONL.

Both are read into the same :class:`Dialogue`: turns with a role ('seeker' — the person
asking — or 'recommender'), the text as that person would type it, and the movies the turn
names, as mention keys in order of appearance (:attr:`Dialogue.titles` says how each one is
written, for :mod:`tastelens.eval.chat.matching`).

**ReDial** (``format = "redial"``; Li et al. 2018, one conversation per line)::

    {"conversationId": "6712", "initiatorWorkerId": 368, "respondentWorkerId": 299,
     "movieMentions": {"191911": "Man on Wire (2008)"},
     "messages": [{"senderWorkerId": 368, "text": "Im looking for a great documentary"},
                  {"senderWorkerId": 299, "text": "have you seen @191911 ?"}]}

The initiator is the seeker, the respondent the recommender. A movie appears in a message as
``@<id>``; the text sent to the chat has each ``@<id>`` replaced by its ``movieMentions``
title as written ("have you seen Man on Wire (2008) ?") — what a person would type. An
``@<id>`` that ``movieMentions`` lacks stays as it is and names nothing. Other keys
(``initiatorQuestions`` …) are ignored.

**Generic JSONL** (``format = "jsonl"``; for other catalogs), one conversation per line::

    {"id": "c1", "turns": [
        {"role": "seeker", "text": "I loved Heat (1995), anything like it?", "items": ["6"]},
        {"role": "recommender", "text": "Try Ronin", "items": ["Ronin (1998)"]}]}

``id``: any non-empty string (or number), unique in the file. ``turns``: a non-empty list;
``role``: 'seeker' or 'recommender'; ``text``: the message, sent as it is; ``items``
(optional, default none): the movies the turn names, in order, each a catalog item id or a
"Title (Year)" string matched like ReDial's titles.

``format = "auto"`` reads a line with ``messages`` as ReDial and one with ``turns`` as the
generic format. Every problem is a :class:`~tastelens.errors.DataFormatError` naming the file,
the line and the field (``messages[3].senderWorkerId``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tastelens.errors import DataFormatError

Role = Literal["seeker", "recommender"]
Format = Literal["redial", "jsonl", "auto"]
ROLES: tuple[Role, ...] = ("seeker", "recommender")

_AT_ID = re.compile(r"@(\d+)")


@dataclass(frozen=True)
class Turn:
    """One message: who said it, the text a person would type, and the mention keys it
    names (in order of appearance, repeats removed)."""

    role: Role
    text: str
    mentions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dialogue:
    """One conversation, in order; ``titles`` maps each mention key to the title as written
    (ReDial: ``movieMentions``; generic: the item string itself)."""

    id: str
    turns: tuple[Turn, ...]
    titles: dict[str, str] = field(default_factory=dict)
    format: Literal["redial", "jsonl"] = "jsonl"
    """'jsonl': a mention may be a catalog id; 'redial': mention keys are ReDial's own ids."""
    source: str = ""
    line: int = 0


def load_dialogues(path: Path, fmt: Format = "auto") -> list[Dialogue]:
    """Every conversation of ``path`` (JSON Lines; blank lines are skipped), in file order."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "no such dialogues file (set dialogues.path in the "
                                    "config or pass --dialogues)")
    dialogues: list[Dialogue] = []
    seen: dict[str, int] = {}
    for line_no, raw in _lines(path):
        dialogue = parse_line(raw, path, line_no, fmt)
        if dialogue.id in seen:
            raise DataFormatError(path, f"conversation id {dialogue.id!r} repeats the one on "
                                        f"line {seen[dialogue.id]}", line=line_no,
                                  field=_id_field(raw))
        seen[dialogue.id] = line_no
        dialogues.append(dialogue)
    if not dialogues:
        raise DataFormatError(path, "holds no conversation")
    return dialogues


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with path.open(encoding="utf-8") as handle:
            for line_no, raw in enumerate(handle, start=1):
                if raw.strip():
                    yield line_no, raw
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, f"not UTF-8 text ({exc.reason})") from None


def _id_field(raw: str) -> str:
    return "conversationId" if '"messages"' in raw else "id"


def parse_line(raw: str, path: Path, line: int, fmt: Format = "auto") -> Dialogue:
    """One line of a dialogues file as a :class:`Dialogue`."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, f"not valid JSON ({exc.msg} at column {exc.colno})",
                              line=line) from None
    if not isinstance(obj, dict):
        raise DataFormatError(path, f"expected a JSON object, got {type(obj).__name__}",
                              line=line)
    if fmt == "auto":
        if "messages" in obj:
            fmt = "redial"
        elif "turns" in obj:
            fmt = "jsonl"
        else:
            raise DataFormatError(path, "neither ReDial ('messages') nor the generic format "
                                        "('turns'): see docs/chat-evaluation.md", line=line)
    reader = _redial if fmt == "redial" else _generic
    return reader(obj, _Where(path, line))


@dataclass(frozen=True)
class _Where:
    path: Path
    line: int

    def error(self, key: str, message: str) -> DataFormatError:
        return DataFormatError(self.path, message, line=self.line, field=key)


def _require(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: _Where,
             prefix: str = "") -> Any:
    name = prefix + key
    if key not in obj:
        raise where.error(name, "missing")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(
            k.__name__ for k in kind)
        raise where.error(name, f"expected {expected}, got {type(value).__name__}")
    return value


def _conversation_id(value: Any, where: _Where, key: str) -> str:
    text = str(value).strip()
    if not text:
        raise where.error(key, "must not be empty")
    return text


def _redial(obj: dict[str, Any], where: _Where) -> Dialogue:
    cid = _conversation_id(_require(obj, "conversationId", (str, int), where), where,
                           "conversationId")
    seeker = _require(obj, "initiatorWorkerId", (int, str), where)
    recommender = _require(obj, "respondentWorkerId", (int, str), where)
    mentions = obj.get("movieMentions") or {}
    if not isinstance(mentions, dict):
        raise where.error("movieMentions", f"expected an object of id -> 'Title (Year)', got "
                                           f"{type(mentions).__name__}")
    titles: dict[str, str] = {}
    for key, title in mentions.items():
        if title is None:
            continue  # ReDial has a few ids whose title was never filled in: they name nothing
        if not isinstance(title, str):
            raise where.error(f"movieMentions.{key}", f"expected a title string, got "
                                                       f"{type(title).__name__}")
        titles[str(key)] = title
    messages = _require(obj, "messages", list, where)
    turns = []
    for i, message in enumerate(messages):
        prefix = f"messages[{i}]."
        if not isinstance(message, dict):
            raise where.error(f"messages[{i}]", "expected an object")
        sender = _require(message, "senderWorkerId", (int, str), where, prefix)
        text = _require(message, "text", str, where, prefix)
        if sender == seeker:
            role: Role = "seeker"
        elif sender == recommender:
            role = "recommender"
        else:
            raise where.error(prefix + "senderWorkerId",
                              f"{sender!r} is neither the initiator ({seeker!r}) nor the "
                              f"respondent ({recommender!r})")
        named = [m for m in _AT_ID.findall(text) if m in titles]
        typed = _AT_ID.sub(lambda m: titles.get(m.group(1), m.group(0)), text)
        turns.append(Turn(role, typed, tuple(dict.fromkeys(named))))
    return Dialogue(cid, tuple(turns), titles, "redial", str(where.path), where.line)


def _generic(obj: dict[str, Any], where: _Where) -> Dialogue:
    cid = _conversation_id(_require(obj, "id", (str, int), where), where, "id")
    raw_turns = _require(obj, "turns", list, where)
    if not raw_turns:
        raise where.error("turns", "must hold at least one turn")
    turns = []
    titles: dict[str, str] = {}
    for i, turn in enumerate(raw_turns):
        prefix = f"turns[{i}]."
        if not isinstance(turn, dict):
            raise where.error(f"turns[{i}]", "expected an object")
        unknown = sorted(set(turn) - {"role", "text", "items"})
        if unknown:
            raise where.error(prefix + unknown[0], "unknown key (expected role, text, items)")
        role = _require(turn, "role", str, where, prefix)
        if role not in ROLES:
            raise where.error(prefix + "role", f"{role!r} is not 'seeker' or 'recommender'")
        text = _require(turn, "text", str, where, prefix)
        items = turn.get("items", [])
        if not isinstance(items, list):
            raise where.error(prefix + "items", f"expected a list, got {type(items).__name__}")
        keys = []
        for j, item in enumerate(items):
            if not isinstance(item, (str, int)) or isinstance(item, bool) or not str(item).strip():
                raise where.error(f"{prefix}items[{j}]", "expected a catalog id or a "
                                                          "'Title (Year)' string")
            key = str(item).strip()
            titles[key] = key
            keys.append(key)
        turns.append(Turn(role, text, tuple(dict.fromkeys(keys))))
    return Dialogue(cid, tuple(turns), titles, "jsonl", str(where.path), where.line)
