"""Wording of data-derived interest labels for the profile fine-tuning targets.

The base model answers the profile prompt with film titles or bare genre names; the targets
teach it specific, varied labels instead. Every label here is computed from item data:

- a **tag** becomes a keyword ("Stephen King", "heist"), a topic ("time travel",
  "dark comedy"), a sentiment phrased with the evidence's main genre ("atmospheric
  thrillers", "funny animated films"), an application ("Christmas season viewing"), or a
  studio's animation ("Pixar animation");
- a **category pair** becomes a sub-genre noun phrase ("crime thrillers", "romantic
  comedies", "animated family films"), optionally with a decade ("1990s crime thrillers");
- a **decade × category** becomes "1980s horror films" (a bare genre is never a label).

Tags that describe the tagger rather than the film ("In Netflix queue", "bad",
"predictable") or repeat a catalog genre ("comedy", "sci-fi") are never liked labels.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from tastelens.data.titles import TRAILING_ARTICLE, strip_year

# Adjective and plural-noun forms of the MovieLens genres: pair labels are adjective(c1) +
# noun(c2), where c2 is the genre higher in HEAD_ORDER ("crime" + "thrillers").
GENRE_ADJ = {
    "Action": "action", "Adventure": "adventure", "Animation": "animated",
    "Children": "children's", "Comedy": "comedy", "Crime": "crime",
    "Documentary": "documentary", "Drama": "dramatic", "Fantasy": "fantasy",
    "Film-Noir": "noir", "Horror": "horror", "Musical": "musical", "Mystery": "mystery",
    "Romance": "romantic", "Sci-Fi": "sci-fi", "Thriller": "thriller", "War": "war",
    "Western": "western",
}
GENRE_NOUN = {
    "Action": "action films", "Adventure": "adventure films", "Animation": "animated films",
    "Children": "family films", "Comedy": "comedies", "Crime": "crime films",
    "Documentary": "documentaries", "Drama": "dramas", "Fantasy": "fantasy films",
    "Film-Noir": "film noir", "Horror": "horror films", "Musical": "musicals",
    "Mystery": "mysteries", "Romance": "romances", "Sci-Fi": "sci-fi films",
    "Thriller": "thrillers", "War": "war films", "Western": "westerns",
}
HEAD_ORDER = ("Children", "Thriller", "Comedy", "Western", "Musical", "Documentary",
              "Mystery", "Horror", "Drama", "Romance", "War", "Adventure", "Action",
              "Sci-Fi", "Fantasy", "Crime", "Film-Noir", "Animation")
PAIR_LABELS = {
    frozenset({"Comedy", "Drama"}): "comedy-dramas",
    frozenset({"Comedy", "Romance"}): "romantic comedies",
    frozenset({"Action", "Adventure"}): "action-adventure films",
    frozenset({"Drama", "Romance"}): "romantic dramas",
    frozenset({"Crime", "Drama"}): "crime dramas",
    frozenset({"Drama", "War"}): "war dramas",
    frozenset({"Children", "Comedy"}): "family comedies",
    frozenset({"Animation", "Children"}): "animated family films",
    frozenset({"Adventure", "Fantasy"}): "fantasy adventures",
}
# Other wordings of some pairs, feelings ("sentiment") and occasions ("application") the
# pair plainly implies; one wording is picked per example (seeded), so labels vary.
PAIR_VARIANTS: dict[frozenset[str], tuple[tuple[str, str], ...]] = {
    frozenset({"Comedy", "Romance"}): (("date-night romantic comedies", "application"),
                                       ("feel-good romantic comedies", "sentiment")),
    frozenset({"Animation", "Children"}): (("feel-good family films", "sentiment"),
                                           ("family movie nights", "application")),
    frozenset({"Children", "Comedy"}): (("feel-good family films", "sentiment"),
                                        ("family movie nights", "application")),
    frozenset({"Adventure", "Children"}): (("family adventure nights", "application"),),
    frozenset({"Comedy", "Horror"}): (("Halloween comedy nights", "application"),),
    frozenset({"Horror", "Thriller"}): (("late-night scares", "application"),),
    frozenset({"Crime", "Thriller"}): (("tense crime thrillers", "sentiment"),),
    frozenset({"Mystery", "Thriller"}): (("twisty mystery thrillers", "sentiment"),),
    frozenset({"Drama", "Romance"}): (("emotional romantic dramas", "sentiment"),),
    frozenset({"Comedy", "Drama"}): (("bittersweet comedy-dramas", "sentiment"),),
    frozenset({"Adventure", "Fantasy"}): (("escapist fantasy adventures", "sentiment"),),
    frozenset({"Action", "Adventure"}): (("popcorn action-adventure films", "application"),),
}
# Too broad to be an interest with only a decade in front ("1990s dramas").
BROAD_GENRES = frozenset({"Drama", "Comedy", "Thriller", "Action", "Romance"})
CLASSIC_BEFORE = 1960
CLASSIC_LABEL = "pre-1960 classics"

SENTIMENT_TAGS = {
    "atmospheric": "atmospheric", "funny": "funny", "dark": "dark", "suspense": "suspenseful",
    "suspenseful": "suspenseful", "thought-provoking": "thought-provoking",
    "emotional": "emotional", "heartwarming": "heartwarming", "creepy": "creepy",
    "quirky": "quirky", "surreal": "surreal", "disturbing": "disturbing",
    "bittersweet": "bittersweet", "dreamlike": "dreamlike", "clever": "clever",
    "intelligent": "intelligent", "beautiful": "beautiful", "depressing": "bleak",
    "visually appealing": "visually striking", "feel-good": "feel-good", "witty": "witty",
    "hilarious": "hilarious", "touching": "touching", "inspirational": "inspirational",
    "intense": "intense", "tense": "tense", "mindfuck": "mind-bending",
    "mind-bending": "mind-bending", "cute": "cute", "sad": "sad", "scary": "scary",
    "uplifting": "uplifting", "philosophical": "philosophical", "stylized": "stylized",
    "violent": "violent", "gritty": "gritty", "whimsical": "whimsical",
    "melancholy": "melancholic", "poignant": "poignant", "romantic": "romantic",
}
APPLICATION_TAGS = {
    "christmas": "Christmas season viewing", "family": "family movie nights",
    "halloween": "Halloween viewing", "date movie": "date nights", "kids": "watching with kids",
}
STUDIOS = {"pixar": "Pixar", "disney": "Disney", "aardman": "Aardman", "dreamworks":
           "DreamWorks", "studio ghibli": "Studio Ghibli", "ghibli": "Studio Ghibli"}
# Tags about the tagger, not the film, and verdicts that are not a taste.
_JUNK = re.compile(r"netflix|queue|dvd|bd-r|blu-?ray|imdb|tivo|\bseen\b|\bowned?\b|watched|"
                   r"to see|watchlist|library|\bmy\b|\bbad\b|predictable|boring|overrated|"
                   r"stupid|awful|^\d+$|^r:|oscar|\bclassic\b|^movies?$|^films?$|remake|remade",
                   re.IGNORECASE)
_WORDS = re.compile(r"[A-Za-z]")
_SEQUEL = re.compile(r"\s+(?:\d{1,2}|II|III|IV|V|Part \w+)$")


def tag_key(tag: str) -> str:
    return " ".join(tag.split()).casefold()


def usable_tag(tag: str, genres_folded: frozenset[str]) -> bool:
    """A tag can name a liked interest: not junk, not a genre name, 3..60 chars, has letters."""
    key = tag_key(tag)
    return (3 <= len(key) <= 60 and _WORDS.search(key) is not None and not _JUNK.search(key)
            and key not in genres_folded and key.replace("-", "") not in genres_folded)


def head_and_modifier(categories: Iterable[str]) -> list[str]:
    """Known genres ordered head first (the noun), then modifiers."""
    known = [c for c in dict.fromkeys(categories) if c in GENRE_NOUN]
    return sorted(known, key=HEAD_ORDER.index)


def pair_label(a: str, b: str) -> str:
    """'crime thrillers' for {Crime, Thriller}; fixed wordings for common pairs."""
    fixed = PAIR_LABELS.get(frozenset({a, b}))
    if fixed:
        return fixed
    head, modifier = head_and_modifier([a, b])
    return f"{GENRE_ADJ[modifier]} {GENRE_NOUN[head]}"


def decade_label(decade: int, categories: Sequence[str]) -> str:
    """'1990s crime thrillers' (pair) or '1980s horror films' (one genre)."""
    body = pair_label(*categories) if len(categories) == 2 else GENRE_NOUN[categories[0]]
    return f"{decade}s {body}"


def main_genre_noun(categories: Iterable[Iterable[str]]) -> str:
    """Noun of the most frequent known head genre among items, 'films' when none."""
    counts: dict[str, int] = {}
    for cats in categories:
        for c in cats:
            if c in GENRE_NOUN:
                counts[c] = counts.get(c, 0) + 1
    if not counts:
        return "films"
    best = min(counts, key=lambda c: (-counts[c], HEAD_ORDER.index(c)))
    return GENRE_NOUN[best]


def tag_label(tag: str, evidence_categories: Sequence[Sequence[str]],
              ) -> tuple[str, str]:
    """(label, granularity) for a tag interest; evidence categories phrase sentiments."""
    text = " ".join(tag.split())
    key = text.casefold()
    if key in APPLICATION_TAGS:
        return APPLICATION_TAGS[key], "application"
    if key in SENTIMENT_TAGS:
        return f"{SENTIMENT_TAGS[key]} {main_genre_noun(evidence_categories)}", "sentiment"
    animated = sum("Animation" in cats for cats in evidence_categories)
    if key in STUDIOS:
        studio = STUDIOS[key]
        return (f"{studio} animation" if animated * 2 >= len(evidence_categories)
                else f"{studio} films"), "keyword"
    if any(ch.isupper() for ch in text):
        return text, "keyword"  # a person, place, franchise or other proper name
    return text, ("topic" if " " in text else "keyword")



def _without_article(title: str) -> str:
    return TRAILING_ARTICLE.sub(r"\1", title.strip()).strip()


def _base(title: str) -> str:
    return _without_article(strip_year(title))


def franchise_key(title: str) -> str | None:
    """'Star Wars' for 'Star Wars: Episode IV - A New Hope (1977)', 'Toy Story' for
    'Toy Story 2 (1999)', 'Terminator' for 'Terminator 2: Judgment Day (1991)'; None for a
    title without a series marker (see :func:`franchises` for the first film)."""
    base = _base(title)
    if ":" in base:
        head, tail = (p.strip() for p in base.split(":", 1))
        tail = "" if re.match(r"(?:Part|Chapter|Episode)\b", tail) else _SEQUEL.sub("", tail)
        if len(tail.split()) == 1:  # "Mission: Impossible II" is the series' own name
            head = f"{head}: {tail}"
    else:
        head = _SEQUEL.sub("", base)
        if head == base:
            return None
    head = _without_article(_SEQUEL.sub("", head))
    return head if len(head) >= 4 and _WORDS.search(head) else None


def franchises(titles: dict[str, str]) -> dict[str, str]:
    """Item id -> series name for every item of a series with ≥ 2 catalog items; a first
    film without a marker ("Toy Story (1995)") joins its series by its bare title."""
    keyed = {i: franchise_key(t) for i, t in titles.items()}
    names = {k for k in keyed.values() if k}
    for item_id, title in titles.items():
        if keyed[item_id] is None and _base(title) in names:
            keyed[item_id] = _base(title)
    counts: dict[str, int] = {}
    for k in keyed.values():
        if k:
            counts[k] = counts.get(k, 0) + 1
    return {i: k for i, k in keyed.items() if k and counts[k] >= 2}


def franchise_label(name: str) -> str:
    return f"{name} films"
