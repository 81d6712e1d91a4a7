"""The LLM's reading of a chat message, and how it is merged into the rules' reading.

The model fills :class:`IntentReply` under guided JSON decoding (one retry, counted by the
backend). Its reply is a proposal, not a decision — a 135M model invents titles and flips
negations — so :func:`merge_intents` is conservative:

- hard constraints (included/excluded categories, years, recency), 'reset' and 'why' come
  from the rules only (the reply cannot even say them); an LLM genre becomes a soft wish (a
  retrieval query) only when the rules found no constraint in the message at all, and never
  when the model just listed the catalog's first categories in order (SmolLM2 does that
  under the genre enum);
- an LLM seed title is added only when it resolves to a catalog title whose words all occur
  in the message (no invented "The Godfather" for "a crime film");
- an LLM wish is kept only when its words all occur in the message;
- the LLM's action is used only when the rules found no cue and no constraint.

Everything dropped is counted in ``ChatIntent.llm_dropped``.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Sequence
from string import Template
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from tastelens.agent.chat.catalog import CatalogVocabulary, tokens
from tastelens.agent.chat.intent import FILLER, ChatIntent
from tastelens.config.chat import ChatConfig
from tastelens.errors import ConfigError
from tastelens.llm.base import ChatMessage, ChatRequest, LLMBackend, ParseOutcome
from tastelens.llm.deadline import llm_deadline
from tastelens.prompts.renderer import TEMPLATES_DIR, json_data

INTENT_TEMPLATES = ("chat_intent_system.md", "chat_intent_user.md")

Short = Annotated[str, Field(min_length=1, max_length=80)]


class IntentReply(BaseModel):
    """What the model is asked to fill: only what :func:`merge_intents` can use (hard
    constraints, years, 'reset' and 'why' are the rules' alone), small and bounded so the
    135M default finishes it within the turn's wait."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["recommend", "more", "smalltalk"]
    seed_titles: list[Short] = Field(default_factory=list, max_length=1)
    include_genres: list[Short] = Field(default_factory=list, max_length=2)
    wishes: list[Short] = Field(default_factory=list, max_length=2)


def reply_schema(categories: Sequence[str]) -> type[IntentReply]:
    """:class:`IntentReply` with the genre lists limited to the catalog's categories, so
    guided decoding cannot write a title where a genre belongs (SmolLM2 did, and filled
    every list to its maximum until max_tokens cut the reply off)."""
    if not categories:
        return IntentReply
    genre = Literal[tuple(categories)]  # type: ignore[valid-type]
    return create_model(
        "IntentReplyForCatalog", __base__=IntentReply,
        include_genres=(list[genre], Field(default_factory=list, max_length=2)))


def load_templates(templates_dir=TEMPLATES_DIR) -> dict[str, str]:
    out = {}
    for name in INTENT_TEMPLATES:
        path = templates_dir / name
        if not path.is_file():
            raise ConfigError(f"prompt template {path} is missing")
        out[name] = path.read_text(encoding="utf-8").strip()
    return out


class IntentReader:
    """Asks the backend for an :class:`IntentReply` about one message."""

    def __init__(self, llm: LLMBackend, vocab: CatalogVocabulary, *,
                 max_tokens: int | None = None, adapter: str | None = None,
                 templates: dict[str, str] | None = None) -> None:
        """``max_tokens``: None = :class:`ChatConfig`'s ``intent_max_tokens``."""
        self.llm = llm
        self.vocab = vocab
        self.max_tokens = ChatConfig().intent_max_tokens if max_tokens is None else max_tokens
        self.adapter = adapter
        self.templates = templates or load_templates()
        self.schema = reply_schema(vocab.categories)

    def request(self, message: str, shown_titles: Sequence[str]) -> ChatRequest:
        system = Template(self.templates["chat_intent_system.md"]).substitute(
            categories=", ".join(self.vocab.categories))
        shown = "\n".join(f"{i}. {json_data(t)}" for i, t in enumerate(shown_titles, 1))
        user = Template(self.templates["chat_intent_user.md"]).substitute(
            shown=shown or "(none yet)", message=json_data(message[:600]))
        return ChatRequest(
            messages=(ChatMessage(role="system", content=system),
                      ChatMessage(role="user", content=user)),
            max_tokens=self.max_tokens, adapter=self.adapter)  # llm.temperature

    def read(self, message: str, shown_titles: Sequence[str]) -> IntentReply | None:
        """The parsed reply, or None when it was still invalid after the retry (or timed
        out). Raises :class:`~tastelens.llm.errors.LLMUnavailableError` when the server is
        down."""
        return self.read_outcome(message, shown_titles).value

    def read_outcome(self, message: str, shown_titles: Sequence[str],
                     ) -> ParseOutcome[IntentReply]:
        """:meth:`read` with why it failed (``failure``: 'timeout', 'deadline', …)."""
        return self.llm.structured(self.request(message, shown_titles), self.schema)

    def read_within(self, message: str, shown_titles: Sequence[str], seconds: float,
                    ) -> ParseOutcome[IntentReply]:
        """:meth:`read_outcome`, waiting at most ``seconds``: past them the outcome is a
        failure of kind 'deadline'. The request runs in a worker thread inside an LLM
        deadline scope of the same length, so a backend that honours the scope (every real
        one) stops waiting for the server then too; the thread is not joined. Raises
        :class:`~tastelens.llm.errors.LLMUnavailableError` as :meth:`read` does."""
        started = time.monotonic()
        box: list[ParseOutcome[IntentReply] | BaseException] = []

        def work() -> None:
            try:
                with llm_deadline(seconds, since=started, part=True):
                    box.append(self.read_outcome(message, shown_titles))
            except BaseException as exc:  # handed to the waiting turn
                box.append(exc)

        context = contextvars.copy_context()  # the turn's own deadline scope, if any
        worker = threading.Thread(target=context.run, args=(work,), daemon=True,
                                  name="chat-intent")
        worker.start()
        worker.join(max(0.0, started + seconds - time.monotonic()))
        if not box:
            return ParseOutcome[IntentReply](  # attempts: the request it was waiting for
                attempts=1, error=f"deadline: no intent reply within {seconds:g} s",
                failure="deadline")
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]


