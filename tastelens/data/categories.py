"""Category (genre) names and year ranges as people type them, checked against a catalog.

``--genre comedy`` and ``{"include_categories": ["comedy"]}`` mean the catalog's "Comedy":
names match case-insensitively. A name the catalog does not have is an error that lists the
closest known ones (difflib), and a year range whose start is after its end is an error too —
both used to return an empty list with exit 0 / HTTP 200, which looks like "nothing matches".
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from tastelens.errors import InvalidRequestError


def match_categories(names: Sequence[str], known: Iterable[str], *,
                     field: str = "genre") -> list[str]:
    """``names`` spelled as in ``known`` (case-insensitive, duplicates dropped, order kept).
    Raises :class:`InvalidRequestError` naming ``field``, the unknown name and the closest
    known names."""
    catalog = {name.casefold(): name for name in known}
    out: list[str] = []
    for name in names:
        found = catalog.get(name.strip().casefold())
        if found is None:
            raise InvalidRequestError(f"{field}: unknown genre {name!r}; "
                                      f"{_suggest(name, sorted(catalog.values()))}")
        if found not in out:
            out.append(found)
    return out


def _suggest(name: str, known: list[str]) -> str:
    if not known:
        return "this catalog has no genres"
    folded = {k.casefold(): k for k in known}
    close = difflib.get_close_matches(name.strip().casefold(), list(folded), n=3, cutoff=0.5)
    if close:
        return "did you mean " + " or ".join(repr(folded[c]) for c in close) + "?"
    return "known genres: " + ", ".join(known)


def check_year_range(year_min: int | None, year_max: int | None, *,
                     names: tuple[str, str] = ("year_min", "year_max")) -> None:
    """Raise :class:`InvalidRequestError` when ``year_min`` is after ``year_max``."""
    if year_min is not None and year_max is not None and year_min > year_max:
        raise InvalidRequestError(
            f"{names[0]} {year_min} is after {names[1]} {year_max}: no item can match; "
            "swap them, or leave one out for an open range")
