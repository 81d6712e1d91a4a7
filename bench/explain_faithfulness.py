"""Benchmark: are the pipeline's explanations true of the items they explain? (not a test)

Runs the real pipeline (``RecommendPipeline.from_settings``: the Chroma item index, the
profile stage, the retriever, the re-ranker in ``--rerank`` mode, the explainer) for a seeded
sample of users and audits every explanation from its output alone, with code of its own:

- **claims**: every label the explanation states (its ``interests`` and ``reasons``, and
  every quoted string of its text that is not a cited title) must be true of the item: each
  catalog category the label names is one of the item's, each decade it names holds the
  item's year, and the words left appear in the item's tags or text or have cosine ≥
  ``explain.interest_min_similarity`` with its stored text vector; an interest claim must be
  one of the user's profile interests, a "favourite genre" one of their top three
  categories; a category named outside quotes must be the item's;
- **citations**: every cited history item is in the history, liked (rating ≥
  ``explain.liked_rating`` or unrated) and among the ``explain.evidence_pool`` liked items
  most similar to the recommended one (stored text vectors);
- **specific**: the share of items with at least one specific reason (a stated interest,
  request, requested item, exploration idea, favourite category, or a cited history item);
- **distinct**: distinct history items cited per list; a list "allows" 6 when its picks
  could cite 6 distinct items at all: each pick cites at most ``explain.max_evidence`` items
  of its pool (the liked items a citation may come from), a bipartite matching.

    python bench/explain_faithfulness.py [--data PATH] [--users 100] [--k 10]
        [--rerank none|score|listwise|learned] [--no-collaborative]
        [--profile-source facts|store|llm] [--explain-llm] [--cache-dir DIR] [--seed 0]
        [--json out.json] [--results bench/results/explain-faithfulness.md]

The Chroma item index must exist (`tastelens index build`), and unless
``--no-collaborative`` the collaborative models (`tastelens index behaviour`); ``--rerank
learned`` needs `tastelens rank train`. Without ``--explain-llm``,
``--profile-source llm`` or a re-rank mode other than ``none`` no model is needed and none
is started. The figures in bench/results/explain-faithfulness.md come from this script.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np

from tastelens.agent.pipeline import RecommendPipeline
from tastelens.agent.recommendation import Explanation, RecommendationList
from tastelens.benchresults import add_results_option, markdown_table, write_results
from tastelens.config.settings import load_settings
from tastelens.data import load_dataset
from tastelens.data.dataset import Dataset
from tastelens.llm.fake import FakeBackend
from tastelens.llm.registry import create_backend
from tastelens.schemas import InterestProfile, Item
from tastelens.vectorstore.encoders import encoder_from_settings
from tastelens.vectorstore.item_index import ItemIndex

DEFAULT_DATA = Path("/work/shared/data/ml-latest-small")
QUOTED = re.compile(r'"([^"]+)"')
DECADE = re.compile(r"\b(?:(1[89]|20)(\d)0|'?(\d)0)'?s\b")
FILLER = {"a", "an", "and", "or", "of", "the", "in", "with", "from", "about", "for", "movie",
          "movies", "film", "films", "s", "like", "to", "on", "by"}


class Auditor:
    """Checks explanations against the items, the profile and the history."""

    def __init__(self, dataset: Dataset, index: ItemIndex, liked_rating: float, pool: int,
                 floor: float, min_similarity: float, per_item: int) -> None:
        self.dataset = dataset
        self.per_item = per_item
        self.floor = floor
        self.index = index
        self.liked_rating = liked_rating
        self.pool = pool
        self.min_similarity = min_similarity
        names = {c for it in dataset.items.values() for c in it.categories if c[:1] != "("}
        self.category_words = {c: category_pattern(c) for c in names}
        self.counts: Counter[str] = Counter()
        self.distinct: list[int] = []
        self.allows: list[bool] = []
        self.per_list: list[dict[str, object]] = []
        self.failures: list[str] = []

    # -- claims -----------------------------------------------------------------------
    def label_true(self, label: str, item: Item) -> bool:
        text = label.casefold()
        named = [c for c, rx in self.category_words.items() if rx.search(text)]
        if any(c not in item.categories for c in named):
            return False
        for m in DECADE.finditer(text):
            start = int(m.group(1) + m.group(2) + "0") if m.group(1) else (
                1900 + 10 * int(m.group(3)) if int(m.group(3)) > 2 else 2000 + 10 * int(m.group(3)))
            if item.year is None or not start <= item.year < start + 10:
                return False
        rest = DECADE.sub(" ", text)
        for c in named:
            rest = self.category_words[c].sub(" ", rest)
        words = [w for w in re.findall(r"[a-z0-9]+", rest) if w not in FILLER and not w.isdigit()]
        if not words:
            return bool(named) or bool(DECADE.search(text))
        own = " ".join([*item.tags, *item.categories, item.text or ""]).casefold()
        own_words = re.findall(r"[a-z0-9]+", own)
        if all(any(o.startswith(w[:5]) and w.startswith(o[:5]) for o in own_words)
               for w in words):
            return True
        vector = self.index.embeddings([item.id])[0]
        query = self.index.encoder.encode([" ".join(words)])[0]
        return float(vector @ query) >= self.min_similarity

    def audit(self, user: str, result: RecommendationList, profile: InterestProfile,
              history: list[tuple[str, float | None]]) -> None:
        liked = {i: r for i, r in history if r is None or r >= self.liked_rating}
        liked_ids = list(liked)
        liked_vectors = self.index.embeddings(liked_ids) if liked_ids else None
        interests = {i.label for i in profile.interests} | set(profile.explore_next)
        top = [c.category for c in profile.categories[:3]]
        cited_all: set[str] = set()
        pools: list[list[str]] = []
        for rec in result.items:
            item = self.dataset.item(rec.item)
            exp = rec.explanation
            self.counts["items"] += 1
            if exp is None:
                continue
            self.counts[f"source_{exp.source}"] += 1
            sims = (liked_vectors @ self.index.embeddings([rec.item])[0]
                    if liked_vectors is not None else np.zeros(0))
            if item.categories:  # "like" needs a category in common, when there are any
                sims = np.where([bool(set(self.dataset.item(h).categories) & set(
                    item.categories)) for h in liked_ids], sims, -np.inf)
            order = np.argsort(-sims, kind="stable")[: self.pool]
            pools.append([liked_ids[k] for k in order if sims[k] >= self.floor])
            self._citations(exp, item, liked, liked_ids, sims)
            cited_all.update(exp.evidence)
            claimed = self._claims(exp, item, interests, top)
            self.counts["specific"] += bool(exp.evidence) or claimed
        most = most_distinct(pools, self.per_item)
        self.distinct.append(len(cited_all))
        self.allows.append(most >= 6)
        self.per_list.append({"user": user, "distinct_cited": len(cited_all),
                              "most_distinct_possible": most, "liked": len(liked)})

    def _claims(self, exp: Explanation, item: Item, interests: set[str],
                top: list[str]) -> bool:
        """Audit every claim; True when one of them is a specific reason."""
        claims = [(r.kind, r.label) for r in exp.reasons if r.label]
        claims += [("interest", label) for label in exp.interests
                   if ("interest", label) not in claims and ("explore", label) not in claims]
        titles = {self.dataset.item(i).title for i in exp.evidence}
        labels = {label for _, label in claims}
        for quoted in QUOTED.findall(exp.text):
            if quoted not in titles and quoted not in labels:
                claims.append(("quoted", quoted))
        for kind, label in claims:
            if kind == "seed":
                ok = True  # a requested item: its similarity is the explainer's own check
            elif kind == "category":
                ok = label in item.categories and label in top
            else:
                ok = self.label_true(label, item) and (kind != "interest" or label in interests)
            self.counts["claims"] += 1
            self.counts["claims_supported"] += ok
            if not ok:
                self.failures.append(f"{item.title}: {kind} {label!r} in {exp.text!r}")
        bare = QUOTED.sub(" ", exp.text).casefold()
        for category, rx in self.category_words.items():
            if rx.search(bare):
                self.counts["claims"] += 1
                ok = category in item.categories
                self.counts["claims_supported"] += ok
                if not ok:
                    self.failures.append(f"{item.title}: calls it {category} in {exp.text!r}")
        return any(kind not in ("collaborative", "cooccurrence") for kind, _ in claims)

    def _citations(self, exp: Explanation, item: Item, liked: dict[str, float | None],
                   liked_ids: list[str], sims: np.ndarray) -> None:
        position = {i: k for k, i in enumerate(liked_ids)}
        for cited in exp.evidence:
            self.counts["cited"] += 1
            k = position.get(cited)
            ok = k is not None and int((sims > sims[k]).sum()) < self.pool
            self.counts["cited_supported"] += ok
            self.counts["cited_shares_category"] += bool(
                set(self.dataset.item(cited).categories) & set(item.categories))
            if not ok:
                self.failures.append(f"{item.title}: cites {self.dataset.item(cited).title}")

    def figures(self) -> dict[str, float]:
        c, n = self.counts, max(1, len(self.distinct))
        allowing = [d for d, a in zip(self.distinct, self.allows) if a]
        return {
            "lists": len(self.distinct), "items": c["items"],
            "claims": c["claims"], "supported_claims": c["claims_supported"] / max(1, c["claims"]),
            "cited": c["cited"], "supported_citations": c["cited_supported"] / max(1, c["cited"]),
            "citations_sharing_a_category": c["cited_shares_category"] / max(1, c["cited"]),
            "items_with_a_specific_reason": c["specific"] / max(1, c["items"]),
            "distinct_cited_mean": sum(self.distinct) / n,
            "distinct_cited_min": min(self.distinct, default=0),
            "lists_with_6_distinct": sum(d >= 6 for d in self.distinct) / n,
            "lists_allowing_6": len(allowing),
            "allowing_lists_with_6_distinct": sum(d >= 6 for d in allowing) / max(1, len(allowing)),
            "llm_texts": c["source_llm"], "template_texts": c["source_data"],
        }


def most_distinct(pools: list[list[str]], per_item: int) -> int:
    """The most distinct history items a list can cite: each pick cites at most
    ``per_item`` items of its pool (a maximum bipartite matching of history items to
    citation slots, by augmenting paths)."""
    slots = [k for k, _ in enumerate(pools) for _ in range(per_item)]
    owner: dict[str, int] = {}  # history item -> slot

    def augment(slot: int, seen: set[str]) -> bool:
        for h in pools[slots[slot]]:
            if h in seen:
                continue
            seen.add(h)
            if h not in owner or augment(owner[h], seen):
                owner[h] = slot
                return True
        return False

    return sum(augment(slot, set()) for slot in range(len(slots)))


def category_pattern(category: str) -> re.Pattern[str]:
    """'Sci-Fi' matches "sci-fi" and "sci fi"; plurals "thrillers", "comedies"."""
    word = re.escape(category.casefold()).replace(r"\-", "[- ]?")
    word = word[:-1] + "(?:y|ies)" if word.endswith("y") else word + "(?:s|es)?"
    return re.compile(rf"\b{word}\b")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--rerank", choices=("none", "score", "listwise", "learned"),
                        default="none")
    parser.add_argument("--no-collaborative", action="store_true",
                        help="Retrieve without the collaborative models (no `tastelens index "
                             "behaviour` needed).")
    parser.add_argument("--profile-source", choices=("facts", "store", "llm"), default="facts")
    parser.add_argument("--explain-llm", action="store_true",
                        help="The model writes the sentences (explain.use_llm).")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--batch", type=int, default=25, help="Users per recommend_many call.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    parser.add_argument("--show-failures", type=int, default=10)
    add_results_option(parser, "bench/results/explain-faithfulness.md")
    args = parser.parse_args()

    settings = load_settings(cache_dir=args.cache_dir)
    dataset = load_dataset(args.data)
    config = settings.recommend
    config = config.model_copy(update={
        "profile_source": args.profile_source,
        "rerank": config.rerank.model_copy(update={"mode": args.rerank}),
        "collaborative": config.collaborative.model_copy(
            update={"enabled": not args.no_collaborative}),
        "explain": config.explain.model_copy(update={"use_llm": args.explain_llm})})
    cfg = config.explain
    needs_llm = args.explain_llm or args.profile_source == "llm" or args.rerank != "none"
    # No model stage asked: a fake with no replies, so any unexpected call fails loudly.
    llm = create_backend(settings) if needs_llm else FakeBackend()
    n_users = min(args.users, len(dataset.user_ids))
    users = random.Random(args.seed).sample(dataset.user_ids, n_users)
    index = ItemIndex.for_dataset(settings, dataset.name, encoder_from_settings(settings))
    auditor = Auditor(dataset, index, cfg.liked_rating, cfg.evidence_pool,
                      cfg.evidence_min_similarity, cfg.interest_min_similarity,
                      cfg.max_evidence)
    started = time.perf_counter()
    with llm, RecommendPipeline.from_settings(settings, dataset, llm=llm, config=config) as pipe:
        pipe.warm_up()
        for lo in range(0, len(users), args.batch):
            part = users[lo:lo + args.batch]
            for user, result in zip(part, pipe.recommend_many(part, k=args.k)):
                history = [(e.item, e.rating) for e in dataset.history(user)]
                auditor.audit(user, result, pipe.profile_for(user), history)
            print(f"  {min(lo + args.batch, len(users))}/{len(users)} users, "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
        stats = pipe.explainer.stats.model_dump() if hasattr(pipe.explainer, "stats") else {}
    figures = auditor.figures()
    print(f"\n{len(users)} users (seed {args.seed}), k={args.k}, rerank={args.rerank}, "
          f"collaborative={not args.no_collaborative}, profile_source={args.profile_source}, "
          f"explain={'llm' if args.explain_llm else 'data'}, "
          f"{time.perf_counter() - started:.0f} s")
    rows = []
    for key, value in figures.items():
        shown = f"{value:.1%}" if isinstance(value, float) and key not in (
            "distinct_cited_mean",) else f"{value:.2f}" if isinstance(value, float) else value
        print(f"  {key:<32} {shown}")
        rows.append({"figure": key, "value": shown})
    print(f"  explainer stats: {stats}")
    for line in auditor.failures[: args.show_failures]:
        print("  UNSUPPORTED", line)
    if args.json:
        args.json.write_text(json.dumps({
            "users": users, "k": args.k, "rerank": args.rerank,
            "collaborative": not args.no_collaborative,
            "profile_source": args.profile_source, "explain_llm": args.explain_llm,
            "config": cfg.model_dump(), "figures": figures, "explainer": stats,
            "failures": auditor.failures, "lists": auditor.per_list}, indent=2))
    if args.results:
        name = "explain_faithfulness" + ("_llm" if args.explain_llm else "") + (
            "_no_collaborative" if args.no_collaborative else "")
        write_results(args.results, name, title="Are explanations true? (the audit)",
                      table=markdown_table(rows),
                      notes=f"{len(users)} users of {dataset.name} (seed {args.seed}), "
                            f"k = {args.k}, rerank {args.rerank}, collaborative "
                            f"{not args.no_collaborative}, profile_source "
                            f"{args.profile_source}, explanations "
                            f"{'by the model' if args.explain_llm else 'from the template'}; "
                            f"explainer stats: {stats}.")


if __name__ == "__main__":
    main()
