"""A backend for any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, OpenAI, …).

Requests run on the ``openai`` async client with at most ``concurrency`` in flight (an asyncio
semaphore), so a batch of re-ranking prompts keeps a continuous-batching server busy. Errors are
sorted by who must act:

- server unreachable -> :class:`LLMUnavailableError` (the whole batch stops);
- bad key, unknown model or adapter -> :class:`LLMRequestError` (every request would fail);
- timeout, a rejected prompt (e.g. too long), a 5xx -> that request's :class:`ChatFailure`.

Each request's timeout is ``timeout_s``, capped by what is left of the interactive deadline
(:mod:`tastelens.llm.deadline`) when it leaves the queue, and bounds the whole request (connect,
wait and read together): a server that accepts connections and never answers costs a caller
that long, no more.

JSON output is requested with the standard ``response_format={"type": "json_schema", …}``;
:mod:`tastelens.llm.vllm_server` overrides :meth:`OpenAICompatBackend.request_kwargs` to use
vLLM's guided decoding instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import httpx

from tastelens.config.settings import LLMSettings, Settings
from tastelens.errors import ConfigError
from tastelens.llm.base import (
    ChatFailure,
    ChatOutcome,
    ChatRequest,
    ChatResult,
    LLMBackend,
    TokenLogprob,
)
from tastelens.llm.deadline import capped_timeout, cut_short, scope
from tastelens.llm.errors import LLMRequestError, LLMUnavailableError
from tastelens.llm.models import served_model_name
from tastelens.llm.registry import register_backend

R = TypeVar("R")


def run_sync(coro: Coroutine[Any, Any, R]) -> R:
    """Run ``coro`` to completion from sync code, even when this thread already runs an event
    loop (FastAPI, Jupyter): then it runs on a fresh loop in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def probe_models(base_url: str, api_key: str = "EMPTY", timeout_s: float = 3.0) -> list[str] | None:
    """Model ids served at ``base_url`` (…/v1), or None when nothing answers there."""
    try:
        response = httpx.get(f"{base_url.rstrip('/')}/models", timeout=timeout_s,
                             headers={"Authorization": f"Bearer {api_key}"})
        response.raise_for_status()
        return [m["id"] for m in response.json().get("data", [])]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


