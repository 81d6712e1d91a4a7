"""Replaying conversations through the chat, in this process or over HTTP.

Both clients open a fresh conversation per dialogue and answer the same two calls:
``say(text)`` — a seeker's message, answered — and ``observe(text)`` — a recommender's,
recorded (:meth:`ChatSession.observe` in process, ``POST /v1/chat`` with
``"role": "assistant"`` over HTTP). The harness times each call itself (wall time, so the
HTTP figure includes the round trip).

- :class:`InProcessChat`: :class:`~tastelens.agent.chat.session.ChatSession` — the class the
  API serves — on one :class:`~tastelens.agent.pipeline.RecommendPipeline` shared by all
  conversations (:func:`in_process_chat` builds both from settings). ``ChatConfig.k`` is set
  to the largest cut-off. Without the LLM (``--no-llm``) the session has no LLM reader and
  the pipeline is configured not to ask the LLM (no LLM feature in the learned ranker, data
  templates for explanations); an LLM re-rank mode ('score', 'listwise') is then an error.
- :class:`HttpChat`: a running ``tastelens api``. The list size is the server's ``chat.k``
  (start it with ``TASTELENS_CHAT__K=50`` to score @50); the run records the longest list
  seen.

A turn that fails (an error the chat reports, an HTTP error status) is recorded with its
error and gives no list; an unreachable server or a refused API key stops the run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tastelens.errors import ConfigError, TastelensError

MAX_MESSAGE_CHARS = 4_000
"""Longer messages are cut (the API refuses longer ones; both clients cut alike)."""


class ChatEvalError(TastelensError):
    """The chat under evaluation cannot be reached or refuses the run."""


@dataclass
class TurnResult:
    """One replayed message: the list it returned (None: none), what the chat said it did."""

    role: str
    seconds: float
    items: list[str] | None = None
    kind: str = ""
    path: str = ""
    error: str | None = None


@dataclass
class CaseOutcome:
    """What the chat had shown when a case's target was suggested."""

    items: list[str] | None
    """The most recent list (None: no turn returned one)."""
    turns: list[TurnResult] = field(default_factory=list)
    """The turns replayed since the conversation's previous case."""


class InProcessConversation:
    def __init__(self, session: Any, deadline_s: float | None) -> None:
        self.session = session
        self.deadline_s = deadline_s

    def say(self, text: str) -> TurnResult:
        from tastelens.llm.deadline import llm_deadline

        started = time.perf_counter()
        try:
            with llm_deadline(self.deadline_s):  # one LLM budget per turn, as the API gives
                turn = self.session.respond(text)
        except TastelensError as exc:
            return TurnResult("seeker", time.perf_counter() - started, error=str(exc))
        seconds = time.perf_counter() - started
        recs = turn.recommendations
        return TurnResult("seeker", seconds, [r.item for r in recs.items] if recs else None,
                          turn.report.kind, turn.report.path)

    def observe(self, text: str) -> TurnResult:
        started = time.perf_counter()
        turn = self.session.observe(text)
        return TurnResult("recommender", time.perf_counter() - started, None,
                          turn.report.kind, turn.report.path)

    def close(self) -> None:
        """Nothing to release: the pipeline is the client's."""


class InProcessChat:
    """Fresh :class:`ChatSession` s on one shared pipeline."""

    mode = "in-process"

    def __init__(self, settings: Any, dataset: Any, pipeline: Any, *, llm: Any = None,
                 config: Any, deadline_s: float | None = None, owned: Sequence[Any] = ()) -> None:
        self.settings = settings
        self.dataset = dataset
        self.pipeline = pipeline
        self.llm = llm
        self.config = config
        self.deadline_s = deadline_s
        self._owned = list(owned)

    def open(self) -> InProcessConversation:
        from tastelens.agent.chat.session import ChatSession

        session = ChatSession.from_settings(self.settings, self.dataset, llm=self.llm,
                                            pipeline=self.pipeline, config=self.config)
        return InProcessConversation(session, self.deadline_s)

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "llm": self.llm is not None, "k": self.config.k,
                "rerank": self.pipeline.config.rerank.mode}

    def close(self) -> None:
        for thing in reversed(self._owned):
            thing.close()


def no_llm_pipeline_config(config: Any) -> Any:
    """``config`` (a PipelineConfig) changed so that a recommendation asks the LLM nothing."""
    if config.rerank.mode in ("score", "listwise"):
        raise ConfigError(f"--no-llm: recommend.rerank.mode {config.rerank.mode!r} asks the "
                          "LLM; use 'learned' or 'none' (TASTELENS_RECOMMEND__RERANK__MODE)")
    return config.model_copy(deep=True, update={
        "rerank": config.rerank.model_copy(update={"llm_feature": False}),
        "explain": config.explain.model_copy(update={"use_llm": False})})


