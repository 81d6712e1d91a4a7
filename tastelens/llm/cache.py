"""A reply cache in front of a backend: identical greedy requests are answered once.

An evaluation asks the model the same ranking prompt from several systems (the LLM alone and
the learned ranker's LLM feature score the same candidates for the same history); with
greedy decoding (temperature 0) the reply is the same, so :class:`ReplyCache` keeps the
newest ``size`` replies keyed by the whole request and sends only the misses to the wrapped
backend. Failures are never cached, and requests with a temperature above 0 always go
through. A cached reply comes back marked ``cached`` (the backend's counters leave it out:
no request was made); ``hits`` counts them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from tastelens.llm.base import ChatOutcome, ChatRequest, ChatResult, LLMBackend


class ReplyCache(LLMBackend):
    """Wraps ``inner``; everything but :meth:`_generate` is the inner backend's."""

    name = "reply-cache"

    def __init__(self, inner: LLMBackend, size: int = 4096) -> None:
        super().__init__(default_max_tokens=inner.default_max_tokens,
                         default_temperature=inner.default_temperature,
                         default_concurrency=inner.default_concurrency)
        self.inner = inner
        self.size = size
        self.hits = 0
        self._replies: OrderedDict[str, ChatResult] = OrderedDict()
        self._cache_lock = threading.Lock()

    @property
    def guided_json(self) -> bool:  # type: ignore[override]
        return self.inner.guided_json

    def __getattr__(self, name: str) -> Any:  # model_name, start, base_url, …
        if name == "inner":  # not set yet (during __init__): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _generate(self, requests: Sequence[ChatRequest], concurrency: int) -> list[ChatOutcome]:
        keys = [r.model_dump_json() if r.temperature == 0 else None for r in requests]
        out: list[ChatOutcome | None] = [None] * len(requests)
        with self._cache_lock:
            for i, key in enumerate(keys):
                if key is not None and key in self._replies:
                    self._replies.move_to_end(key)
                    out[i] = self._replies[key].model_copy(update={"cached": True})
                    self.hits += 1
        misses = [i for i, o in enumerate(out) if o is None]
        if misses:
            answers = self.inner._generate([requests[i] for i in misses], concurrency)
            if len(answers) != len(misses):
                raise RuntimeError(f"{type(self.inner).__name__} answered {len(answers)} of "
                                   f"{len(misses)} requests")
            with self._cache_lock:
                for i, answer in zip(misses, answers):
                    out[i] = answer
                    key = keys[i]
                    if key is not None and isinstance(answer, ChatResult):
                        self._replies[key] = answer
                        while len(self._replies) > self.size:
                            self._replies.popitem(last=False)
        assert all(o is not None for o in out)
        return out  # type: ignore[return-value]

    def close(self) -> None:
        self.inner.close()
