"""The LLM backend protocol: typed requests and results, one abstract method, and structured
(JSON -> pydantic) output with repair and one retry, built on it.

A backend implements only :meth:`LLMBackend._generate`. Everything callers use —
:meth:`~LLMBackend.generate`, :meth:`~LLMBackend.structured`,
:meth:`~LLMBackend.structured_many` and the :class:`LLMStats` counters — lives here, so every
backend parses, retries and counts the same way.

Model misbehaviour (invalid JSON, a reply that fails validation, a per-request server error) is
data: it comes back as a failed :class:`ParseOutcome` or a :class:`ChatFailure`, and the caller
chooses its deterministic fallback. Only problems a person must fix raise (see
:mod:`tastelens.llm.errors`). Model output is parsed with ``json`` and pydantic, never
evaluated.

Reliability lives here too, so every backend has it: :meth:`LLMBackend.generate` honours the
interactive deadline of :mod:`tastelens.llm.deadline` (a call made after it fails at once with
kind ``"deadline"``) and goes through the backend's :class:`~tastelens.llm.breaker.CircuitBreaker`
(calls fail fast with ``CircuitOpenError`` after repeated timeouts or connection failures).
"""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tastelens.config.settings import LLMSettings, Settings
from tastelens.llm.breaker import CircuitBreaker
from tastelens.llm.deadline import time_left
from tastelens.llm.errors import LLMRequestError, LLMUnavailableError
from tastelens.llm.repair import closed_prefixes

T = TypeVar("T", bound=BaseModel)


class ChatMessage(BaseModel):
    """One chat turn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    """One chat completion request, independent of the backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: tuple[ChatMessage, ...] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1,
                                   description="Completion limit; None = settings default.")
    temperature: float | None = Field(default=None, ge=0.0,
                                      description="None = settings default (0 = greedy).")
    json_schema: dict[str, Any] | None = Field(
        default=None, description="Constrain (guided decoding) or ask for JSON of this schema.")
    logprobs: int | None = Field(
        default=None, ge=0, le=20,
        description="Return the chosen token's logprob plus this many alternatives per token.")
    adapter: str | None = Field(default=None, description="LoRA adapter name, None = base model.")
    stop: tuple[str, ...] = Field(default=(), description="Stop strings.")


class TokenLogprob(BaseModel):
    """Log-probability of one generated token and of its top alternatives."""

    model_config = ConfigDict(extra="forbid")

    token: str
    logprob: float
    top: dict[str, float] = Field(default_factory=dict)


class ChatResult(BaseModel):
    """A completed request."""

    model_config = ConfigDict(extra="forbid")

    ok: Literal[True] = True
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    logprobs: list[TokenLogprob] | None = None
    finish_reason: str | None = None
    cached: bool = Field(default=False, description="Answered from a reply cache "
                                                    "(tastelens.llm.cache): no request made.")


FailureKind = Literal["timeout", "deadline", "bad_request", "server_error", "error"]
"""'timeout': sent, no reply in time; 'deadline': the interactive deadline ran out (not sent,
or sent with less than half of it left and not answered in time: no evidence against the server);
'bad_request' / 'server_error': the server refused it (4xx) or failed (5xx); 'error': other."""


class ChatFailure(BaseModel):
    """A request the backend could not complete (timeout, rejected prompt, …): a result, not an
    exception, so one bad request does not sink a batch."""

    model_config = ConfigDict(extra="forbid")

    ok: Literal[False] = False
    kind: FailureKind = "error"
    message: str
    latency_s: float = 0.0


ChatOutcome = ChatResult | ChatFailure


class ParseOutcome(BaseModel, Generic[T]):
    """Result of :meth:`LLMBackend.structured`: ``value`` when the reply parsed (first try or
    after the one retry), else ``value is None`` and ``error`` says why."""

    value: T | None = None
    attempts: int = 0
    raw: list[str] = Field(default_factory=list, description="Every reply text received.")
    error: str | None = None
    repaired: bool = Field(
        default=False, description="The reply was cut off (or wrapped in junk) and parsed "
                                   "after closing it at its last complete value.")
    failure: FailureKind | None = Field(
        default=None, description="When the last attempt got no reply: the request's "
                                  "ChatFailure kind ('timeout', 'deadline', …).")

    @property
    def ok(self) -> bool:
        return self.value is not None


