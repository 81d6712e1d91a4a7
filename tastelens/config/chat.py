"""How a chat session reads messages and asks the pipeline: one config, read by the session,
the rule parser and the LLM's intent reader (each of its fields has its default here).

It sits in the core so that :class:`~tastelens.config.settings.Settings` can hold it (``[chat]`` in
the settings file, ``TASTELENS_CHAT__*`` in the environment); the chat itself lives in
:mod:`tastelens.agent.chat`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tastelens.config.base import ConfigSection
from tastelens.config.pipeline import MAX_K


class ChatConfig(ConfigSection):
    """How a chat session reads messages and asks the pipeline."""

    mode: Literal["intent", "tools"] = Field(
        default="intent", description="'intent': rules + guided-JSON intent (works with the "
                                      "135M default); 'tools': a LangChain tool-calling agent "
                                      "(needs a model that calls tools).")
    k: int = Field(default=10, ge=1, le=MAX_K, description="Items per answer.")
    use_llm: bool = Field(default=True, description="Ask the LLM to read the messages the "
                                                    "rules cannot read on their own.")
    intent_max_tokens: int = Field(default=160, ge=16)
    intent_deadline_s: float = Field(
        default=2.0, gt=0, description="How long a turn waits for the LLM's reading of a "
                                       "message the rules are not sure of; past it the rules "
                                       "answer alone (counted as 'llm-failed').")
    adapter: str | None = Field(default=None, description="LoRA adapter for the intent reply.")
    title_cutoff: float = Field(default=0.86, gt=0.0, le=1.0,
                                description="difflib ratio a misspelt title must reach.")
    recent_years: int = Field(default=10, ge=1, description="'More recent' before any list: "
                                                            "the catalog's newest N years.")
    older_years: int = Field(default=20, ge=1, description="'Older' before any list: older "
                                                           "than the newest year minus N.")
    max_queries: int = Field(default=4, ge=0, description="Free-text wishes kept (newest).")
    max_named: int = Field(default=20, ge=1, description="Films named with liking (a "
                                                         "visitor's history) and with dislike "
                                                         "kept (newest).")
    # -- bounds on one message's work and on a session's memory ------------------------------
    max_fuzzy_titles: int = Field(
        default=2, ge=0,
        description="Misspelt-title look-ups per message ('like Toy Stroy'): each compares "
                    "the phrase with every title of the catalog (milliseconds on ~10k "
                    "titles), so a message of hundreds of 'like X' phrases would cost seconds "
                    "of CPU; past this many, a phrase must name a title exactly.")
    max_message_tokens: int = Field(
        default=200, ge=8,
        description="Words of a message the rules read (the first N): a chat message that "
                    "says what it wants is far shorter, and every rule's work grows with it.")
    max_seeds: int = Field(
        default=5, ge=1, description="Titles named in one message kept as seeds ('like Heat "
                                     "and Ronin', 'I loved Heat (1995)'); each one is a "
                                     "retrieval query.")
    max_likes: int = Field(
        default=8, ge=1, description="Stated likes a session keeps ('I love 90s musicals'), "
                                     "newest first out of it when full.")
    max_like_chars: int = Field(default=80, ge=8,
                                description="Characters kept of each stated like.")
    max_shown: int = Field(
        default=200, ge=1,
        description="Items a session remembers as shown (what 'more' leaves out), newest "
                    "kept; older ones may come back after that many.")
    tools_max_steps: int = Field(default=12, ge=2,
                                 description="Agent graph steps per turn (mode 'tools').")
