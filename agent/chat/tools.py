"""Chat mode 'tools': a LangChain 1.x tool-calling agent over the chat session's operations.

For a model that can call tools (not the 135M default), :class:`ToolChatAgent` builds an
agent with :func:`langchain.agents.create_agent` whose tools are the session's own functions:

- ``search_catalog(query)``: titles resembling a query (the chat's title matcher);
- ``item_details(item_id)``: one item's title, year, genres and tags;
- ``get_profile()``: the person's interest profile and the session's constraints;
- ``recommend(...)``: seeds, genres, years, wishes -> the pipeline's list (constraints
  accumulate exactly as in intent mode: the tool builds a ChatIntent and the session applies
  it; seeds and genres are resolved against the catalog, unknown ones are reported back);
- ``explain(item)``: the last list's explanation for an item (by rank, id or title).

Tool results are compact JSON for the model; the person sees the session's list and the
agent's final message. When the model server is unreachable the turn falls back to the
intent reader (rules only), so the chat still answers.
"""

from __future__ import annotations

import json
from string import Template
from typing import TYPE_CHECKING, Any, Protocol

from tastelens.agent.chat.catalog import CatalogVocabulary
from tastelens.agent.chat.intent import ChatIntent
from tastelens.agent.chat.reply import ChatTurn, TurnReport
from tastelens.agent.recommendation import Constraints, RecommendationList
from tastelens.config.chat import ChatConfig
from tastelens.data.dataset import Dataset
from tastelens.errors import ConfigError
from tastelens.llm.errors import LLMUnavailableError
from tastelens.llm.models import served_model_name
from tastelens.prompts.renderer import TEMPLATES_DIR
from tastelens.schemas import InterestProfile

if TYPE_CHECKING:
    from tastelens.config.settings import Settings

KEEP_TURNS = 6  # earlier human turns (and their tool traffic) are dropped from the context


class ToolHost(Protocol):
    """What the tools need of a :class:`~tastelens.agent.chat.session.ChatSession`: its
    state, and the two steps of a turn (read a message, apply an intent)."""

    dataset: Dataset
    vocab: CatalogVocabulary
    config: ChatConfig
    user: str | None
    pipeline: Any
    constraints: Constraints
    last: RecommendationList | None

    def profile(self) -> InterestProfile | None: ...

    def read(self, message: str) -> ChatIntent: ...

    def apply(self, intent: ChatIntent) -> ChatTurn: ...


