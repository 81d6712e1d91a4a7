"""Backends by name, in one place: ``@register_backend("name")`` and :func:`create_backend`.

The built-in backends register themselves when their module is imported; :func:`create_backend`
imports only the module of the backend asked for, so choosing 'fake' never imports torch,
and choosing 'openai' never imports vLLM.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from tastelens.errors import UnknownComponentError

if TYPE_CHECKING:
    from tastelens.config.settings import Settings
    from tastelens.llm.base import LLMBackend

B = TypeVar("B", bound="type[LLMBackend]")

_REGISTRY: dict[str, type[LLMBackend]] = {}
_BUILTIN_MODULES = {
    "fake": "tastelens.llm.fake",
    "openai": "tastelens.llm.openai_compat",
    "vllm": "tastelens.llm.vllm_server",
    "transformers": "tastelens.llm.transformers_local",
    "replicas": "tastelens.llm.replicas",
}


def register_backend(name: str) -> Callable[[B], B]:
    """Class decorator registering a backend under ``name``; a second, different class under
    the same name is rejected (re-importing the same class is fine)."""

    def decorate(cls: B) -> B:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"an LLM backend named {name!r} is already registered "
                             f"({existing.__module__}.{existing.__qualname__})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def backend_class(name: str) -> type[LLMBackend]:
    """The class registered under ``name`` (importing the built-in module if needed)."""
    if name not in _REGISTRY and name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[name])
    if name not in _REGISTRY:
        known = sorted(set(_REGISTRY) | set(_BUILTIN_MODULES))
        raise UnknownComponentError(
            f"unknown LLM backend {name!r} (settings llm.backend); known: {', '.join(known)}")
    return _REGISTRY[name]


def registered_backends() -> list[str]:
    """Names of all backends: the built-ins plus any registered at run time."""
    return sorted(set(_REGISTRY) | set(_BUILTIN_MODULES))


def create_backend(settings: Settings) -> LLMBackend:
    """The backend ``settings.llm.backend`` names, configured from ``settings``. Close it (or
    use it as a context manager) to release servers or models it owns."""
    return backend_class(settings.llm.backend).from_settings(settings)
