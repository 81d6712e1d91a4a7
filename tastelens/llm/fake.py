"""A scripted backend for unit tests: replies come from a queue the test fills.

    llm = FakeBackend()
    llm.enqueue(['{"genre": "Drama"}', "not json", ChatFailure(kind="timeout", message="slow")])
    outcome = llm.structured(user("..."), Genre)
    assert llm.received[0].json_schema is not None

Each request pops the next scripted reply, in request order. When the queue is empty the
optional ``responder`` answers; with none, :class:`FakeScriptExhausted` says which request had
no reply (a test that sends more requests than it scripted is wrong, not flaky).

Chosen in settings (``llm.backend = "fake"``, e.g. to try the CLI without a model) there is no
script: every request fails as if no server were running, so each stage serves its no-LLM
fallback, flagged, and nothing crashes.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from tastelens.config.settings import Settings
from tastelens.llm.base import (
    ChatFailure,
    ChatOutcome,
    ChatRequest,
    ChatResult,
    LLMBackend,
    TokenLogprob,
)
from tastelens.llm.errors import LLMRequestError, LLMUnavailableError
from tastelens.llm.registry import register_backend

Reply = str | ChatResult | ChatFailure | Exception
Responder = Callable[[ChatRequest], Reply]


class FakeScriptExhausted(AssertionError):
    """More requests arrived than replies were enqueued (and no responder was given)."""


def _unscripted(request: ChatRequest) -> Reply:
    return LLMUnavailableError(
        "llm.backend 'fake' answers scripted replies only (it is for tests) and none are "
        "scripted here; set llm.backend to 'vllm' or 'openai' for a real model")


def _words(text: str) -> int:
    return len(text.split())


@register_backend("fake")
class FakeBackend(LLMBackend):
    """Returns enqueued replies in order and records every request it receives.

    A ``str`` reply becomes a :class:`ChatResult` (token counts are word counts); a
    :class:`ChatResult` or :class:`ChatFailure` is returned as is; an ``Exception`` is raised
    (to test a caller's handling of, e.g., ``LLMUnavailableError``).
    """

    name = "fake"

    def __init__(self, replies: Iterable[Reply] = (), *, responder: Responder | None = None,
                 adapters: Iterable[str] | None = None, **defaults: object) -> None:
        super().__init__(**defaults)  # type: ignore[arg-type]
        #: Adapter names a request may use; None accepts any name.
        self.adapters = None if adapters is None else set(adapters)
        self._queue: deque[Reply] = deque(replies)
        self._queue_lock = threading.Lock()
        self.responder = responder
        self.received: list[ChatRequest] = []
        self.closed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> FakeBackend:
        """The backend ``llm.backend = "fake"`` gives outside a test: nothing scripted, so every
        request raises ``LLMUnavailableError`` and the stages fall back."""
        return cls(responder=_unscripted, **cls.defaults_from(settings))

    def enqueue(self, replies: Iterable[Reply]) -> FakeBackend:
        """Append scripted replies; returns self so tests can chain."""
        if isinstance(replies, (str, ChatResult, ChatFailure, Exception)):
            raise TypeError("enqueue() takes a list of replies, not a single reply")
        with self._queue_lock:
            self._queue.extend(replies)
        return self

    @property
    def pending(self) -> int:
        """Scripted replies not consumed yet (assert 0 at the end of a test)."""
        return len(self._queue)

    def _next_reply(self, request: ChatRequest) -> Reply:
        with self._queue_lock:
            if self._queue:
                return self._queue.popleft()
        if self.responder is not None:
            return self.responder(request)
        last = request.messages[-1].content
        raise FakeScriptExhausted(
            f"FakeBackend script exhausted: request #{len(self.received)} has no enqueued reply "
            f"(last message: {last[:120]!r}); enqueue() more replies or pass responder=")

    def _generate(self, requests: Sequence[ChatRequest], concurrency: int) -> list[ChatOutcome]:
        outcomes: list[ChatOutcome] = []
        for request in requests:
            if (self.adapters is not None and request.adapter is not None
                    and request.adapter not in self.adapters):
                raise LLMRequestError(f"unknown LoRA adapter {request.adapter!r}; configured "
                                      f"adapters: {sorted(self.adapters)}")
            self.received.append(request)
            reply = self._next_reply(request)
            if isinstance(reply, Exception):
                raise reply
            if isinstance(reply, str):
                reply = self._as_result(request, reply)
            outcomes.append(reply)
        return outcomes

    @staticmethod
    def _as_result(request: ChatRequest, text: str) -> ChatResult:
        """A scripted text as a server would return it: words are tokens, cut at max_tokens,
        with (certain, logprob 0) logprobs when asked for."""
        words = text.split()
        limit = request.max_tokens or len(words)
        finish = "length" if len(words) > limit else "stop"
        if finish == "length":
            text, words = " ".join(words[:limit]), words[:limit]
        logprobs = None
        if request.logprobs is not None:
            logprobs = [TokenLogprob(token=w, logprob=0.0, top={w: 0.0} if request.logprobs else {})
                        for w in words]
        prompt = sum(_words(m.content) for m in request.messages)
        return ChatResult(text=text, prompt_tokens=prompt, completion_tokens=len(words),
                          logprobs=logprobs, finish_reason=finish)

    def close(self) -> None:
        self.closed = True
