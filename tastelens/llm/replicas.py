"""The 'replicas' backend: N OpenAI-compatible vLLM servers behind one backend, least loaded
first.

    llm = ReplicaBackend.for_urls(["http://gpu1:8100/v1", "http://gpu2:8100/v1"],
                                  model="smollm2-135m-instruct")
    llm.check()                       # every replica answers and serves the model, or a clear error
    outcomes = llm.structured_many(requests, ProfileReply)   # spread over both

Each batch is split request by request onto the replica with the fewest requests in flight
(counting the other threads' batches too, e.g. the API's workers), and every replica's share
runs at once with ``concurrency`` requests in flight *per replica*. A replica found down
(:class:`LLMUnavailableError`) is taken out for ``down_s`` seconds and its share goes to the
others; only when none is left does the batch fail. Parsing, the one retry, the counters and
the circuit breaker are the base class's, as for every backend.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Sequence
from typing import Any

from tastelens.config.settings import Settings
from tastelens.errors import ConfigError
from tastelens.llm.base import ChatOutcome, ChatRequest, LLMBackend
from tastelens.llm.errors import LLMUnavailableError
from tastelens.llm.models import served_model_name
from tastelens.llm.openai_compat import OpenAICompatBackend
from tastelens.llm.registry import register_backend
from tastelens.llm.vllm_server import VLLMBackend


@register_backend("replicas")
class ReplicaBackend(LLMBackend):
    """Spreads requests over ``replicas`` (backends each bound to one server)."""

    def __init__(self, replicas: Sequence[OpenAICompatBackend], *, down_s: float = 30.0,
                 **defaults: Any) -> None:
        super().__init__(**defaults)
        if not replicas:
            raise ConfigError("llm.backend 'replicas' needs at least one URL in llm.replicas "
                              "(or --replicas URL,URL)")
        self.replicas = list(replicas)
        self.model: str = getattr(self.replicas[0], "model", "")
        self.guided_json = self.replicas[0].guided_json  # type: ignore[misc]
        self.down_s = down_s
        self.in_flight = [0] * len(self.replicas)
        self.sent = [0] * len(self.replicas)  # requests each replica was given, for reports
        self._down_until = [0.0] * len(self.replicas)
        self._load_lock = threading.Lock()

    @classmethod
    def for_urls(cls, urls: Sequence[str], *, model: str, api_key: str = "EMPTY",
                 timeout_s: float | None = None, **defaults: Any) -> ReplicaBackend:
        """Replicas that are vLLM servers (guided JSON decoding), one per base URL."""
        clean = [u.strip().rstrip("/") for u in urls if u.strip()]
        if len(set(clean)) != len(clean):
            raise ConfigError(f"replica URLs must be distinct: {clean}")
        for url in clean:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"replica URL {url!r}: expected http(s)://host:port/v1")
        return cls([VLLMBackend(base_url=u, model=model, api_key=api_key, timeout_s=timeout_s,
                                **defaults) for u in clean], **defaults)

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplicaBackend:
        return cls.for_urls(settings.llm.replicas, model=served_model_name(settings),
                            api_key=settings.llm.api_key.get_secret_value(),
                            timeout_s=settings.llm.request_timeout_s,
                            **cls.defaults_from(settings))

    @property
    def urls(self) -> list[str]:
        return [getattr(r, "base_url", type(r).__name__) for r in self.replicas]

    def check(self) -> list[str]:
        """Fail fast, naming the replica: each must answer and serve our model."""
        for i, replica in enumerate(self.replicas):
            try:
                models = replica.check()
            except LLMUnavailableError as exc:
                raise LLMUnavailableError(f"replica {i + 1} of {len(self.replicas)}: {exc}") \
                    from None
            if self.model not in models:
                raise LLMUnavailableError(
                    f"replica {i + 1} at {replica.base_url} serves {models}, not "
                    f"{self.model!r}; start it with `tastelens serve` on the same model")
        return [self.model]

    # -- the batch ------------------------------------------------------------------------
    def _assign(self, n: int, exclude: set[int]) -> list[list[int]]:
        """Request indices per replica, each to the least loaded live one at that moment."""
        now = time.monotonic()
        live = [i for i in range(len(self.replicas))
                if i not in exclude and self._down_until[i] <= now]
        if not live:
            raise LLMUnavailableError(
                f"no LLM replica is reachable ({', '.join(self.urls)}); start them with "
                "`tastelens serve` or fix llm.replicas / --replicas")
        shares: list[list[int]] = [[] for _ in self.replicas]
        with self._load_lock:
            for k in range(n):
                best = min(live, key=lambda i: (self.in_flight[i], self.sent[i]))
                shares[best].append(k)
                self.in_flight[best] += 1
                self.sent[best] += 1
        return shares

    def _generate(self, requests: Sequence[ChatRequest], concurrency: int) -> list[ChatOutcome]:
        outcomes: list[ChatOutcome | None] = [None] * len(requests)
        pending = list(range(len(requests)))
        failed: set[int] = set()
        while pending:
            shares = self._assign(len(pending), failed)
            work = {i: [pending[k] for k in share] for i, share in enumerate(shares) if share}
            pending = []
            with concurrent.futures.ThreadPoolExecutor(max_workers=len(work)) as pool:
                futures = {pool.submit(self.replicas[i]._generate,
                                       [requests[k] for k in idx], concurrency): i
                           for i, idx in work.items()}
                for future in concurrent.futures.as_completed(futures):
                    i = futures[future]
                    with self._load_lock:
                        self.in_flight[i] -= len(work[i])
                    try:
                        for k, outcome in zip(work[i], future.result()):
                            outcomes[k] = outcome
                    except LLMUnavailableError:
                        # This replica is down: the others take its share.
                        self._down_until[i] = time.monotonic() + self.down_s
                        failed.add(i)
                        pending.extend(work[i])
        return [o for o in outcomes if o is not None]

    def close(self) -> None:
        for replica in self.replicas:
            replica.close()