class LLMStats(BaseModel):
    """Counters for one backend instance; thread-safe through :meth:`LLMBackend._count`."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: int = Field(default=0, description="Requests that came back as ChatFailure.")
    structured_calls: int = 0
    invalid_first: int = Field(default=0, description="Structured replies invalid at first try.")
    invalid_after_retry: int = Field(
        default=0, description="…and still not valid after the retry (invalid or failed).")
    repaired: int = Field(default=0, description="Invalid replies made valid by closing them "
                                                 "at their last complete value (no retry).")
    seconds: float = Field(default=0.0, description="Wall time spent inside generate().")


def parse_json_reply(text: str, schema: type[T]) -> T:
    """Parse a reply into ``schema``: the whole text, else the first JSON object in it (small
    models wrap JSON in prose or ``` fences). Raises ValueError / ValidationError."""
    stripped = text.strip()
    try:
        return schema.model_validate_json(stripped)
    except ValidationError as exc:
        first_error: Exception = exc
    start = stripped.find("{")
    if start < 0:
        raise first_error
    try:
        obj, _end = json.JSONDecoder().raw_decode(stripped[start:])
    except json.JSONDecodeError:
        raise first_error from None
    return schema.model_validate(obj)


RetryFn = Callable[[ChatRequest, str, str], ChatRequest | None]
"""Builds the one retry of an invalid reply from (request, reply text, error); None = none."""


def repair_reply(text: str, schema: type[T]) -> T | None:
    """The longest closed prefix of a cut-off JSON reply that ``schema`` accepts, else None."""
    for candidate in closed_prefixes(text):
        try:
            return schema.model_validate(candidate)
        except ValidationError:
            continue
    return None


def _retry_request(request: ChatRequest, reply: str, error: str) -> ChatRequest:
    """The one retry: show the model its reply and the validation error."""
    fix = ChatMessage(role="user", content=(
        f"That reply was not valid: {error[:400]}\n"
        "Answer again with only a JSON object that matches the schema."))
    messages = (*request.messages, ChatMessage(role="assistant", content=reply[:2000]), fix)
    return request.model_copy(update={"messages": messages})


def _short_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}"
                         for e in exc.errors()[:5])
    return str(exc)


def _why(exc: Exception, result: ChatResult) -> str:
    reason = _short_error(exc)
    if result.finish_reason == "length":
        return f"reply cut off at max_tokens ({result.completion_tokens} tokens); {reason}"
    return reason


class LLMBackend(ABC):
    """Base class of every backend. Subclasses implement :meth:`_generate` only (and may
    override :meth:`close`); registration by name is in :mod:`tastelens.llm.registry`."""

    name: ClassVar[str] = "base"
    #: True when the backend enforces ``json_schema`` by guided decoding (vs. prompting).
    guided_json: ClassVar[bool] = False

    def __init__(self, *, default_max_tokens: int | None = None,
                 default_temperature: float | None = None,
                 default_concurrency: int | None = None,
                 breaker_failures: int | None = None,
                 breaker_cooldown_s: float | None = None) -> None:
        """What a request or a call leaves unset, and the circuit breaker's settings; None =
        the :class:`LLMSettings` default (``llm.max_tokens``, ``llm.temperature``,
        ``llm.concurrency``, ``llm.breaker_failures``, ``llm.breaker_cooldown_s``)."""
        shared = LLMSettings()
        self.breaker = CircuitBreaker(
            shared.breaker_failures if breaker_failures is None else breaker_failures,
            shared.breaker_cooldown_s if breaker_cooldown_s is None else breaker_cooldown_s)
        self.default_max_tokens = (shared.max_tokens if default_max_tokens is None
                                   else default_max_tokens)
        self.default_temperature = (shared.temperature if default_temperature is None
                                    else default_temperature)
        self.default_concurrency = (shared.concurrency if default_concurrency is None
                                    else default_concurrency)
        self.stats = LLMStats()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> LLMBackend:
        """Build from resolved settings (what :func:`~tastelens.llm.registry.create_backend`
        calls); backends with more to configure override this."""
        return cls(**cls.defaults_from(settings))

    @staticmethod
    def defaults_from(settings: Settings) -> dict[str, Any]:
        return {"default_max_tokens": settings.llm.max_tokens,
                "default_temperature": settings.llm.temperature,
                "default_concurrency": settings.llm.concurrency,
                "breaker_failures": settings.llm.breaker_failures,
                "breaker_cooldown_s": settings.llm.breaker_cooldown_s}

    @abstractmethod
    def _generate(self, requests: Sequence[ChatRequest], concurrency: int) -> list[ChatOutcome]:
        """Run ``requests`` (defaults already filled in) with at most ``concurrency`` in flight;
        return one outcome per request, in order. Raise only for errors a person must fix."""

    # -- built on _generate ------------------------------------------------------------

    def generate(self, requests: Sequence[ChatRequest], *,
                 concurrency: int | None = None) -> list[ChatOutcome]:
        """Complete every request; per-request failures come back as :class:`ChatFailure`.

        Inside an interactive deadline that has passed, every request fails at once (kind
        ``"deadline"``). Raises :class:`~tastelens.llm.breaker.CircuitOpenError` (an
        ``LLMUnavailableError``) while the breaker is open."""
        if not requests:
            return []
        filled = [self._with_defaults(r) for r in requests]
        probe = self.breaker.before_call()  # an open breaker is the better reason to give
        left = time_left()
        if left is not None and left <= 0:
            self.breaker.release(probe)
            outcomes: list[ChatOutcome] = [ChatFailure(
                kind="deadline", message="not sent: the interactive LLM deadline "
                                         "(llm.interactive_deadline_s) was already spent")
                for _ in filled]
            self._count(requests=len(outcomes), errors=len(outcomes))
            return outcomes
        started = time.perf_counter()
        try:
            outcomes = self._generate(filled, max(1, concurrency or self.default_concurrency))
        except LLMUnavailableError:
            self.breaker.failure(probe)
            raise
        except LLMRequestError:
            self.breaker.success()  # the server answered (and refused): it is up
            raise
        except BaseException:
            self.breaker.release(probe)
            raise
        finally:
            self._count(seconds=time.perf_counter() - started)
        if len(outcomes) != len(filled):  # a backend bug, not model behaviour
            self.breaker.release(probe)
            raise RuntimeError(f"{type(self).__name__} returned {len(outcomes)} results for "
                               f"{len(filled)} requests")
        self._judge(outcomes, probe)
        for outcome in outcomes:
            if isinstance(outcome, ChatResult):
                if not outcome.cached:
                    self._count(requests=1, prompt_tokens=outcome.prompt_tokens,
                                completion_tokens=outcome.completion_tokens)
            else:
                self._count(requests=1, errors=1)
        return outcomes

    def _judge(self, outcomes: Sequence[ChatOutcome], probe: bool) -> None:
        """Tell the breaker what a call showed: any answer (even a 4xx/5xx) means the server
        is up; timeouts and nothing else mean it is not; anything else says nothing."""
        failures = [o.kind for o in outcomes if isinstance(o, ChatFailure)]
        kinds = set(failures)
        if len(failures) < len(outcomes) or kinds & {"bad_request", "server_error"}:
            self.breaker.success()
        elif "timeout" in kinds:
            self.breaker.failure(probe)
        else:
            self.breaker.release(probe)

    def chat(self, request: ChatRequest) -> ChatOutcome:
        """One request."""
        return self.generate([request])[0]

    def structured(self, request: ChatRequest, schema: type[T]) -> ParseOutcome[T]:
        """One request whose reply must parse into ``schema`` (see :meth:`structured_many`)."""
        return self.structured_many([request], schema)[0]

    def structured_many(self, requests: Sequence[ChatRequest], schema: type[T], *,
                        concurrency: int | None = None, repair: bool = False,
                        retry: RetryFn | None = None) -> list[ParseOutcome[T]]:
        """Send each request with its ``json_schema`` (the schema's own JSON schema when the
        request has none), parse every reply with pydantic, and count.

        An invalid reply is first repaired when ``repair`` is set (closed at its last complete
        value, :mod:`tastelens.llm.repair`), else retried once, all retries in one second batch:
        ``retry(request, reply, error)`` builds the retry (None: no retry); by default it shows
        the model its reply and the error. Never raises for model misbehaviour: a reply still
        invalid, or a request that failed, gives ``ParseOutcome(value=None, error=...)``.
        """
        own_schema = schema.model_json_schema()
        first = [r if r.json_schema is not None else r.model_copy(
            update={"json_schema": own_schema}) for r in requests]
        outcomes = [ParseOutcome[schema]() for _ in first]  # type: ignore[valid-type]
        self._count(structured_calls=len(first))
        retry_idx: list[int] = []
        retry_req: list[ChatRequest] = []
        for i, result in enumerate(self.generate(first, concurrency=concurrency)):
            outcomes[i].attempts = 1
            if isinstance(result, ChatFailure):
                outcomes[i].error = f"{result.kind}: {result.message}"
                outcomes[i].failure = result.kind
                continue
            outcomes[i].raw.append(result.text)
            exc = self._read(outcomes[i], result.text, schema, repair, first_try=True)
            if exc is not None:
                why = _why(exc, result)
                again = (retry or _retry_request)(first[i], result.text, why)
                if again is None:
                    self._count(invalid_after_retry=1)
                    outcomes[i].error = f"invalid: {why}"
                else:
                    retry_idx.append(i)
                    retry_req.append(again)
        for i, result in zip(retry_idx, self.generate(retry_req, concurrency=concurrency)):
            outcomes[i].attempts = 2
            if isinstance(result, ChatFailure):
                self._count(invalid_after_retry=1)
                outcomes[i].error = f"{result.kind}: {result.message}"
                outcomes[i].failure = result.kind
                continue
            outcomes[i].raw.append(result.text)
            exc = self._read(outcomes[i], result.text, schema, repair, first_try=False)
            if exc is not None:
                self._count(invalid_after_retry=1)
                outcomes[i].error = f"invalid after retry: {_why(exc, result)}"
        return outcomes

    def _read(self, outcome: ParseOutcome[T], text: str, schema: type[T], repair: bool, *,
              first_try: bool) -> ValueError | ValidationError | None:
        """Parse ``text`` into ``outcome.value`` (repairing it when ``repair``); the parse
        error when that failed. Counts invalid first replies and repairs."""
        try:
            outcome.value = parse_json_reply(text, schema)
            return None
        except (ValueError, ValidationError) as exc:
            if first_try:
                self._count(invalid_first=1)
            if repair and (fixed := repair_reply(text, schema)) is not None:
                self._count(repaired=1)
                outcome.value, outcome.repaired = fixed, True
                return None
            return exc

    def close(self) -> None:  # noqa: B027 - optional hook; most backends own nothing
        """Release clients, models or server processes this backend owns."""

    def __enter__(self) -> LLMBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- helpers -----------------------------------------------------------------------

    def _with_defaults(self, request: ChatRequest) -> ChatRequest:
        update: dict[str, Any] = {}
        if request.max_tokens is None:
            update["max_tokens"] = self.default_max_tokens
        if request.temperature is None:
            update["temperature"] = self.default_temperature
        return request.model_copy(update=update) if update else request

    def _count(self, **deltas: float) -> None:
        with self._lock:
            for key, delta in deltas.items():
                setattr(self.stats, key, getattr(self.stats, key) + delta)

    def reset_stats(self) -> LLMStats:
        """Return the counters so far and start new ones."""
        with self._lock:
            old, self.stats = self.stats, LLMStats()
        return old


def user(content: str, *, system: str | None = None, **fields: Any) -> ChatRequest:
    """Shorthand: a request with one user message (and an optional system message)."""
    messages = ([ChatMessage(role="system", content=system)] if system else []) + [
        ChatMessage(role="user", content=content)]
    return ChatRequest(messages=tuple(messages), **fields)
