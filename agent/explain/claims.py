"""The reasons an explanation may state for one item: each checked against the item's data.

Which retrieval queries found an item is not why it fits, so reasons are not copied from
``Candidate.matched``; every candidate reason is checked with
:class:`~tastelens.agent.explain.support.SupportChecker` and only supported ones survive:

- **explore** (explored slots): the exploration idea the item was found for;
- **interest**: the user's liked profile interests the item supports, those that retrieved
  it first, then by weight (at most ``max_interests``). An interest the item supports only in
  part — a topic "Crime: heist, bank robbery" for a heist film without a bank robbery — is
  stated as the part the item's own descriptors carry ("Crime: heist"), checked the same way;
- **wish**: a free-text request that retrieved it;
- **seed**: a requested item ("like Heat") whose text vector is within the evidence floor;
- **category**: one of the user's three strongest categories that the item carries;
- **collaborative** / **cooccurrence** / **prior**: found by the sequence model / the
  item-item model from the history / the popularity prior (true by construction: it is what
  found the item).

:meth:`ClaimMaker.reasons` returns them in the order the template states them, and counts
the retrieval labels that were dropped for lack of support.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tastelens.agent.explain.support import SupportChecker
from tastelens.agent.explain.vectors import ExplainVectors
from tastelens.agent.recommendation import Candidate, Reason
from tastelens.config.pipeline import ExplainConfig
from tastelens.data.dataset import Dataset
from tastelens.data.descriptors import descriptors
from tastelens.schemas import Interest, InterestProfile

SPECIAL = ("collaborative", "cooccurrence", "prior", "summary")
"""Retrieval labels that are no claim about the item's content."""
MODELS = {"collaborative": "found by the sequence model of your history",
          "cooccurrence": "found by the item-item model from your history",
          "prior": "among the most-watched items (the popularity prior)"}
TOP_CATEGORIES = 3


@dataclass
class Claims:
    """The supported reasons for one item, the supported interest labels and the
    retrieval labels the item did not support."""

    reasons: list[Reason] = field(default_factory=list)
    interests: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def wish_labels(profile: InterestProfile | None, candidate: Candidate) -> list[str]:
    """Retrieval labels that are free-text requests: not an interest, not a profile category,
    not an exploration idea, not seed/dislike, not a model's (:data:`SPECIAL`)."""
    known: set[str] = set()
    if profile is not None:
        known |= {i.label for i in profile.interests} | set(profile.explore_next)
        known |= {c.category for c in profile.categories}
    return [m for m in candidate.matched if m not in known and m not in SPECIAL
            and not m.startswith(("seed:", "dislike:"))]


def claim_texts(profile: InterestProfile | None, candidate: Candidate,
                checker: SupportChecker) -> list[str]:
    """Every text :meth:`ClaimMaker.reasons` may embed for this candidate (to batch them)."""
    labels = list(candidate.matched)
    if profile is not None:
        labels += [i.label for i in profile.interests]
    texts = (checker.residual_text(label) for label in labels
             if label not in SPECIAL and not label.startswith(("seed:", "dislike:")))
    return [t for t in texts if t]


class ClaimMaker:
    """Builds the supported reasons of one item; see the module docstring."""

    def __init__(self, config: ExplainConfig, dataset: Dataset, checker: SupportChecker,
                 vectors: ExplainVectors) -> None:
        self.config = config
        self.dataset = dataset
        self.checker = checker
        self.vectors = vectors

    def check(self, label: str, item_id: str) -> Reason | None:
        """A reason for ``label`` when ``item_id`` supports it (kind set by the caller)."""
        support = self.checker.check(label, self.dataset.item(item_id),
                                     self.vectors.item(item_id),
                                     self.vectors.text(self.checker.residual_text(label)))
        return Reason(kind="interest", label=label, support=support.basis) if support.ok \
            else None

    def reasons(self, profile: InterestProfile | None, candidate: Candidate) -> Claims:
        item_id = candidate.item
        item = self.dataset.item(item_id)
        out = Claims()
        matched = set(candidate.matched)
        if candidate.source == "explored":
            for label in candidate.matched:
                if label in SPECIAL or label.startswith(("seed:", "dislike:")):
                    continue
                found = self.check(label, item_id)
                if found is None:
                    out.dropped.append(label)
                    continue
                out.reasons.append(found.model_copy(update={"kind": "explore"}))
                out.interests.append(label)
                break
            return out
        if profile is not None:
            liked = sorted(profile.interests, key=lambda i: (i.label not in matched, -i.weight))
            for interest in liked:
                if len(out.interests) >= self.config.max_interests:
                    break
                found = self.check(interest.label, item_id)
                if found is None and interest.descriptors:
                    found = self._part(interest, item_id)
                if found is not None:
                    out.reasons.append(found)
                    out.interests.append(found.label)
                elif interest.label in matched:
                    out.dropped.append(interest.label)
        if not out.reasons:
            for wish in wish_labels(profile, candidate):
                found = self.check(wish, item_id)
                if found is None:
                    out.dropped.append(wish)
                    continue
                out.reasons.append(found.model_copy(update={"kind": "wish"}))
                break
        if not out.reasons:
            seed = self._seed(candidate)
            if seed is not None:
                out.reasons.append(seed)
        if not out.reasons and profile is not None:
            cats = {c.casefold(): c for c in item.categories}
            for pref in profile.categories[:TOP_CATEGORIES]:
                if pref.category.casefold() in cats:
                    out.reasons.append(Reason(kind="category", label=pref.category,
                                              support=f"category {pref.category}"))
                    break
        for label, support in MODELS.items():
            if not out.reasons and label in matched:
                out.reasons.append(Reason(kind=label, label="", support=support))
        return out

    def _part(self, interest: Interest, item_id: str) -> Reason | None:
        """The part of a descriptor-backed interest that ``item_id`` carries: its shared
        descriptors (two at most), after the interest's category when the label names one
        the item has; None when it shares none or the part does not check out."""
        item = self.dataset.item(item_id)
        own = set(descriptors(item))
        shared = [d for d in interest.descriptors if d in own][:2]
        if not shared:
            return None
        head, sep, _ = interest.label.partition(": ")
        prefix = f"{head}: " if sep and head in item.categories else ""
        return self.check(prefix + ", ".join(shared), item_id)

    def _seed(self, candidate: Candidate) -> Reason | None:
        """The first requested item the candidate's text vector is close to."""
        target = self.vectors.item(candidate.item)
        for label in candidate.matched:
            if not label.startswith("seed:"):
                continue
            seed = label[5:]
            vec = self.vectors.item(seed)
            if seed not in self.dataset.items or vec is None or target is None:
                continue
            sim = float(vec @ target)
            if sim >= self.config.evidence_min_similarity:
                return Reason(kind="seed", label=self.dataset.items[seed].title,
                              support=f"text similarity {sim:.2f}")
        return None
