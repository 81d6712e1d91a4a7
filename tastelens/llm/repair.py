"""Repair a JSON reply that was cut off: keep everything up to its last complete value.

A reply that hits ``max_tokens`` under guided decoding is a valid JSON *prefix*:
``{"likes": [{"label": "Space operas", "evidence": ["h1"]}, {"label": "Hei``. Closing it after
the last complete value (``… ["h1"]}]}``) keeps what the model did finish instead of throwing
the reply away; the reader's schema decides whether what is left is enough.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

_CLOSER = {"{": "}", "[": "]"}


def closed_prefixes(text: str) -> Iterator[dict[str, Any]]:
    """The prefixes of the first JSON object in ``text`` that end after a complete value,
    each closed with the brackets still open there and parsed, longest first (the caller
    takes the first its schema accepts)."""
    start = text.find("{")
    if start < 0:
        return
    body = text[start:]
    stack: list[str] = []
    cuts: list[tuple[int, str]] = []  # (end of a complete value, closers needed there)
    in_string = escaped = False
    key_next = False  # inside an object, the next string is a key (not a value)
    for pos, ch in enumerate(body):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
                if key_next:
                    key_next = False
                elif stack:
                    cuts.append((pos + 1, stack_closers(stack)))
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append(ch)
            key_next = ch == "{"
        elif ch in "}]":
            if not stack or _CLOSER[stack[-1]] != ch:
                break
            stack.pop()
            if not stack:
                cuts.append((pos + 1, ""))
                break
            cuts.append((pos + 1, stack_closers(stack)))
        elif ch == ",":
            key_next = stack[-1] == "{" if stack else False
        elif ch == ":":
            key_next = False
    seen: set[str] = set()
    for end, closers in reversed(cuts):
        candidate = body[:end] + closers
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            canonical = json.dumps(value, sort_keys=True)
            if canonical not in seen:  # "…]}" and "…]" + "}" close to the same value
                seen.add(canonical)
                yield value


def stack_closers(stack: list[str]) -> str:
    """The brackets that close ``stack``, innermost first."""
    return "".join(_CLOSER[c] for c in reversed(stack))
