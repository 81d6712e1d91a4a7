"""Benchmark: how the explainer's two similarity thresholds were chosen (not a test).

Both are cosines of the default encoder (all-MiniLM-L6-v2) against the item vectors stored in
the Chroma item index (`tastelens index build`), measured on MovieLens ml-latest-small:

- ``explain.interest_min_similarity``: when may an item's *text vector* support words its
  tags and text do not contain? Labels are the catalog's tags used on ≥ 3 items. Negatives:
  200 random items per tag that do not carry it (stored vectors, as the explainer reads
  them); the false-positive rate at t is the share of them at cosine ≥ t. Positives: items
  carrying the tag, re-embedded *without* their tags (title, year, genres), since that is the
  case the vector must decide; the true-positive rate at t is their share at ≥ t. We take the
  smallest t (step 0.05) with a false-positive rate ≤ 0.5 %.
- ``explain.evidence_min_similarity``: when is a history item too unlike a recommended one
  to cite? 200,000 random catalog pairs; for each t, the share of pairs at ≥ t and how many
  of those share a genre. We take the 90th percentile of random pairs (rounded to 0.05): a
  cited item is more like the pick than nine random pairs in ten.

    python bench/explain_thresholds.py [--data PATH] [--cache-dir DIR] [--seed 0]
        [--results bench/results/explain-thresholds.md]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from tastelens.benchresults import add_results_option, markdown_table, write_results
from tastelens.config.settings import load_settings
from tastelens.data import load_dataset
from tastelens.schemas import Item
from tastelens.vectorstore.encoders import encoder_from_settings
from tastelens.vectorstore.item_index import ItemIndex

DEFAULT_DATA = Path("/work/shared/data/ml-latest-small")
STEPS = np.round(np.arange(0.30, 0.701, 0.05), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-fpr", type=float, default=0.005)
    add_results_option(parser, "bench/results/explain-thresholds.md")
    args = parser.parse_args()

    settings = load_settings(cache_dir=args.cache_dir)
    dataset = load_dataset(args.data)
    encoder = encoder_from_settings(settings)
    index = ItemIndex.for_dataset(settings, dataset.name, encoder)
    ids = dataset.item_ids
    vectors = index.embeddings(ids)
    rng = np.random.default_rng(args.seed)

    # -- interest_min_similarity -----------------------------------------------------
    tagged: dict[str, set[int]] = defaultdict(set)
    for row, item in enumerate(ids):
        for tag in dataset.items[item].tags:
            tagged[tag.casefold()].add(row)
    tags = sorted(t for t, rows in tagged.items() if len(rows) >= 3)
    tag_vectors = encoder.encode(tags)
    negatives = []
    for k, tag in enumerate(tags):
        rows = [r for r in rng.choice(len(ids), 200, replace=False) if r not in tagged[tag]]
        negatives.append(vectors[rows] @ tag_vectors[k])
    neg = np.concatenate(negatives)
    pairs = [(k, r) for k, tag in enumerate(tags) for r in sorted(tagged[tag])]
    rows = sorted({r for _, r in pairs})
    bare = {r: i for i, r in enumerate(rows)}
    untagged = encoder.encode([Item(id=ids[r], title=dataset.items[ids[r]].title,
                                    year=dataset.items[ids[r]].year,
                                    categories=dataset.items[ids[r]].categories).document()
                               for r in rows])
    pos = np.array([float(untagged[bare[r]] @ tag_vectors[k]) for k, r in pairs])
    print(f"interest_min_similarity: {len(tags)} tags on >= 3 items, {len(pos)} positive "
          f"pairs (re-embedded without tags), {len(neg)} negative pairs (stored vectors)")
    print("   t     FPR    TPR")
    chosen = None
    interest_rows = []
    for t in STEPS:
        fpr, tpr = float((neg >= t).mean()), float((pos >= t).mean())
        print(f"  {t:.2f}  {fpr:6.2%}  {tpr:5.1%}")
        interest_rows.append({"t": f"{t:.2f}", "false positives": f"{fpr:.2%}",
                              "true positives": f"{tpr:.1%}"})
        if chosen is None and fpr <= args.max_fpr:
            chosen = t
    print(f"  -> smallest t with FPR <= {args.max_fpr:.1%}: {chosen}")

    # -- evidence_min_similarity -----------------------------------------------------
    a = rng.integers(0, len(ids), 200_000)
    b = rng.integers(0, len(ids), 200_000)
    keep = a != b
    a, b = a[keep], b[keep]
    sims = np.einsum("ij,ij->i", vectors[a], vectors[b])
    cats = [set(dataset.items[i].categories) for i in ids]
    share = np.array([bool(cats[x] & cats[y]) for x, y in zip(a, b)])
    print(f"\nevidence_min_similarity: {len(sims)} random catalog pairs")
    print("   t    pairs >= t   sharing a genre")
    evidence_rows = []
    for t in STEPS:
        above = sims >= t
        print(f"  {t:.2f}   {above.mean():6.1%}      {share[above].mean():6.1%}")
        evidence_rows.append({"t": f"{t:.2f}", "random pairs at ≥ t": f"{above.mean():.1%}",
                              "of those sharing a genre": f"{share[above].mean():.1%}"})
    p90 = float(np.quantile(sims, 0.9))
    print(f"  -> 90th percentile of random pairs: {p90:.3f} (rounded: {round(p90 * 20) / 20})")
    if args.results:
        table = "\n\n".join([
            f"`interest_min_similarity`: {len(tags):,} tags on ≥ 3 items; {len(pos):,} positive "
            f"pairs (re-embedded without tags), {len(neg):,} negative pairs (stored vectors); "
            f"smallest t with a false-positive rate ≤ {args.max_fpr:.1%}: **{chosen}**",
            markdown_table(interest_rows),
            f"`evidence_min_similarity`: {len(sims):,} random catalog pairs; their 90th "
            f"percentile: {p90:.3f} (rounded: **{round(p90 * 20) / 20}**)",
            markdown_table(evidence_rows)])
        write_results(args.results, "explain_thresholds", title="The explainer's two thresholds",
                      table=table, notes=f"{dataset.name}, encoder {encoder.model_id}.")


if __name__ == "__main__":
    main()
