"""What the chat answers: a :class:`ChatTurn` per message, and its sentences — what was asked
for, in words, and explanations from a list.

Deterministic on purpose: every word of a reply is backed by the session's constraints or by
the pipeline's checked explanations (a "why …?" answer repeats the explanation, the support
of each of its reasons and its cited history), so the chat cannot claim what it did not do.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tastelens.agent.chat.intent import ChatIntent
from tastelens.agent.recommendation import Constraints, RecommendationList
from tastelens.data.dataset import Dataset


HELP = ("Tell me a film you love or what you're in the mood for, e.g. 'something like Heat "
        "but funnier', 'no horror', 'more recent ones', 'why the second one?', 'show me more' "
        "or 'reset'.")
STARTER = ("Hi! To start, here are some widely watched picks (popular with viewers, not yet "
           "chosen for you). ")


ReadPath = Literal["rules", "llm", "llm-failed"]
"""Who read a message: 'rules' (sure, or no LLM configured), 'llm' (the rules were not sure and
the LLM's reading was merged), 'llm-failed' (it was asked, or would have been, but did not
answer in time, answered invalid JSON or is down: the rules answered alone)."""
TurnKind = Literal["recommend", "refine", "why", "more", "reset", "smalltalk", "observed"]


class TurnReport(BaseModel):
    """How one turn was answered: for the interfaces' footers and the latency benchmark."""

    model_config = ConfigDict(extra="forbid")

    kind: TurnKind = Field(default="smalltalk", description="'recommend': a first list or a "
                           "new seed; 'refine': the last request changed; 'why', 'more', "
                           "'reset', 'smalltalk'; 'observed': a message by someone "
                           "else recorded (ChatSession.observe), no answer.")
    path: ReadPath = "rules"
    intent_requests: int = Field(default=0, description="LLM requests the reading sent "
                                                        "(2 with the retry).")
    read_seconds: float = Field(default=0.0, description="Reading the message (rules + LLM).")


class ChatStats(BaseModel):
    """Counts over one session: how many messages each path read (see :data:`ReadPath`)."""

    turns: int = 0
    rules: int = 0
    llm: int = 0
    llm_failed: int = 0

    def count(self, path: ReadPath) -> None:
        self.turns += 1
        if path == "rules":
            self.rules += 1
        elif path == "llm":
            self.llm += 1
        else:
            self.llm_failed += 1


class ChatTurn(BaseModel):
    """The answer to one message."""

    model_config = ConfigDict(extra="forbid")

    text: str
    recommendations: RecommendationList | None = Field(
        default=None, description="A new list, when this turn asked for one.")
    intent: ChatIntent
    constraints: Constraints = Field(description="The session's accumulated constraints.")
    report: TurnReport = Field(default_factory=TurnReport)
    seconds: float = 0.0


def _title(dataset: Dataset, item: str) -> str:
    it = dataset.items.get(item)
    return it.title if it is not None else item


def _join(words: Sequence[str], last: str = "and") -> str:
    words = list(words)
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def constraint_words(c: Constraints, dataset: Dataset, likes: Sequence[str] = (),
                     liked: Sequence[str] = ()) -> str:
    """' like Heat (1995), in Comedy, without Horror, from 1996 on' (or ''); ``liked``: the
    titles a visitor named with liking."""
    parts: list[str] = []
    seeds = [_title(dataset, i) for i in c.seed_items]
    if seeds:
        parts.append("like " + _join(seeds))
    earlier = [t for t in liked if t not in seeds]
    if earlier:
        parts.append("for someone who liked " + _join(earlier[-3:]))
    if likes:
        parts.append("for someone into " + _join(likes[-3:]))
    if c.include_categories:
        parts.append("in " + _join(c.include_categories, "or"))
    if c.exclude_categories:
        parts.append("without " + _join(c.exclude_categories, "or"))
    if c.year_min is not None and c.year_max is not None:
        parts.append(f"from {c.year_min}" + (f" to {c.year_max}" if c.year_max != c.year_min
                                             else " only"))
    elif c.year_min is not None:
        parts.append(f"from {c.year_min} on")
    elif c.year_max is not None:
        parts.append(f"up to {c.year_max}")
    wishes = [q for q in c.queries if q not in likes]
    if wishes:
        parts.append("leaning " + _join([f"'{q}'" for q in wishes[-3:]]))
    return (" " + ", ".join(parts)) if parts else ""


def describe(result: RecommendationList, c: Constraints, dataset: Dataset,
             likes: Sequence[str] = (), *, more: bool = False,
             liked: Sequence[str] = ()) -> str:
    """One sentence introducing a list (the list itself is rendered by the interface)."""
    n = len(result.items)
    what = constraint_words(c, dataset, likes, liked)
    if n == 0 and more:
        return (f"That's all I have{what}. Change the request (e.g. drop a filter) or say "
                "'reset'.")
    if n == 0:
        return f"I found nothing{what}. Try loosening a filter, or say 'reset'."
    noun = "pick" if n == 1 else "picks"
    lead = f"Here are {n} more {noun}" if more else f"Here are {n} {noun}"
    return f"{lead}{what}. Ask 'why the second one?' for the reasons."


def explain_text(last: RecommendationList | None, intent: ChatIntent, dataset: Dataset) -> str:
    """The answer to "why this one?" from the last list's explanations; no new retrieval."""
    if last is None or not last.items:
        return "I haven't shown you anything yet; ask for some recommendations first."
    if intent.about_item is not None:
        rec = next((r for r in last.items if r.item == intent.about_item), None)
        if rec is None:
            return (f"{_title(dataset, intent.about_item)} wasn't in the list I showed you. "
                    "Ask about one of those, e.g. 'why the second one?'.")
    else:
        rank = intent.about_rank or 1
        rank = len(last.items) if rank == -1 else rank
        if not 1 <= rank <= len(last.items):
            return f"There is no #{rank}: the list has {len(last.items)} items."
        rec = last.items[rank - 1]
    head = f"#{rec.rank} {rec.title}: "
    exp = rec.explanation
    if exp is None:
        return head + "it fits what you asked for, but no explanation was recorded for it."
    text = head + exp.text.strip()
    # The same checked facts the explanation was made from, with what makes each true.
    facts = [f"{json.dumps(r.label, ensure_ascii=False)} ({r.support})"
             for r in exp.reasons if r.label and r.support]
    if facts:
        text += " What makes it so: " + "; ".join(facts) + "."
    evidence = [_title(dataset, i) for i in exp.evidence[:3] if i in dataset.items]
    if evidence:
        text += (" (from your history, among the films you liked most like it: "
                 + "; ".join(evidence) + ")")
    return text
