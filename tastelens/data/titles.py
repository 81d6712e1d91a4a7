"""How catalog titles are written, and the one key that says two strings name the same title.

MovieLens writes ``"Matrix, The (1999)"``: a year suffix (a range for series,
``"(2006–2007)"``) and a leading article moved behind a comma, in several languages
(``"Avventura, L'"``, ``"Misérables, Les"``). People and models write ``"The Matrix"``,
``"the matrix"`` or ``"Matrix"``. :func:`title_key` maps all of these to ``"matrix"``;
:func:`is_title` also accepts a title followed by a subtitle (``"The Mummy: Tomb of …"``).
The chat's title index builds its own token keys from the same pieces
(:func:`strip_year`, :func:`article_first`, :data:`LEADING_ARTICLE`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

YEAR_SUFFIX = re.compile(r"\s*\((?:1[89]|20)\d\d(?:\s*[-–]\s*\d{0,4})?\)\s*$")
"""A release year (or a series' year range) in parentheses at the end of a title."""
TRAILING_ARTICLE = re.compile(r"^(.*), (the|a|an|les|la|le|l'|il|el|das|die|der|los|las)$",
                              re.IGNORECASE)
"""MovieLens' article behind a comma: group 1 the title, group 2 the article."""
LEADING_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.IGNORECASE)
_EDGE = " .,:;!-\"'"


def strip_year(title: str) -> str:
    """``"Heat (1995)"`` -> ``"Heat"``."""
    return YEAR_SUFFIX.sub("", title).strip()


def has_year(text: str) -> bool:
    """``text`` ends with a year in parentheses (it names one film, not an interest)."""
    return YEAR_SUFFIX.search(text) is not None


def article_first(title: str) -> str:
    """``"Matrix, The"`` -> ``"The Matrix"`` (other titles unchanged)."""
    return TRAILING_ARTICLE.sub(lambda m: f"{m.group(2)} {m.group(1)}", title.strip())


def title_key(text: str) -> str:
    """One canonical form: casefolded, whitespace collapsed, without the year, the edge
    punctuation and a leading or trailing article (``"Mummy, The (1999)"``, ``"The Mummy"``
    and ``"mummy."`` are all ``"mummy"``)."""
    key = strip_year(" ".join(text.casefold().split())).strip(_EDGE.replace("'", ""))
    return LEADING_ARTICLE.sub("", article_first(key)).strip(_EDGE)


def title_key_set(titles: Iterable[str]) -> set[str]:
    """:func:`title_key` of each title (empty keys left out)."""
    return {title_key(title) for title in titles} - {""}


def is_title(text: str, keys: set[str]) -> bool:
    """``text`` is one of the titles whose keys are ``keys``, or one of them followed by a
    subtitle after a colon."""
    key = title_key(text)
    head = key.split(":", 1)[0].strip(_EDGE)
    return key in keys or (head != key and head in keys)
