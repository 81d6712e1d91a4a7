"""A token bucket per client address for the routes that run the pipeline.

Each client address has a bucket of ``burst`` tokens, refilled at ``per_minute / 60`` tokens a
second; a request takes one, and one that finds the bucket empty is answered 429 with
``Retry-After`` (the whole seconds until a token is back) without running anything. So a
client may send ``burst`` requests at once, then ``per_minute`` a minute. ``/v1/recommend``
and ``/v1/chat`` share one bucket per address (:func:`rate_limit`, a route dependency).
Loopback clients are not limited unless ``api.rate_limit_loopback`` is on.

At most ``max_clients`` buckets are kept (least recently used dropped): an address whose
bucket was dropped starts full again, which only helps a client that has been quiet.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from fastapi import Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from tastelens.api.sameorigin import is_loopback


class RateLimiter:
    """Token buckets by client key; thread-safe."""

    def __init__(self, per_minute: float, burst: int, *, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError("per_minute must be > 0 and burst >= 1")
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take a token for ``key``: 0.0 when there was one, else the seconds until one is."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait


async def rate_limit(request: Request) -> None:
    """Route dependency: 429 with Retry-After when the client's bucket is empty."""
    limiter: RateLimiter | None = request.app.state.rate_limiter
    if limiter is None:
        return
    address = request.client.host if request.client is not None else ""
    if is_loopback(address) and not request.app.state.settings.api.rate_limit_loopback:
        return
    wait = limiter.take(address)
    if wait > 0:
        api = request.app.state.settings.api
        raise StarletteHTTPException(
            429, f"too many requests from {address}: at most {api.rate_limit_burst} at once "
                 f"and {api.rate_limit_per_minute:g} a minute to /v1/recommend and /v1/chat "
                 "(settings api.rate_limit_per_minute, api.rate_limit_burst); retry later",
            headers={"Retry-After": str(max(1, math.ceil(wait)))})