def chat_model_from_settings(settings: Settings) -> Any:
    """A ChatOpenAI model at the configured OpenAI-compatible server (llm.base_url, else our
    vLLM server's host:port)."""
    from langchain_openai import ChatOpenAI  # heavy: only 'tools' mode loads it

    llm = settings.llm
    base_url = llm.base_url or f"http://{llm.host}:{llm.port}/v1"
    return ChatOpenAI(model=served_model_name(settings), base_url=base_url,
                      api_key=llm.api_key.get_secret_value(), temperature=llm.temperature,
                      max_tokens=llm.max_tokens, timeout=llm.request_timeout_s)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class ToolChatAgent:
    """The agent graph and its message memory for one chat session."""

    def __init__(self, session: ToolHost, chat_model: Any) -> None:
        from langchain.agents import create_agent

        self.session = session
        path = TEMPLATES_DIR / "chat_tools_system.md"
        if not path.is_file():
            raise ConfigError(f"prompt template {path} is missing")
        system = Template(path.read_text(encoding="utf-8").strip()).substitute(
            categories=", ".join(session.vocab.categories))
        self.tools = self._make_tools()
        self.graph = create_agent(chat_model, self.tools, system_prompt=system)
        self.messages: list[Any] = []
        self._turns: list[ChatTurn] = []
        self.calls: list[str] = []  # tool names called, in order (inspectable in tests)

    # -- tools ---------------------------------------------------------------------------
    def _make_tools(self) -> list[Any]:
        from langchain_core.tools import tool

        session, vocab, dataset = self.session, self.session.vocab, self.session.dataset

        def card(item_id: str) -> dict[str, Any]:
            it = dataset.items[item_id]
            return {"id": it.id, "title": it.title, "year": it.year,
                    "genres": list(it.categories)}

        @tool
        def search_catalog(query: str, limit: int = 5) -> str:
            """Find catalog movies whose titles resemble the query."""
            self.calls.append("search_catalog")
            return _dump([card(i) for i in vocab.search(query, max(1, min(limit, 20)))])

        @tool
        def item_details(item_id: str) -> str:
            """Title, year, genres and tags of one catalog movie, by id."""
            self.calls.append("item_details")
            if item_id not in dataset.items:
                return _dump({"error": f"no item with id {item_id!r}"})
            return _dump({**card(item_id), "tags": list(dataset.items[item_id].tags[:8])})

        @tool
        def get_profile() -> str:
            """What is known about the person's taste, and the filters in force."""
            self.calls.append("get_profile")
            profile = session.profile()
            if profile is None and hasattr(session.pipeline, "profile_for"):
                profile = session.pipeline.profile_for(session.user)
            out: dict[str, Any] = {"constraints": session.constraints.model_dump(
                exclude_defaults=True)}
            if profile is not None:
                out.update(summary=profile.summary,
                           interests=[i.label for i in profile.interests[:8]],
                           categories=[c.category for c in profile.categories[:5]])
            return _dump(out)

        @tool
        def recommend(seed_titles: list[str] | None = None,
                      include_genres: list[str] | None = None,
                      exclude_genres: list[str] | None = None, year_min: int | None = None,
                      year_max: int | None = None, newer: bool = False, older: bool = False,
                      wishes: list[str] | None = None, more: bool = False) -> str:
            """Recommend movies. Pass only what this message changes; earlier requests are
            remembered. more=true shows further movies for the same request."""
            self.calls.append("recommend")
            intent = ChatIntent(action="more" if more else "recommend", source="tools",
                                year_min=year_min, year_max=year_max,
                                recency="newer" if newer else "older" if older else None,
                                wishes=[w for w in wishes or [] if w.strip()][:3])
            unknown: list[str] = []
            for title in seed_titles or []:
                item = vocab.match_title(title, cutoff=session.config.title_cutoff)
                if item is None:
                    unknown.append(title)
                elif item not in intent.seed_items:
                    intent.seed_items.append(item)
                    intent.seed_titles.append(dataset.items[item].title)
            for genres, target in ((include_genres, intent.include_categories),
                                   (exclude_genres, intent.exclude_categories)):
                for genre in genres or []:
                    category = vocab.category(genre)
                    (target if category else unknown).append(category or genre)
            turn = session.apply(intent)
            self._turns.append(turn)
            items = turn.recommendations.items if turn.recommendations else []
            return _dump({"note": turn.text, "not_in_catalog": unknown,
                          "items": [{"rank": r.rank, "title": r.title} for r in items]})

        @tool
        def explain(item: str) -> str:
            """Why a movie of the last list was recommended: its number (1 = first) or title."""
            self.calls.append("explain")
            intent = ChatIntent(action="explain", source="tools")
            key = item.strip().lstrip("#")
            if key.isdigit() and session.last is not None and int(key) <= len(
                    session.last.items):
                intent.about_rank = int(key)
            elif key in dataset.items:
                intent.about_item = key
            else:
                intent.about_item = vocab.match_title(key, cutoff=session.config.title_cutoff)
                if intent.about_item is None:
                    return _dump({"error": f"{item!r} is not a catalog title"})
            turn = session.apply(intent)
            self._turns.append(turn)
            return turn.text

        return [search_catalog, item_details, get_profile, recommend, explain]

    # -- one turn ------------------------------------------------------------------------
    def respond(self, message: str) -> ChatTurn:
        from langchain_core.messages import AIMessage, HumanMessage

        self._turns = []
        try:
            result = self.graph.invoke(
                {"messages": [*self.messages, HumanMessage(message)]},
                config={"recursion_limit": self.session.config.tools_max_steps})
        except Exception as exc:  # noqa: BLE001 - only connection failures fall back
            if not _unreachable(exc):
                raise
            turn = self.session.apply(self.session.read(message))
            turn.intent.llm = "unavailable"
            turn.report.path = "llm-failed"
            return turn
        self.messages = _recent(result["messages"])
        final = next((m for m in reversed(result["messages"]) if isinstance(m, AIMessage)),
                     None)
        text = final.text if final is not None else ""
        made = [t for t in self._turns if t.recommendations is not None]
        last = self._turns[-1] if self._turns else None
        intent = last.intent if last is not None else ChatIntent(action="smalltalk",
                                                                 source="tools")
        return ChatTurn(text=text.strip() or (last.text if last else ""),
                        recommendations=made[-1].recommendations if made else None,
                        intent=intent, constraints=self.session.constraints.model_copy(deep=True),
                        report=TurnReport(kind=last.report.kind if last else "smalltalk",
                                          path="llm"))  # the agent read the message


def _recent(messages: list[Any]) -> list[Any]:
    """The messages from the KEEP_TURNS-th last human message on (cut at a human turn, so a
    tool call is never separated from its result)."""
    from langchain_core.messages import HumanMessage

    starts = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
    return messages[starts[-KEEP_TURNS]:] if len(starts) > KEEP_TURNS else list(messages)


def _unreachable(exc: BaseException) -> bool:
    try:
        import openai

        network = (openai.APIConnectionError, LLMUnavailableError, ConnectionError)
    except ImportError:  # pragma: no cover - langchain-openai depends on openai
        network = (LLMUnavailableError, ConnectionError)
    return isinstance(exc, network)
