"""Shared resources of one evaluation run: built at most once, some only when first used.

The harness hands every system the same :class:`SharedResources` (through
``SystemContext.resources``). Cheap-to-declare but expensive-to-start resources — the LLM
backend, which may start a vLLM server — are registered as factories and built on first
access, so a run whose LLM systems never call the model (e.g. ``llm-pipeline`` in its
``retrieval`` variant) never starts one. What the run built is closed at its end; what the
caller passed in is the caller's to close.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class SharedResources(dict[str, Any]):
    """A dict of resources by name plus lazy factories: ``resources["llm"]`` builds the
    backend on first access and keeps it. ``name in resources`` is true for both built and
    not-yet-built resources, so ``SystemContext.resource`` treats them alike."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        super().__init__(values or {})
        self._factories: dict[str, Callable[[], Any]] = {}
        self._owned: list[str] = []  # built here, so closed here (in build order)

    def add_lazy(self, name: str, factory: Callable[[], Any]) -> None:
        """Build ``name`` with ``factory()`` when it is first looked up (unless already set)."""
        if not dict.__contains__(self, name):
            self._factories[name] = factory

    def __missing__(self, name: str) -> Any:
        factory = self._factories.pop(name, None)
        if factory is None:
            raise KeyError(name)
        value = factory()
        self[name] = value
        self._owned.append(name)
        return value

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or name in self._factories

    def __len__(self) -> int:
        pending = sum(1 for n in self._factories if not dict.__contains__(self, n))
        return dict.__len__(self) + pending

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default

    def built(self, name: str) -> bool:
        """Whether ``name`` exists already (a lazy one that was never used has not)."""
        return dict.__contains__(self, name)

    def close(self) -> None:
        """Close every resource this run built (newest first); lazy ones never built are
        just forgotten. Errors of one close do not stop the others."""
        errors: list[BaseException] = []
        for name in reversed(self._owned):
            closer = getattr(dict.get(self, name), "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception as exc:  # noqa: BLE001 - close the rest, then re-raise
                    errors.append(exc)
        self._owned.clear()
        self._factories.clear()
        if errors:
            raise errors[0]
