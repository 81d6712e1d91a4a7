"""Benchmark: build and query the Chroma item index on real MovieLens (not a test).

Prints: encoder load time, embed time and throughput for the whole catalog, Chroma write
time, the time of an idempotent no-op rebuild, and query latency percentiles (Chroma only,
with precomputed vectors; and end to end with query embedding).

    python bench/index_build.py [--data /work/shared/data/ml-latest-small]
        [--embedder all-MiniLM-L6-v2] [--device cpu] [--queries 200] [--http]
        [--threads N] [--limit N] [--results bench/results/index-build.md]

The index goes into a temporary embedded store (or, with --http, a `chroma run` server
started on a free port for the run), so no cache is touched.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tastelens.benchresults import add_results_option, figures_table, write_results
from tastelens.config.settings import ChromaSettings, EmbedderSettings, Settings
from tastelens.data import load_dataset
from tastelens.vectorstore.encoders import TextEncoder, encoder_from_settings
from tastelens.vectorstore.item_index import ItemIndex, item_filter

QUERIES = ["toy cowboy animation", "space opera with robots", "romantic comedy in paris",
           "gritty crime thriller heist", "scary haunted house", "feel-good sports underdog",
           "war drama soldiers", "animated musical fairy tale", "dark psychological mystery",
           "superhero action sequel"]


class _CpuTimed(TextEncoder):
    """Wraps an encoder and adds up the process CPU seconds spent in ``encode``.

    CPU seconds do not grow when other jobs share the machine, so they give a figure that
    survives a loaded machine (wall ~= CPU / cores when the machine is free).
    """

    def __init__(self, inner: TextEncoder) -> None:
        self.inner, self.model_id, self.cpu_s = inner, inner.model_id, 0.0

    @property
    def dim(self) -> int:
        return self.inner.dim

    def encode(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        t = time.process_time()
        try:
            return self.inner.encode(texts, progress=progress)
        finally:
            self.cpu_s += time.process_time() - t


def _start_server(root: Path) -> tuple[subprocess.Popen, int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cli = Path(sys.executable).parent / "chroma"
    proc = subprocess.Popen([str(cli), "run", "--path", str(root), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    import httpx

    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).is_success:
                return proc, port
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("chroma run did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/ml-latest-small"))
    parser.add_argument("--embedder", default="all-MiniLM-L6-v2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64, help="Encoder batch size.")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (1 is faster on an oversubscribed box).")
    parser.add_argument("--limit", type=int, default=None,
                        help="Index only the first N items (quick runs on a busy machine).")
    parser.add_argument("--http", action="store_true", help="Use a real `chroma run` server.")
    add_results_option(parser, "bench/results/index-build.md")
    args = parser.parse_args()

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    dataset = load_dataset(args.data)
    items = list(dataset.items.values())[: args.limit]
    with tempfile.TemporaryDirectory(prefix="tastelens-bench-") as tmp:
        chroma = ChromaSettings(mode="embedded", path=Path(tmp) / "chroma")
        server = None
        if args.http:
            server, port = _start_server(Path(tmp) / "server")
            chroma = ChromaSettings(mode="http", host="127.0.0.1", port=port)
        try:
            settings = Settings(cache_dir=Path(tmp), chroma=chroma, embedder=EmbedderSettings(
                model=args.embedder, device=args.device, batch_size=args.batch_size))
            encoder = _CpuTimed(encoder_from_settings(settings))
            t = time.perf_counter()
            encoder.encode(["warm-up"])
            load_s = time.perf_counter() - t
            index = ItemIndex.for_dataset(settings, dataset.name, encoder)
            encoder.cpu_s, cpu0 = 0.0, time.process_time()
            report = index.build(items, batch_size=256, progress=False)
            build_cpu_s, embed_cpu_s = time.process_time() - cpu0, encoder.cpu_s
            t = time.perf_counter()
            noop = index.build(items, progress=False)
            noop_s = time.perf_counter() - t
            assert noop.unchanged == len(items) and noop.added == noop.updated == 0

            texts = [QUERIES[i % len(QUERIES)] + f" {i}" for i in range(args.queries)]
            vectors = encoder.encode(texts)
            chroma_ms, filtered_ms, e2e_ms = [], [], []
            where = item_filter(["Comedy"], year_min=1990)
            for text, vec in zip(texts, vectors):
                t = time.perf_counter()
                index.query(vec, 10)
                chroma_ms.append(1000 * (time.perf_counter() - t))
                t = time.perf_counter()
                index.query(vec, 10, where=where)
                filtered_ms.append(1000 * (time.perf_counter() - t))
                t = time.perf_counter()
                index.query_text([text], 10)
                e2e_ms.append(1000 * (time.perf_counter() - t))
            top = index.query_text(["toy cowboy animation"], 3)[0]
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=10)

    n = len(items)
    pct = lambda xs, q: float(np.percentile(xs, q))  # noqa: E731
    print(f"dataset            {dataset.name}: {n:,} items; embedder {encoder.model_id} "
          f"on {args.device}, batch {args.batch_size}, threads {args.threads or 'default'}; "
          f"chroma {chroma.mode}; "
          f"load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"encoder load       {load_s:6.2f} s")
    write_cpu = build_cpu_s - embed_cpu_s  # embedded mode: Chroma works in-process
    print(f"embed (build)      {report.embed_seconds:6.2f} s   "
          f"({n / report.embed_seconds:,.0f} items/s)   CPU {embed_cpu_s:6.1f} s")
    print(f"chroma add (build) {report.write_seconds:6.2f} s   "
          f"({n / report.write_seconds:,.0f} items/s)"
          + (f"   CPU {write_cpu:6.1f} s" if chroma.mode == "embedded" else ""))
    print(f"full build         {report.seconds:6.2f} s")
    print(f"no-op rebuild      {noop_s:6.2f} s   (hash check, nothing embedded)")
    for label, xs in (("query, k=10", chroma_ms), ("query + genre/year filter", filtered_ms),
                      ("query_text (embed+query)", e2e_ms)):
        print(f"{label:26s} p50 {pct(xs, 50):6.2f} ms   p95 {pct(xs, 95):6.2f} ms")
    print(f"'toy cowboy animation' -> {[dataset.items[i].title for i, _ in top]}")
    if args.results:
        figures = {
            "items": n, "encoder load s": load_s, "embed s": report.embed_seconds,
            "embed items/s": n / report.embed_seconds, "embed CPU s": embed_cpu_s,
            "chroma add s": report.write_seconds, "full build s": report.seconds,
            "no-op rebuild s": noop_s,
            **{f"{label} p{q} ms": pct(xs, q) for label, xs in (
                ("query k=10", chroma_ms), ("query + genre/year filter", filtered_ms),
                ("query_text (embed + query)", e2e_ms)) for q in (50, 95)}}
        write_results(args.results, "index_build", title="Building and querying the item index",
                      table=figures_table(figures),
                      notes=f"{dataset.name}, embedder {encoder.model_id} on {args.device}, "
                            f"Chroma {chroma.mode}.")


if __name__ == "__main__":
    main()
