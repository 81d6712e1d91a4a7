"""LLM backends behind one small protocol (see :mod:`tastelens.llm.base`).

    from tastelens.llm import create_backend, user
    with create_backend(settings) as llm:
        outcome = llm.structured(user("..."), MySchema)

Importing this package is cheap: torch, transformers, openai and vLLM load only when the
backend that needs them is created.
"""

from tastelens.llm.base import (
    ChatFailure,
    ChatMessage,
    ChatOutcome,
    ChatRequest,
    ChatResult,
    LLMBackend,
    LLMStats,
    ParseOutcome,
    TokenLogprob,
    user,
)
from tastelens.llm.errors import (
    LLMError,
    LLMRequestError,
    LLMUnavailableError,
    ModelNotPreparedError,
)
from tastelens.llm.registry import create_backend, register_backend, registered_backends

__all__ = [
    "ChatFailure", "ChatMessage", "ChatOutcome", "ChatRequest", "ChatResult", "LLMBackend",
    "LLMError", "LLMRequestError", "LLMStats", "LLMUnavailableError", "ModelNotPreparedError",
    "ParseOutcome", "TokenLogprob", "create_backend", "register_backend",
    "registered_backends", "user",
]
