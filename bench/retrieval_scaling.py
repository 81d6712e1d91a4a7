"""Benchmark: Chroma query latency as the catalog grows (not a test).

For each size, builds a collection of random unit vectors (dim 384, the default encoder's)
with item-like filter metadata (a year and one or two ``cat_<genre>`` flags, as
:func:`~tastelens.vectorstore.item_index.item_metadata` writes them) in a temporary embedded
store, then times single queries of k results: unfiltered, and with a genre + year filter
(:func:`~tastelens.vectorstore.item_index.item_filter`). Prints build time, p50/p95 per
query and the ratio to the smallest size; the targets of issue 4 are p50 ≤ 20 ms at 10k and
≤ 50 ms at 1M items (unfiltered).

    python bench/retrieval_scaling.py [--sizes 10000,100000,1000000] [--queries 200]
        [--k 50] [--dim 384] [--batch 5000] [--seed 0] [--results bench/results/index-build.md]

Random vectors are the hard case for HNSW (no cluster structure), so real text embeddings
query at least as fast. Building 1M × 384 with metadata takes long on 2 cores; the build
time is printed per size.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from tastelens.benchresults import add_results_option, markdown_table, write_results
from tastelens.config.settings import ChromaSettings, Settings
from tastelens.vectorstore.chroma_client import open_client
from tastelens.vectorstore.collection import VectorCollection
from tastelens.vectorstore.item_index import category_key, item_filter

GENRES = ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
          "Sci-Fi", "Thriller", "War", "Western")
FILTER = item_filter(["Comedy"], year_min=1990)


def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def metadata(rng: np.random.Generator, n: int) -> list[dict[str, object]]:
    years = rng.integers(1920, 2024, size=n)
    first = rng.integers(0, len(GENRES), size=n)
    second = rng.integers(-len(GENRES), len(GENRES), size=n)  # < 0: one genre only
    out = []
    for y, a, b in zip(years, first, second):
        cats = {GENRES[a]} | ({GENRES[b]} if b >= 0 else set())
        out.append({"year": int(y), **{category_key(c): True for c in cats}})
    return out


def build(coll: VectorCollection, rng: np.random.Generator, size: int, dim: int,
          batch: int) -> float:
    """Upsert ``size`` items in batches (generated on the fly to bound memory); seconds."""
    start = time.perf_counter()
    for lo in range(0, size, batch):
        n = min(batch, size - lo)
        coll.upsert([str(i) for i in range(lo, lo + n)], unit_vectors(rng, n, dim),
                    metadata(rng, n))
        done = lo + n
        if size >= 100_000 and done % (10 * batch) == 0:
            rate = done / (time.perf_counter() - start)
            print(f"  … {done:,}/{size:,} items, {rate:,.0f} items/s", flush=True)
    return time.perf_counter() - start


def time_queries(coll: VectorCollection, queries: np.ndarray, k: int,
                 where: dict | None) -> list[float]:
    coll.query(queries[0], k, where=where)  # warm-up: loads the segment
    out = []
    for q in queries:
        t = time.perf_counter()
        coll.query(q, k, where=where)
        out.append(1000 * (time.perf_counter() - t))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000",
                        help="Comma-separated catalog sizes.")
    parser.add_argument("--queries", type=int, default=200, help="Queries per size and mode.")
    parser.add_argument("--k", type=int, default=50, help="Results per query.")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--batch", type=int, default=5000, help="Items per upsert.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", type=Path, default=None,
                        help="Where the temporary store goes (default: the system temp dir).")
    add_results_option(parser, "bench/results/index-build.md")
    args = parser.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]

    rows = []
    for size in sizes:
        rng = np.random.default_rng(args.seed)
        with tempfile.TemporaryDirectory(prefix="tastelens-scaling-", dir=args.dir) as tmp:
            settings = Settings(cache_dir=Path(tmp), chroma=ChromaSettings(mode="embedded"))
            coll = VectorCollection(open_client(settings), f"scaling-{size}", model="random")
            print(f"building {size:,} × {args.dim} …", flush=True)
            build_s = build(coll, rng, size, args.dim, args.batch)
            queries = unit_vectors(rng, args.queries, args.dim)
            plain = time_queries(coll, queries, args.k, None)
            filtered = time_queries(coll, queries, args.k, FILTER)
            hits = len(coll.query(queries[0], args.k, where=FILTER)[0])
        rows.append((size, build_s, plain, filtered, hits))
        print(f"  built in {build_s:,.1f} s; unfiltered p50 {np.percentile(plain, 50):.2f} ms",
              flush=True)

    pct = lambda xs, q: float(np.percentile(xs, q))  # noqa: E731
    base = rows[0]
    print(f"\nChroma embedded, dim {args.dim}, k={args.k}, {args.queries} single queries per "
          f"mode; filter {FILTER}; load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
          "cores")
    print(f"{'items':>10} {'build s':>9} {'p50 ms':>8} {'p95 ms':>8} {'×p50':>6}   "
          f"{'filt p50':>8} {'filt p95':>8} {'×p50':>6} {'filt hits':>9}")
    for size, build_s, plain, filtered, hits in rows:
        print(f"{size:>10,} {build_s:>9.1f} {pct(plain, 50):>8.2f} {pct(plain, 95):>8.2f} "
              f"{pct(plain, 50) / pct(base[2], 50):>6.2f}   {pct(filtered, 50):>8.2f} "
              f"{pct(filtered, 95):>8.2f} {pct(filtered, 50) / pct(base[3], 50):>6.2f} "
              f"{hits:>9}")
    targets = {10_000: 20.0, 1_000_000: 50.0}
    for size, _, plain, _, _ in rows:
        if size in targets:
            ok = pct(plain, 50) <= targets[size]
            print(f"target p50 ≤ {targets[size]:.0f} ms at {size:,}: "
                  f"{'met' if ok else 'NOT met'} ({pct(plain, 50):.2f} ms)")
    if args.results:
        table = markdown_table([
            {"items": size, "build s": build_s, "p50 ms": pct(plain, 50),
             "p95 ms": pct(plain, 95), "filtered p50 ms": pct(filtered, 50),
             "filtered p95 ms": pct(filtered, 95), "filtered hits": hits}
            for size, build_s, plain, filtered, hits in rows])
        write_results(args.results, "retrieval_scaling", title="Retrieval as the catalog grows",
                      table=table, notes=f"Chroma embedded, random {args.dim}-d vectors, "
                                         f"k = {args.k}, {args.queries} single queries per "
                                         f"size and mode; filter {FILTER}.")


if __name__ == "__main__":
    main()
