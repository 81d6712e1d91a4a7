"""Evaluation cases from dialogues: which list is scored against which movie.

A **new suggestion** is a recommender turn naming a catalog movie that no earlier turn of
the conversation named (by either person); its first such movie is the **target**.

- protocol ``first`` (one case per conversation): the first new suggestion. The seeker's
  messages before it are sent to a fresh chat session, one per turn (the recommender's are
  not); the chat's last list — of the most recent turn that returned one — is scored.
- protocol ``every``: every new suggestion is a case. The whole transcript before it is the
  context: the seeker's messages are sent as user turns, the recommender's are recorded with
  ``ChatSession.observe`` (``POST /v1/chat`` with ``role = "assistant"``), so the titles they
  named count as shown. The list scored is the most recent one — the one made after the last
  seeker message before the target, or an earlier one when that message made none.

A case needs a seeker message before its target; cases without one, and conversations
without a new suggestion, are skipped and counted (:attr:`CaseSet.skipped`).

**Case kinds** (from the seeker's messages before the target): ``mentions a movie`` — the
seeker named a catalog movie; else ``states genres or moods only`` — the chat's rule parser
read a genre, mood or keyword in one of them (an included or excluded category, a wish or a
stated like); else ``says nothing yet``.

**Split**: a conversation belongs to ``tune`` when the first 8 hex digits of
``sha256("tastelens-chat-split/v1:" + conversationId)`` are below 70 % of their range,
to ``check`` otherwise — stable across files, orderings and machines. ``all`` keeps both.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from tastelens.agent.chat.intent import RuleParser
from tastelens.eval.chat.dialogues import Dialogue
from tastelens.eval.chat.matching import MentionMatcher

Protocol = Literal["first", "every"]
Split = Literal["tune", "check", "all"]
CaseKind = Literal["mentions a movie", "states genres or moods only", "says nothing yet"]
KINDS: tuple[CaseKind, ...] = ("mentions a movie", "states genres or moods only",
                               "says nothing yet")
TUNE_SHARE = 0.70
_SALT = "tastelens-chat-split/v1:"


def split_of(conversation_id: str) -> Literal["tune", "check"]:
    """The part of the fixed split a conversation belongs to (see the module docstring)."""
    digest = hashlib.sha256((_SALT + conversation_id).encode("utf-8")).hexdigest()
    return "tune" if int(digest[:8], 16) < TUNE_SHARE * 16 ** 8 else "check"


def in_split(dialogues: Sequence[Dialogue], split: Split) -> list[Dialogue]:
    """The conversations of one part of the split, in file order."""
    return [d for d in dialogues if split == "all" or split_of(d.id) == split]


@dataclass(frozen=True)
class ChatCase:
    """One scored list: the target suggested at recommender turn ``turn`` of a conversation."""

    conversation: str
    case: int
    """0-based position of the case among its conversation's cases."""
    turn: int
    """Index of the recommender turn that holds the target."""
    target: str
    target_title: str
    """The target as the dialogue wrote it."""
    kind: CaseKind
    seeds: tuple[str, ...]
    """Catalog items the seeker named before the target (first naming order)."""
    excluded: tuple[str, ...]
    """Catalog items anyone named before the target (never a right answer)."""
    seeker_text: tuple[str, ...]
    """The seeker's messages before the target, as sent."""


@dataclass
class CaseSet:
    """The cases of a set of dialogues, and what was left out."""

    cases: list[ChatCase]
    dialogues: dict[str, Dialogue]
    """Every conversation the cases come from, by id."""
    items: dict[str, list[dict[str, str]]]
    """Per conversation, per turn: the catalog items the turn names (matched, in order), each
    with the mention key that named it."""
    n_conversations: int
    skipped: Counter = field(default_factory=Counter)
    """'no new suggestion' (conversations), 'no seeker message before' (cases)."""

    def limited(self, limit: int | None) -> CaseSet:
        """The first ``limit`` cases (all for None), with only their conversations."""
        if limit is None or limit >= len(self.cases):
            return self
        cases = self.cases[:limit]
        keep = dict.fromkeys(c.conversation for c in cases)
        return CaseSet(cases, {k: self.dialogues[k] for k in keep},
                       {k: self.items[k] for k in keep}, self.n_conversations,
                       Counter(self.skipped))


def turn_items(dialogue: Dialogue, matcher: MentionMatcher) -> list[dict[str, str]]:
    """Per turn, the catalog items it names -> the mention key naming each (in order;
    unmatched mentions left out; each mention counted in ``matcher.stats``)."""
    out = []
    for turn in dialogue.turns:
        items: dict[str, str] = {}
        for key in turn.mentions:
            match = matcher.match(dialogue.titles[key], ids=dialogue.format == "jsonl")
            matcher.count_mention(match)
            if match.item is not None:
                items.setdefault(match.item, key)
        out.append(items)
    return out


def case_kind(seeds: Sequence[str], seeker_text: Sequence[str], parser: RuleParser) -> CaseKind:
    """See the module docstring."""
    if seeds:
        return "mentions a movie"
    for text in seeker_text:
        intent = parser.parse(text)
        if (intent.include_categories or intent.exclude_categories or intent.wishes
                or intent.likes):
            return "states genres or moods only"
    return "says nothing yet"


def build_cases(dialogues: Sequence[Dialogue], matcher: MentionMatcher, parser: RuleParser,
                protocol: Protocol) -> CaseSet:
    """The cases of ``dialogues`` under ``protocol`` (see the module docstring)."""
    out = CaseSet([], {}, {}, len(dialogues))
    for dialogue in dialogues:
        items = turn_items(dialogue, matcher)
        cases = _dialogue_cases(dialogue, items, parser, protocol, out.skipped)
        if cases:
            out.cases += cases
            out.dialogues[dialogue.id] = dialogue
            out.items[dialogue.id] = items
    return out


def _dialogue_cases(dialogue: Dialogue, items: list[dict[str, str]], parser: RuleParser,
                    protocol: Protocol, skipped: Counter) -> list[ChatCase]:
    named: list[str] = []
    seeds: list[str] = []
    seeker_text: list[str] = []
    cases: list[ChatCase] = []
    suggested = False
    for t, (turn, found) in enumerate(zip(dialogue.turns, items)):
        new = [i for i in found if i not in named]
        if turn.role == "recommender" and new:
            suggested = True
            if not seeker_text:
                skipped["no seeker message before"] += 1
            else:
                cases.append(ChatCase(
                    dialogue.id, len(cases), t, new[0], dialogue.titles[found[new[0]]],
                    case_kind(seeds, seeker_text, parser), tuple(seeds), tuple(named),
                    tuple(seeker_text)))
            if protocol == "first":
                break
        if turn.role == "seeker":
            seeker_text.append(turn.text)
            seeds += [i for i in found if i not in seeds]
        named += new
    if not suggested:
        skipped["no new suggestion"] += 1
    return cases

