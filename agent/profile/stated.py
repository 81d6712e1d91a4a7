"""What a person *says* about their taste, merged into a profile.

A new visitor in the chat has no history in the dataset; what they tell us is their profile:
the films they mention (their history, from which the data facts are computed as for anyone),
the categories they ask for ("a comedy"), the things they say they like ("90s Disney
musicals") and what they say they don't ("the matrix was boring", "no horror"). The learned
ranker's cold training cases state categories the same way, so it learns to rank for people
who have said little (:mod:`tastelens.finetune.ranker`).

:func:`with_stated` merges stated categories into a profile: each stated category gets an
equal share, and where the history gave shares too, the two are averaged (the person's words
and their films count alike). ``long_term`` and ``recent`` get the same merge, so the ranker's
category features read what was said.
"""

from __future__ import annotations

from collections.abc import Sequence

from tastelens.schemas import CategoryPreference, Interest, InterestProfile


def _merge(shares: dict[str, float], stated: Sequence[str]) -> dict[str, float]:
    said = {c: 1.0 / len(stated) for c in stated}
    if not shares:
        return said
    keys = list(dict.fromkeys([*stated, *shares]))
    return {k: round(0.5 * shares.get(k, 0.0) + 0.5 * said.get(k, 0.0), 6) for k in keys}


def with_stated(profile: InterestProfile, categories: Sequence[str] = (), *,
                likes: Sequence[str] = (), dislikes: Sequence[Interest] = (),
                ) -> InterestProfile:
    """``profile`` with stated ``categories`` (strongest first), stated ``likes`` (free-text
    interests, newest first) and ``dislikes`` added; see the module docstring."""
    stated = list(dict.fromkeys(c for c in categories if c))
    update: dict[str, object] = {}
    if stated:
        merged = _merge({c.category: c.weight for c in profile.categories}, stated)
        counts = {c.category: c.count for c in profile.categories}
        means = {c.category: c.mean_rating for c in profile.categories}
        update["categories"] = [
            CategoryPreference(category=c, weight=min(1.0, w), count=counts.get(c, 0),
                               mean_rating=means.get(c))
            for c, w in sorted(merged.items(), key=lambda t: -t[1])]
        update["long_term"] = _merge(profile.long_term, stated)
        update["recent"] = _merge(profile.recent, stated)
    if likes:
        said = [Interest(label=like[:80], granularity="keyword" if " " not in like
                         else "topic", weight=round(max(0.2, 1.0 - 0.1 * i), 2),
                         evidence=[], source="user")
                for i, like in enumerate(likes)]
        known = {i.label.casefold() for i in said}
        update["interests"] = said + [i for i in profile.interests
                                      if i.label.casefold() not in known]
    if dislikes:
        known = {d.label.casefold() for d in dislikes}
        update["dislikes"] = list(dislikes) + [d for d in profile.dislikes
                                               if d.label.casefold() not in known]
    return profile.model_copy(update=update) if update else profile