def in_process_chat(settings: Any, dataset: Any, *, use_llm: bool, k: int) -> InProcessChat:
    """The pipeline and chat config of ``settings`` (see the module docstring); close it."""
    from tastelens.agent.pipeline import RecommendPipeline
    from tastelens.llm.registry import create_backend

    config = settings.recommend if use_llm else no_llm_pipeline_config(settings.recommend)
    chat = settings.chat.model_copy(update={"k": k, "use_llm": settings.chat.use_llm and use_llm,
                                            "mode": "intent"})
    # Without the LLM the backend is made (the pipeline wants one) but never started or asked.
    backend = create_backend(settings)
    try:
        pipeline = RecommendPipeline.from_settings(settings, dataset, llm=backend, config=config)
    except BaseException:
        backend.close()
        raise
    owned = [backend, pipeline]
    try:
        if use_llm:
            pipeline.warm_up()  # the encoder and the LLM server now, not in the first turn
        else:
            warm = getattr(pipeline.retriever, "warm_up", None)
            if callable(warm):
                warm()
    except BaseException:
        for thing in reversed(owned):
            thing.close()
        raise
    return InProcessChat(settings, dataset, pipeline, llm=backend if use_llm else None,
                         config=chat, deadline_s=settings.llm.interactive_deadline_s,
                         owned=owned)


class HttpConversation:
    def __init__(self, client: Any, url: str) -> None:
        self.client = client
        self.url = url
        self.session_id: str | None = None

    def _post(self, text: str, role: str) -> TurnResult:
        import httpx

        body: dict[str, Any] = {"message": text, "role": role}
        if self.session_id is not None:
            body["session_id"] = self.session_id
        started = time.perf_counter()
        try:
            reply = self.client.post("/v1/chat", json=body)
        except httpx.TransportError as exc:
            raise ChatEvalError(f"the chat API at {self.url} cannot be reached: {exc}") from None
        seconds = time.perf_counter() - started
        who = "seeker" if role == "user" else "recommender"
        if reply.status_code in (401, 403):
            raise ChatEvalError(f"the chat API at {self.url} refused the API key (HTTP "
                                f"{reply.status_code}): pass --api-key")
        if reply.status_code != 200:
            return TurnResult(who, seconds, error=f"HTTP {reply.status_code}: "
                                                  f"{_error_message(reply)}")
        data = reply.json()
        self.session_id = data["session_id"]
        report = (data.get("turn") or {}).get("report") or {}
        recs = data.get("recommendations")
        items = [r["item"] for r in recs["items"]] if recs is not None else None
        return TurnResult(who, seconds, items, report.get("kind", ""), report.get("path", ""))

    def say(self, text: str) -> TurnResult:
        return self._post(text, "user")

    def observe(self, text: str) -> TurnResult:
        return self._post(text, "assistant")

    def close(self) -> None:
        """Sessions expire on the server."""


class HttpChat:
    """Conversations over ``POST /v1/chat`` of a running ``tastelens api``."""

    mode = "http"

    def __init__(self, url: str, *, api_key: str | None = None, timeout_s: float = 120.0,
                 transport: Any = None) -> None:
        import httpx

        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s,
                                   transport=transport)

    def check(self) -> dict[str, Any]:
        """The server's /health; a ChatEvalError when it does not answer or refuses the key
        (asked with an empty chat body: the key is checked before the body, so a good key
        gets a 422 and no session is made)."""
        import httpx

        try:
            reply = self.client.get("/health")
            if reply.status_code == 200:
                auth = self.client.post("/v1/chat", json={})
        except httpx.TransportError as exc:
            raise ChatEvalError(f"the chat API at {self.url} cannot be reached: {exc} "
                                "(start it with `tastelens api`)") from None
        if reply.status_code != 200:
            raise ChatEvalError(f"{self.url}/health answered HTTP {reply.status_code}")
        if auth.status_code in (401, 403):
            raise ChatEvalError(f"the chat API at {self.url} refused the API key (HTTP "
                                f"{auth.status_code}): pass --api-key")
        return reply.json()

    def open(self) -> HttpConversation:
        return HttpConversation(self.client, self.url)

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "url": self.url, "k": "the server's chat.k"}

    def close(self) -> None:
        self.client.close()


def _error_message(reply: Any) -> str:
    try:
        return str(reply.json()["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return reply.text[:300]


def replay(conversation: Any, turns: Sequence[Any], case_turns: Sequence[int], *,
           observe: bool) -> list[CaseOutcome]:
    """Send ``turns`` (a dialogue's) up to each of ``case_turns`` (ascending turn indices of
    its cases): seeker turns are said, recommender turns observed when ``observe`` (else
    skipped); one :class:`CaseOutcome` per case, holding the most recent list then."""
    outcomes: list[CaseOutcome] = []
    last: list[str] | None = None
    done = 0
    for stop in case_turns:
        records: list[TurnResult] = []
        for turn in turns[done:stop]:
            text = turn.text.strip()[:MAX_MESSAGE_CHARS]
            if not text:
                continue  # nothing a person would send
            if turn.role == "seeker":
                result = conversation.say(text)
                if result.items is not None:
                    last = result.items
            elif observe:
                result = conversation.observe(text)
            else:
                continue
            records.append(result)
        done = max(done, stop)
        outcomes.append(CaseOutcome(None if last is None else list(last), records))
    return outcomes
