"""A small catalog with themes (tags) for the page's tests: enough structure that a data-facts
profile has keyword and topic interests, dislikes and drift to show and edit."""

from __future__ import annotations

import pandas as pd

from tastelens.data.dataset import Dataset
from tastelens.schemas import Item

THEMES = {  # tag -> (genres, title word)
    "heist": (("Crime", "Thriller"), "Vault"),
    "space": (("Sci-Fi", "Adventure"), "Orbit"),
    "pixar": (("Animation", "Children"), "Toybox"),
    "zombies": (("Horror",), "Undead"),
    "courtroom": (("Drama",), "Verdict"),
    "road trip": (("Comedy",), "Highway"),
}
PER_THEME = 12


def make_web_dataset(n_users: int = 24) -> Dataset:
    """User "1" loved heists long ago and space films lately, disliked the zombie films;
    the other users each like one theme."""
    items: dict[str, Item] = {}
    by_theme: dict[str, list[str]] = {}
    for t, (tag, (genres, word)) in enumerate(THEMES.items()):
        by_theme[tag] = []
        for j in range(PER_THEME):
            year = 1976 + 3 * j + t % 3
            tags = (tag, "twist ending") if j % 3 == 0 else (tag,)
            iid = str(len(items) + 1)
            items[iid] = Item(id=iid, title=f"{word} {j + 1} ({year})", year=year,
                              categories=genres, tags=tags)
            by_theme[tag].append(iid)
    rows: list[tuple[str, str, float, int]] = []
    clock = 1_000_000

    def rate(user: str, item: str, rating: float) -> None:
        nonlocal clock
        clock += 100
        rows.append((user, item, rating, clock))

    for item in by_theme["heist"][:7]:
        rate("1", item, 5.0)
    for item in by_theme["courtroom"][:2]:
        rate("1", item, 3.0)
    for item in by_theme["zombies"][:3]:
        rate("1", item, 1.0)
    for item in by_theme["space"][:5]:
        rate("1", item, 4.5)
    themes = list(THEMES)
    for u in range(2, n_users + 1):
        tag = themes[u % len(themes)]
        for k, item in enumerate(by_theme[tag]):
            if (k + u) % 3:
                rate(str(u), item, 4.0 + (k % 2) / 2)
        rate(str(u), by_theme[themes[(u + 1) % len(themes)]][u % PER_THEME], 2.0)
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    frame = frame.astype({"rating": "float64", "timestamp": "int64"})
    return Dataset(name="web", items=items, interactions=frame)
