"""The learned re-ranker: a LightGBM LambdaRank ensemble over per-candidate features
(:mod:`tastelens.agent.rank.features`), trained by :mod:`tastelens.finetune.ranker`.

A saved ranker is a folder::

    card.json          features, training data, parameters, validation metrics, importances
    base-<seed>.txt    boosters over the features without the LLM's (always there)
    llm-<seed>.txt     boosters that also read the LLM's log-probabilities (optional)

:class:`LearnedReranker` is the pipeline's re-rank stage in mode ``learned``: it builds the
features of every candidate, scores them with the base ensemble, and — when the ranker has
an LLM part, ``rerank.llm_feature`` is on and the LLM answers — asks the LLM to score the
first ``rerank.max_candidates`` candidates (score mode, :class:`~tastelens.agent.rank.reranker.
Reranker`) and orders everything with the LLM ensemble. When the LLM is down or its reply
unusable, the base ensemble's order is served and flagged (``fallback``, with the reason).
A ranker whose features this version does not compute is refused with a clear error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tastelens.agent.rank.features import (
    FEATURES,
    FeatureBuilder,
    RankRequest,
    feature_sets,
)
from tastelens.agent.rank.reranker import Reranker
from tastelens.agent.recommendation import (
    Candidate,
    Constraints,
    HistoryEvent,
    RerankResult,
)
from tastelens.data.dataset import Dataset
from tastelens.errors import ConfigError
from tastelens.fsutil import atomic_write_json, staged_dir
from tastelens.schemas import Interaction, InterestProfile

CARD = "card.json"
FORMAT_VERSION = 1


def ranker_dir(cache_dir: Path, dataset: str, name: str) -> Path:
    """Where ``tastelens rank train`` saves a ranker and the pipeline loads it from: ``name``
    itself when it is a folder holding a card, else ``<cache_dir>/rankers/<dataset>/<name>``."""
    path = Path(name).expanduser()
    if (path / CARD).is_file():
        return path
    return cache_dir / "rankers" / dataset / name


class LearnedRanker:
    """A trained ranker: the base ensemble, optionally the LLM one, and its card."""

    def __init__(self, base: Sequence[Any], llm: Sequence[Any] | None, card: dict[str, Any],
                 ) -> None:
        self.base = list(base)
        self.llm = list(llm) if llm else []
        self.card = card

    @property
    def uses_llm(self) -> bool:
        return bool(self.llm)

    def features(self, kind: str) -> list[str]:
        """The columns the ``kind`` ensemble ('base' or 'llm') was trained on (its card's)."""
        return list(self.card["features"][kind])

    def scores(self, features: np.ndarray, *, with_llm: bool) -> np.ndarray:
        """Mean ensemble score per row of ``features`` (columns in :data:`FEATURES` order)."""
        boosters = self.llm if with_llm and self.llm else self.base
        names = self.features("llm" if boosters is self.llm else "base")
        cols = [FEATURES.index(n) for n in names]
        x = features[:, cols].astype(np.float64)
        return np.mean([b.predict(x) for b in boosters], axis=0)

    # -- files ------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write the ranker into ``folder`` in one rename (nothing half-written)."""
        with staged_dir(folder) as tmp:
            for kind, boosters in (("base", self.base), ("llm", self.llm)):
                for k, booster in enumerate(boosters):
                    booster.save_model(str(tmp / f"{kind}-{k}.txt"))
            atomic_write_json(tmp / CARD, self.card)

    @classmethod
    def load(cls, folder: Path) -> LearnedRanker:
        import lightgbm as lgb

        card_path = folder / CARD
        if not card_path.is_file():
            raise ConfigError(f"no learned ranker in {folder} (missing {CARD}): train one with "
                              "`tastelens rank train`")
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{card_path} is not valid JSON: {exc}") from exc
        if card.get("format_version") != FORMAT_VERSION:
            raise ConfigError(f"{card_path}: format {card.get('format_version')!r}, this "
                              f"version reads {FORMAT_VERSION}; retrain with `tastelens rank "
                              "train`")
        check_features(card.get("features", {}), card_path)
        base = [lgb.Booster(model_file=str(p)) for p in sorted(folder.glob("base-*.txt"))]
        llm = [lgb.Booster(model_file=str(p)) for p in sorted(folder.glob("llm-*.txt"))]
        if not base:
            raise ConfigError(f"{folder} holds no base-*.txt boosters")
        return cls(base, llm, card)


def check_features(features: dict[str, list[str]], source: Path | str) -> None:
    """The card's feature lists must be ones this version computes, in order: the base set
    with or without the interest features, and the LLM one that set + the LLM's."""
    base = features.get("base", [])
    known = [feature_sets(interest=interest, llm=True) for interest in (False, True)]
    match = next((sets for sets in known if sets["base"] == base), None)
    for kind, names in features.items():
        if match is None or names != match.get(kind):
            unknown = sorted(set(names) - set(FEATURES))
            detail = f"unknown features {unknown}" if unknown else "another feature order"
            raise ConfigError(f"{source}: the {kind} ranker was trained with {detail} than "
                              "this version computes; retrain it with `tastelens rank train`")


def as_request(dataset: Dataset, profile: InterestProfile | None,
               history: Sequence[HistoryEvent], candidates: Sequence[Candidate],
               constraints: Constraints | None) -> RankRequest:
    """A :class:`RankRequest` from the pipeline's shapes (interactions, pairs or ids)."""
    index = dataset.item_index
    items, ratings, times = [], [], []
    for event in history:
        if isinstance(event, Interaction):
            item, rating, ts = event.item, event.rating, event.timestamp
        elif isinstance(event, str):
            item, rating, ts = event, None, None
        else:
            item, rating, ts = str(event[0]), event[1], None
        if item in index:
            items.append(index[item])
            ratings.append(np.nan if rating is None else rating)
            times.append(-1 if ts is None else ts)
    c = constraints or Constraints()
    return RankRequest(history=np.array(items, dtype=np.int64),
                       ratings=np.array(ratings, dtype=np.float64),
                       timestamps=np.array(times, dtype=np.int64), profile=profile,
                       candidates=list(candidates), wishes=list(c.queries),
                       seeds=[s for s in c.seed_items if s in index])


class LearnedReranker:
    """The re-rank stage in mode ``learned``; see the module docstring."""

    def __init__(self, ranker: LearnedRanker, *, features: FeatureBuilder,
                 llm_reranker: Reranker | None, llm_feature: bool = True) -> None:
        self.ranker = ranker
        self.features = features
        self.llm_reranker = llm_reranker
        self.use_llm = llm_feature and ranker.uses_llm and llm_reranker is not None

    def rerank_many(self, profiles: Sequence[InterestProfile | None],
                    histories: Sequence[Sequence[HistoryEvent]],
                    candidates: Sequence[Sequence[Candidate]],
                    constraints: Sequence[Constraints | None] | Constraints | None = None,
                    ) -> list[RerankResult]:
        n = len(candidates)
        if constraints is None or isinstance(constraints, Constraints):
            constraints = [constraints] * n
        dataset = self.features.dataset
        requests = [as_request(dataset, p, h, c, k)
                    for p, h, c, k in zip(profiles, histories, candidates, constraints)]
        reasons: list[str | None] = [None] * n
        if self.use_llm:
            assert self.llm_reranker is not None
            results = self.llm_reranker.rerank_many(profiles, histories, candidates, constraints)
            for r, (req, result) in enumerate(zip(requests, results)):
                if result.fallback:
                    reasons[r] = f"LLM feature unavailable: {result.reason}"
                else:
                    shown = len(req.candidates[: self.llm_reranker.config.max_candidates])
                    req.llm_scores = {c.item: result.scores[c.item]
                                      for c in req.candidates[:shown]}
        matrices = self.features.build(requests)
        out = []
        for req, x, reason in zip(requests, matrices, reasons):
            if not req.candidates:
                out.append(RerankResult(order=[], scores={}))
                continue
            scores = self.ranker.scores(x, with_llm=self.use_llm and reason is None)
            ids = [c.item for c in req.candidates]
            order = sorted(range(len(ids)), key=lambda k: (-scores[k], k))
            out.append(RerankResult(order=[ids[k] for k in order],
                                    scores={ids[k]: round(float(scores[k]), 6) for k in order},
                                    fallback=reason is not None, reason=reason))
        return out
