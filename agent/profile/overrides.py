"""The user's own edits (:class:`~tastelens.taste.TasteOverrides`) applied to a computed
profile, so that retrieval, ranking and explanations all see the taste the user stated.

- a **removed** interest leaves ``interests`` (and ``explore_next``): no retrieval query is
  asked for it, the ranker's interest features do not include it and no explanation claims
  it;
- a **pinned** interest gets weight 1 and ``pinned = True`` (the query planner asks pinned
  interests first); one the rebuilt profile no longer has comes back from its snapshot;
- an added **dislike** joins ``dislikes`` with weight 1 and ``source = "user"``. One naming a
  catalog category also leaves the profile's categories and becomes an excluded category of
  every request that does not ask for it (:func:`override_constraints`); any other text is a
  disliked theme, which retrieval demotes and the ranker sees.
"""

from __future__ import annotations

from collections.abc import Iterable

from tastelens.agent.recommendation import Constraints
from tastelens.schemas import Interest, InterestProfile
from tastelens.taste import TasteOverrides


def apply_overrides(profile: InterestProfile, overrides: TasteOverrides,
                    categories: Iterable[str] = ()) -> InterestProfile:
    """``profile`` as the user edited it (a new object; ``profile`` is not changed)."""
    if overrides.is_empty():
        return profile
    removed = {r.casefold() for r in overrides.removed}
    pinned = {p.label.casefold(): p for p in overrides.pinned}
    interests: list[Interest] = []
    for interest in profile.interests:
        key = interest.label.casefold()
        if key in removed:
            continue
        if key in pinned:
            interest = interest.model_copy(update={"pinned": True, "weight": 1.0})
            del pinned[key]
        interests.append(interest)
    interests += [p.model_copy(update={"pinned": True, "weight": 1.0})
                  for p in pinned.values() if p.label.casefold() not in removed]
    interests.sort(key=lambda i: not i.pinned)  # stable: pinned first, the rest in order
    added = {d.casefold(): d for d in overrides.dislikes}
    dislikes = [d for d in profile.dislikes if d.label.casefold() not in added]
    dislikes += [Interest(label=d, granularity="topic", polarity="dislike", weight=1.0,
                          source="user") for d in added.values()]
    catalog = {c.casefold() for c in categories}
    disliked_categories = {k for k in added if k in catalog}
    return profile.model_copy(update={
        "interests": interests, "dislikes": dislikes,
        "categories": [c for c in profile.categories
                       if c.category.casefold() not in disliked_categories],
        "explore_next": [e for e in profile.explore_next
                         if e.casefold() not in removed | disliked_categories]})


def override_constraints(constraints: Constraints, overrides: TasteOverrides,
                         categories: Iterable[str]) -> Constraints:
    """``constraints`` with the user's disliked catalog categories excluded, except those
    the request itself asks for (a request for Horror from someone who said "no horror"
    gets Horror: the request is the newer word)."""
    catalog = {c.casefold(): c for c in categories}
    asked = {c.casefold() for c in constraints.include_categories}
    excluded = {c.casefold() for c in constraints.exclude_categories}
    extra = [catalog[d.casefold()] for d in overrides.dislikes
             if d.casefold() in catalog and d.casefold() not in asked | excluded]
    if not extra:
        return constraints
    return constraints.model_copy(update={
        "exclude_categories": [*constraints.exclude_categories, *dict.fromkeys(extra)]})
