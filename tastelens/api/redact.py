"""What the API tells clients about failures behind it: reason codes, not internals.

The pipeline's fallback reasons are written for the operator (the CLI prints them): they can
name the LLM server's URL, the model, or an exception. An API client gets a short code
instead, and the full reason goes to the server log:

============================  ===============================================================
``rerank_fallback_reason``    when
============================  ===============================================================
``llm_unavailable``           the LLM server could not be reached
``llm_circuit_open``          the circuit breaker is open: the LLM was not called
``llm_timeout``               no reply within the interactive deadline (or it was spent)
``llm_error``                 the server refused or failed the request (4xx / 5xx)
``llm_reply_unusable``        the model's reply could not be used
``no_llm``                    no LLM backend is configured
``rerank_failed``             anything else
============================  ===============================================================

Server-side errors (5xx) get the same treatment in the error body: their kind and a generic
message; the detail is logged.
"""

from __future__ import annotations

import logging

from tastelens.agent.recommendation import RecommendationList
from tastelens.llm.errors import LLMError

log = logging.getLogger("tastelens.api")

# The reason's lead-in, as the re-ranker writes it (``<ChatFailure kind>: …`` per failed
# request, ``LLM unavailable: <error>`` when the server is down), -> its code.
_LEADS = {"timeout": "llm_timeout", "deadline": "llm_timeout", "server_error": "llm_error",
          "bad_request": "llm_error", "error": "llm_error",
          "reply unusable": "llm_reply_unusable", "the backend returned no logprobs":
          "llm_reply_unusable", "no reply": "llm_reply_unusable",
          "no LLM backend configured": "no_llm"}
_LEARNED = "LLM feature unavailable: "
REASON_CODES = frozenset({*_LEADS.values(), "llm_unavailable", "llm_circuit_open",
                          "rerank_failed"})


def reason_code(reason: str) -> str:
    """The public code of a re-ranker fallback reason (see the module docstring)."""
    if reason in REASON_CODES:
        return reason
    if reason.startswith(_LEARNED):  # the learned ranker's LLM part; its base order served
        return reason_code(reason[len(_LEARNED):])
    if reason.startswith("LLM unavailable:"):
        return "llm_circuit_open" if "circuit breaker is open" in reason else "llm_unavailable"
    lead = reason.split(";", 1)[0].split(":", 1)[0].strip()
    return _LEADS.get(lead, "rerank_failed")


def public_list(result: RecommendationList) -> RecommendationList:
    """``result`` with its fallback reason replaced by a code; the reason is logged."""
    reason = result.report.rerank_fallback_reason
    if reason is None or reason in REASON_CODES:
        return result
    code = reason_code(reason)
    log.warning("re-ranking fell back for user %r (%s): %s", result.user, code, reason)
    report = result.report.model_copy(update={"rerank_fallback_reason": code})
    return result.model_copy(update={"report": report})


def public_message(exc: Exception, status: int) -> str:
    """The body message of a server-side error: says what, never where."""
    if isinstance(exc, LLMError):
        return "the LLM server is unavailable; the server log has the details"
    if status == 503:
        return "a dependency of this server is unavailable; the server log has the details"
    return "internal server error; see the server log"
