"""A tiny film catalog with the title shapes ReDial meets in MovieLens, and helpers that
write dialogues in ReDial's format and the generic JSONL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tastelens.data.dataset import Dataset
from tastelens.schemas import Item

TITLES = {
    "1": ("Matrix, The (1999)", ("Action", "Sci-Fi")),
    "2": ("Heat (1995)", ("Action", "Crime")),
    "3": ("Heat, The (2013)", ("Comedy",)),
    "4": ("Seven (a.k.a. Se7en) (1995)", ("Thriller",)),
    "5": ("Toy Story (1995)", ("Animation", "Comedy")),
    "6": ("Up (2009)", ("Animation",)),
    "7": ("Ronin (1998)", ("Action",)),
    "8": ("Father of the Bride (1991)", ("Comedy",)),
    "9": ("Father of the Bride Part II (1995)", ("Comedy",)),
    "10": ("Twin Film (2000)", ("Drama",)),
    "11": ("Twin Film (2002)", ("Drama",)),
    "12": ("Alien (1979)", ("Horror", "Sci-Fi")),
    "13": ("Aliens (1986)", ("Action", "Horror")),
    "14": ("Shining, The (1980)", ("Horror",)),
    "15": ("Man on Wire (2008)", ("Documentary",)),
}


def make_catalog() -> Dataset:
    items = {}
    for iid, (title, genres) in TITLES.items():
        year = int(title[-5:-1])
        items[iid] = Item(id=iid, title=title, year=year, categories=genres)
    # Who watched what: action fans (Matrix, Heat, Ronin, Aliens), comedy fans, horror fans;
    # Toy Story is watched by everyone (the most popular film).
    groups = {"action": ["1", "2", "7", "13"], "comedy": ["3", "8", "9"],
              "horror": ["12", "13", "14"]}
    rows = []
    user = 0
    for films in groups.values():
        for _ in range(4):
            user += 1
            for t, item in enumerate([*films, "5"]):
                rows.append((str(user), item, 4.0, 1000 * user + t))
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    frame = frame.astype({"rating": "float64", "timestamp": "int64"})
    return Dataset(name="films", items=items, interactions=frame)


@pytest.fixture(scope="session")
def catalog() -> Dataset:
    dataset = make_catalog()
    snapshot = dataset.interactions.copy()
    yield dataset
    pd.testing.assert_frame_equal(dataset.interactions, snapshot)  # read-only fixture


def redial(cid: str, messages: list[tuple[str, str]], mentions: dict[str, str]) -> dict:
    """A ReDial conversation: messages as ('S' or 'R', text) with '@id' mentions."""
    return {"conversationId": cid, "initiatorWorkerId": 1, "respondentWorkerId": 2,
            "movieMentions": mentions, "respondentQuestions": {}, "initiatorQuestions": [],
            "messages": [{"senderWorkerId": 1 if who == "S" else 2, "text": text,
                          "messageId": i, "timeOffset": i}
                         for i, (who, text) in enumerate(messages)]}


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


MENTIONS = {"111": "The Matrix (1999)", "222": "Heat (1996)", "333": "Ronin (1998)",
            "444": "Some Unknown Film (2017)", "555": "Aliens (1986)", "666": "Up (2009)",
            "777": "Se7en (1995)"}


def sample_redial() -> list[dict]:
    """Four conversations: one that mentions films, one that states a genre, one that says
    nothing before the suggestion, one whose first suggestion precedes any seeker message,
    and one where nothing new is ever suggested."""
    return [
        redial("c-mentions", [("S", "Hello"), ("S", "I loved @111 and @222"),
                              ("R", "Did you like @111 ?"), ("R", "Try @444 or @333"),
                              ("S", "ok"), ("R", "or @555")], MENTIONS),
        redial("c-genre", [("S", "I want something scary"), ("R", "@555 is great"),
                           ("S", "seen it"), ("R", "then @666")], MENTIONS),
        redial("c-nothing", [("S", "hi"), ("R", "hello! @777 ?")], MENTIONS),
        redial("c-recommender-first", [("R", "Try @333"), ("S", "thanks")], MENTIONS),
        redial("c-none", [("S", "I liked @111"), ("R", "me too, @111 rocks"),
                          ("R", "or @444")], MENTIONS),
    ]