def _grounded(phrase: str, message_tokens: set[str]) -> bool:
    words = [t for t in tokens(phrase) if t not in FILLER]
    return bool(words) and all(w in message_tokens for w in words)


def merge_intents(rules: ChatIntent, reply: IntentReply, vocab: CatalogVocabulary,
                  message: str) -> ChatIntent:
    """The rules' intent plus what of the LLM's reply survives the checks above."""
    merged = rules.model_copy(deep=True)
    merged.source, merged.llm = "rules+llm", "ok"
    said = set(tokens(message))
    dropped = 0
    certain = rules.action in ("explain", "reset", "more") or bool(
        rules.seed_items or rules.include_categories or rules.exclude_categories
        or rules.year_min or rules.year_max or rules.recency or rules.likes)
    if not certain and reply.action != rules.action:
        # 'reset' is destructive: only an explicit one (the rules') clears the session; and
        # free text the rules kept as a wish is a better answer than smalltalk.
        if not (reply.action == "smalltalk" and rules.wishes):
            merged.action = reply.action
            if reply.action != "recommend":
                merged.wishes = []  # the free text the rules kept was this request itself
    dropped += reply.action != merged.action
    if merged.action != "recommend":  # seeds, genres and wishes only shape a new list
        merged.llm_dropped = dropped + len(reply.seed_titles) + len(reply.include_genres) + len(
            reply.wishes)
        return merged
    for title in reply.seed_titles:
        item = vocab.match_title(title, cutoff=0.9)
        if item is None or item in merged.seed_items or not all(
                w in said for w in vocab.title_keys_of(item)[-1].split()):
            dropped += item not in merged.seed_items
            continue
        merged.seed_items.append(item)
        merged.seed_titles.append(vocab.dataset.items[item].title)
    # Only for a message the rules could not read at all; and a list that is just the
    # catalog's first categories in order is the model enumerating the enum, not reading.
    enumerated = list(reply.include_genres) == vocab.categories[:len(reply.include_genres)]
    for genre in reply.include_genres:
        category = vocab.category(genre)
        if category is None or certain or enumerated:
            dropped += 1
        elif category not in merged.wishes:  # soft: a query, never a filter
            merged.wishes.append(category)
    known = {w.casefold() for w in merged.wishes + merged.likes}
    for wish in reply.wishes:
        text = " ".join(wish.split())
        if text.casefold() in known or vocab.is_category_name(text):
            continue
        content = [t for t in tokens(text) if t not in FILLER]
        if not _grounded(text, said) or len(content) > 4 or any(
                key in " ".join(tokens(text)) for i in merged.seed_items
                for key in vocab.title_keys_of(i)):
            dropped += 1  # invented, the whole message again, or a seed's title again
            continue
        merged.wishes.append(text.casefold())
        known.add(text.casefold())
    merged.llm_dropped = dropped
    return merged

