"""Errors of the LLM layer; all are `TastelensError`s, so the CLI prints them plainly.

Model *misbehaviour* (invalid JSON, a refusal) is never an exception: it becomes a failed
`ParseOutcome` and is counted. These exceptions are for problems a person must fix.
"""

from __future__ import annotations

from tastelens.errors import TastelensError


class LLMError(TastelensError):
    """Base class of the LLM layer's actionable errors."""


class LLMUnavailableError(LLMError):
    """The LLM server cannot be reached, or the server process failed to start."""


class LLMRequestError(LLMError):
    """The server rejected a request for a reason every request shares (auth, unknown model
    or adapter name), so retrying or falling back would only hide a configuration mistake."""


class ModelNotPreparedError(LLMError):
    """The configured model checkpoint is missing; the message says how to prepare it."""
