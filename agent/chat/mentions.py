"""Catalog items a message names, and what the writer feels about each.

People name films the way they would to a friend: "I loved Father of the Bride (1991)",
"Like Heat (1996)" (a year off by one), "the matrix was boring", "haven't seen Up". A
:class:`Mention` is an item found in a message, with a :data:`Sentiment`:

- ``liked``: a positive cue in the same clause ("loved", "a fan of", "my favorite", "was
  great"), or a similarity cue ("like Heat", "similar to Heat");
- ``disliked``: a negative cue ("hated", "didn't like", "was disappointing", "boring"), or a
  positive one under a negation ("not a fan of", "didn't enjoy");
- ``unseen``: "haven't seen", "never watched", "not seen";
- ``neutral``: named with no cue (someone asking for films who names one mostly names one
  they like; the session decides what a neutral mention counts as).

Where a title is found:

1. **a title followed by a year in parentheses** — "Heat (1995)": the longest catalog title
   ending just before the year, whose release year is within ``year_slack`` of it (the
   closest year wins, then the most-rated item). Any span of words may be a title here: the
   year says the writer means a film;
2. **a quoted or capitalised title** is *not* trusted on its own (too many titles are common
   words: "Up", "Her", "Heat"); titles without a year are read by the rule parser's cues
   ("like Heat", "I loved Heat") and a message that is only a title ("Heat").

Sentiment cues are read in the mention's clause: the words before it back to the previous
clause boundary ('.', '!', '?', ';', ',', 'but') and the words after it up to the next one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from tastelens.agent.chat.catalog import CatalogVocabulary, tokens

Sentiment = Literal["liked", "disliked", "unseen", "neutral"]

_YEAR = re.compile(r"\(\s*((?:1[89]|20)\d\d)\s*\)")
_CLAUSE = re.compile(r"[.!?;,]|\bbut\b|\bthough\b|\bhowever\b", re.IGNORECASE)

POSITIVE = frozenset({
    "love", "loved", "loves", "loving", "like", "liked", "likes", "enjoy", "enjoyed", "enjoys",
    "adore", "adored", "favorite", "favourite", "favorites", "favourites", "fan", "great",
    "awesome", "amazing", "excellent", "good", "best", "fantastic", "brilliant", "wonderful",
    "fun", "funny", "hilarious", "classic", "masterpiece", "recommend", "rewatch", "cool",
    "nice", "beautiful", "perfect", "incredible", "into", "similar", "liking", "obsessed",
})
NEGATIVE = frozenset({
    "hate", "hated", "hates", "dislike", "disliked", "dislikes", "boring", "bored", "awful",
    "terrible", "bad", "worst", "disappointing", "disappointed", "disappointment", "overrated",
    "stupid", "dumb", "meh", "lame", "horrible", "annoying", "waste", "sucked", "sucks",
    "weak", "mediocre", "cheesy", "slow", "dull", "disgusting", "gross", "crude", "tired",
    "annoyed", "cringe", "cringey", "predictable", "overdone",
})
NEGATORS = frozenset({"not", "don't", "dont", "didn't", "didnt", "doesn't", "doesnt", "never",
                      "no", "wasn't", "wasnt", "isn't", "isnt", "nor", "hardly", "couldn't",
                      "couldnt", "wouldn't", "wouldnt", "won't", "wont"})
UNSEEN = (("haven't", "seen"), ("havent", "seen"), ("have", "not", "seen"), ("never", "seen"),
          ("not", "seen"), ("haven't", "watched"), ("havent", "watched"), ("never", "watched"),
          ("not", "watched"), ("didn't", "see"), ("didnt", "see"), ("have", "not", "watched"),
          ("not", "yet"), ("haven't", "seen", "it"), ("on", "my", "list"))


@dataclass(frozen=True)
class Mention:
    """An item a message names: where (character span of the title and its year) and how."""

    item: str
    title: str
    sentiment: Sentiment
    start: int
    end: int


YEAR_SPAN_WORDS = 16
"""Words before a "(Year)" tried as its title ('The Lord of the Rings: The Return of the
King (2003)' has ten)."""
SMALL_WORDS = frozenset({"of", "the", "a", "an", "and", "to", "in", "on", "at", "for", "with",
                         "from", "by", "vs", "vs.", "&", "de", "la", "le", "or", "is", "it"})
_WORD = re.compile(r"\S+")


def capitalised_titles(text: str, vocab: CatalogVocabulary, *, skip: Sequence[tuple[int, int]]
                       = (), contentless: frozenset[str] = frozenset(),
                       max_mentions: int = 16) -> list[tuple[str, int, int]]:
    """(item, start, end) of catalog titles of two words or more written as titles are
    written — capitalised words, with small words between them ("The Big Lebowski", "How to
    Train Your Dragon") — outside the ``skip`` spans. A run of only ``contentless`` words
    ("Thank You") is never a title; a one-word title needs a cue ("like Heat")."""
    words = [m for m in _WORD.finditer(text)
             if not any(a <= m.start() < b for a, b in skip)]
    found: list[tuple[str, int, int]] = []
    i = 0
    while i < len(words) and len(found) < max_mentions:
        run = i
        while run < len(words) and _title_like(words[run].group(0)):
            run += 1
        match = None
        for end in range(min(run, i + YEAR_SPAN_WORDS), i + 1, -1):  # longest first
            span = text[words[i].start():words[end - 1].end()].rstrip(".,;:!?")
            key = " ".join(tokens(span))
            if (len(key.split()) < 2 or not words[i].group(0)[:1].isupper()
                    or not set(key.split()) - contentless):
                continue
            item = vocab.lookup(key)
            if item is not None:
                match = (item, words[i].start(), words[i].start() + len(span))
                break
        if match is not None:
            found.append(match)
            i = next((j for j, w in enumerate(words) if w.start() >= match[2]), len(words))
        else:
            i += 1
    return found


def _title_like(word: str) -> bool:
    bare = word.strip("\"'“”‘’()[]")
    return bool(bare) and (bare[:1].isupper() or bare[:1].isdigit()
                           or bare.casefold().rstrip(".,;:!?") in SMALL_WORDS)


def year_titles(text: str, vocab: CatalogVocabulary, *, year_slack: int = 1,
                max_mentions: int = 16) -> list[tuple[str, int, int]]:
    """(item, start, end) of every "Title (Year)" in ``text`` (see the module docstring);
    at most ``max_mentions`` (the rest of a very long message is not searched)."""
    found: list[tuple[str, int, int]] = []
    taken = 0
    for m in _YEAR.finditer(text):
        if len(found) >= max_mentions:
            break
        year = int(m.group(1))
        before = text[taken:m.start()]
        words = list(re.finditer(r"\S+", before))
        best: tuple[str, int] | None = None
        # the longest span of words ending at the year that is a catalog title of that year
        for n in range(min(len(words), YEAR_SPAN_WORDS), 0, -1):
            span_start = words[-n].start()
            item = vocab.lookup_year(" ".join(tokens(before[span_start:])), year, year_slack)
            if item is not None:
                best = (item, taken + span_start)
                break
        if best is not None:
            found.append((best[0], best[1], m.end()))
            taken = m.end()
    return found


def clause_sentiment(text: str, start: int, end: int) -> Sentiment:
    """The sentiment cues of the clause around ``text[start:end]`` (a title)."""
    left = _CLAUSE.split(text[:start])[-1]
    right = _CLAUSE.split(text[end:])[0]
    before, after = tokens(left), tokens(right)
    words = before + after
    joined = " " + " ".join(words) + " "
    if any(" " + " ".join(cue) + " " in joined for cue in UNSEEN):
        return "unseen"
    negated = any(w in NEGATORS for w in words)
    if any(w in NEGATIVE for w in words):
        return "liked" if negated and not any(w in POSITIVE for w in words) else "disliked"
    if any(w in POSITIVE for w in words):
        return "disliked" if negated else "liked"
    return "neutral"


def clause_feelings(text: str) -> list[Literal["negative", "negated", ""]]:
    """For each of ``tokens(text)``, what its clause says of what it names: 'negative' for
    a negative cue no negator flips ("horror movies are boring", "rom coms are pretty
    disgusting"), 'negated' for a negator ("nothing too crude", "I don't want violence"),
    '' otherwise. The clause words themselves ('but', 'though') are ''."""
    flags: list[Literal["negative", "negated", ""]] = []
    for n, part in enumerate(re.split(f"({_CLAUSE.pattern})", text, flags=re.IGNORECASE)):
        if part is None:
            continue
        toks = tokens(part)
        negated = any(w in NEGATORS or w in ("nothing", "without", "avoid") for w in toks)
        if n % 2 == 1:
            feeling: Literal["negative", "negated", ""] = ""
        elif any(w in NEGATIVE for w in toks) and not negated:
            feeling = "negative"
        else:
            feeling = "negated" if negated else ""
        flags += [feeling] * len(toks)
    return flags


def find_mentions(text: str, vocab: CatalogVocabulary, *, year_slack: int = 1,
                  max_mentions: int = 16, contentless: frozenset[str] = frozenset(),
                  ) -> list[Mention]:
    """The items ``text`` names with a year, or as a capitalised title of two words or more,
    in order, each with its clause's sentiment."""
    spans = year_titles(text, vocab, year_slack=year_slack, max_mentions=max_mentions)
    spans += capitalised_titles(text, vocab, skip=[(a, b) for _, a, b in spans],
                                contentless=contentless,
                                max_mentions=max_mentions - len(spans))
    return [Mention(item, vocab.dataset.items[item].title,
                    clause_sentiment(text, start, end), start, end)
            for item, start, end in sorted(spans, key=lambda t: t[1])]


def sentiment_of(text: str, title_spans: Sequence[tuple[int, int]]) -> list[Sentiment]:
    """:func:`clause_sentiment` for several spans of one message."""
    return [clause_sentiment(text, s, e) for s, e in title_spans]