@register_backend("openai")
class OpenAICompatBackend(LLMBackend):
    """Chat completions against ``base_url`` (…/v1) with bounded concurrency."""

    def __init__(self, *, base_url: str, model: str, api_key: str | None = None,
                 timeout_s: float | None = None, **defaults: Any) -> None:
        """``api_key`` and ``timeout_s``: None = the :class:`LLMSettings` default
        (``llm.api_key``, ``llm.request_timeout_s``)."""
        super().__init__(**defaults)
        import openai  # noqa: F401 - now, not in the first request (seconds, out of its deadline)

        shared = LLMSettings()
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = shared.api_key.get_secret_value() if api_key is None else api_key
        self.timeout_s = shared.request_timeout_s if timeout_s is None else timeout_s

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAICompatBackend:
        if not settings.llm.base_url:
            raise ConfigError("llm.backend='openai' needs llm.base_url (e.g. "
                              "http://127.0.0.1:8100/v1; TASTELENS_LLM__BASE_URL)")
        return cls(base_url=settings.llm.base_url, model=served_model_name(settings),
                   api_key=settings.llm.api_key.get_secret_value(),
                   timeout_s=settings.llm.request_timeout_s, **cls.defaults_from(settings))

    # -- what goes over the wire ----------------------------------------------------------

    def request_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        """Arguments for ``chat.completions.create``; subclasses adapt JSON constraints."""
        kwargs: dict[str, Any] = {
            "model": request.adapter or self.model,
            "messages": [m.model_dump() for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if request.stop:
            kwargs["stop"] = list(request.stop)
        if request.logprobs is not None:
            kwargs["logprobs"] = True
            kwargs["top_logprobs"] = request.logprobs
        if request.json_schema is not None:
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                "name": str(request.json_schema.get("title") or "reply"),
                "schema": request.json_schema}}
        return kwargs

    def unavailable(self, exc: BaseException) -> LLMUnavailableError:
        return LLMUnavailableError(
            f"cannot reach the LLM server at {self.base_url} ({type(exc).__name__}: {exc}); "
            "start one with `tastelens serve` or fix llm.base_url")

    # -- the batch ----------------------------------------------------------------------

    def _generate(self, requests: Sequence[ChatRequest], concurrency: int) -> list[ChatOutcome]:
        # Read here, in the caller's thread: run_sync may run the batch on another thread.
        return run_sync(self._agenerate(requests, concurrency, scope()))

    async def _agenerate(self, requests: Sequence[ChatRequest], concurrency: int,
                         deadline: tuple[float, float] | None = None) -> list[ChatOutcome]:
        from openai import AsyncOpenAI

        semaphore = asyncio.Semaphore(concurrency)
        # A client per batch: an async client is bound to the event loop that created it.
        client = AsyncOpenAI(base_url=self.base_url, api_key=self.api_key,
                             timeout=self.timeout_s, max_retries=0)

        async def one(request: ChatRequest) -> ChatOutcome:
            async with semaphore:
                return await self._one(client, request, deadline)

        tasks = [asyncio.ensure_future(one(r)) for r in requests]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            # One request found the server gone: stop the rest instead of hammering it.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            await client.close()

    async def _one(self, client: Any, request: ChatRequest,
                   deadline: tuple[float, float] | None = None) -> ChatOutcome:
        import openai

        started = time.perf_counter()
        end, span = deadline if deadline is not None else (None, None)
        timeout = capped_timeout(self.timeout_s, end)
        if timeout <= 0:
            return ChatFailure(kind="deadline", message="not sent: the interactive LLM deadline "
                               "(llm.interactive_deadline_s) was spent while it waited")
        try:
            async with asyncio.timeout(timeout):
                response = await client.chat.completions.create(
                    **self.request_kwargs(request), timeout=timeout)
        except (openai.APITimeoutError, TimeoutError) as exc:
            short = cut_short(self.timeout_s, timeout, span)
            return ChatFailure(
                kind="deadline" if short else "timeout",
                message=f"no reply within {timeout:.3g} s ({type(exc).__name__})"
                        + ("; sent with less than half of the interactive LLM deadline left"
                           if short else ""), latency_s=time.perf_counter() - started)
        except openai.APIConnectionError as exc:
            raise self.unavailable(exc) from exc
        except (openai.AuthenticationError, openai.PermissionDeniedError,
                openai.NotFoundError) as exc:
            raise LLMRequestError(
                f"the LLM server at {self.base_url} rejected model "
                f"{request.adapter or self.model!r}: {exc.message} (check llm.model, "
                "llm.served_model_name, llm.adapters and llm.api_key)") from exc
        except openai.APIStatusError as exc:
            kind = "server_error" if exc.status_code >= 500 else "bad_request"
            return ChatFailure(kind=kind, message=f"HTTP {exc.status_code}: {exc.message}",
                               latency_s=time.perf_counter() - started)
        return self._to_result(response, time.perf_counter() - started)

    @staticmethod
    def _to_result(response: Any, latency_s: float) -> ChatOutcome:
        if not response.choices:
            return ChatFailure(kind="server_error", message="the server returned no choices",
                               latency_s=latency_s)
        choice = response.choices[0]
        logprobs = None
        if choice.logprobs is not None and choice.logprobs.content is not None:
            logprobs = [TokenLogprob(token=t.token, logprob=t.logprob,
                                     top={a.token: a.logprob for a in (t.top_logprobs or [])})
                        for t in choice.logprobs.content]
        usage = response.usage
        return ChatResult(
            text=choice.message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            latency_s=latency_s, logprobs=logprobs, finish_reason=choice.finish_reason)

    def check(self) -> list[str]:
        """Fail fast: the served model ids, or :class:`LLMUnavailableError`."""
        models = probe_models(self.base_url, self.api_key)
        if models is None:
            raise LLMUnavailableError(
                f"no OpenAI-compatible server answers at {self.base_url}/models; start one with "
                "`tastelens serve` or fix llm.base_url")
        return models
