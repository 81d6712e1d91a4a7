"""Batch recommendations for every user (the nightly job of a deployment) into one Parquet file.

Each user's list comes from the serving pipeline itself (:class:`RecommendPipeline`, built
from settings as `tastelens recommend` builds it), so the file holds what the API would
answer. Two engines, one output:

- ``local``: one pipeline in this process, ``batch_size`` users per
  :meth:`~RecommendPipeline.recommend_many` call;
- ``ray``: a Ray Data pipeline, one pipeline per worker (an actor pool), the same batches;
  the LLM, when the pipeline asks it anything, is the job's vLLM replicas.

Only this process writes: rows go to a Parquet file in row groups, under a temporary name
renamed into place at the end, so a killed job leaves no half-written file. One row per
recommendation: ``user, rank, item, title, score, source, reason``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tastelens.agent.pipeline import RecommendPipeline
from tastelens.agent.recommendation import RecommendationList
from tastelens.config.pipeline import PipelineConfig
from tastelens.config.settings import Settings
from tastelens.data.dataset import Dataset

COLUMNS = ("user", "rank", "item", "title", "score", "source", "reason")


class BatchSummary(BaseModel):
    """What a batch run did."""

    users: int
    rows: int
    rerank_fallbacks: int = Field(description="Lists kept in retrieval order (LLM failed).")
    seconds: float

    @property
    def users_per_second(self) -> float:
        return self.users / self.seconds if self.seconds else 0.0


def list_rows(result: RecommendationList) -> dict[str, list[Any]]:
    """Columns for one user's list (the Parquet file's rows)."""
    rows: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    for rec in result.items:
        for name, value in (("user", result.user or ""), ("rank", rec.rank), ("item", rec.item),
                            ("title", rec.title), ("score", float(rec.score)),
                            ("source", rec.source),
                            ("reason", rec.explanation.text if rec.explanation else "")):
            rows[name].append(value)
    return rows


def _batch_rows(pipeline: RecommendPipeline, users: Sequence[str], k: int | None,
                ) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {c: [] for c in (*COLUMNS, "fallback")}
    for result in pipeline.recommend_many(list(users), k=k):
        rows = list_rows(result)
        for name in COLUMNS:
            out[name] += rows[name]
        out["fallback"] += [result.report.rerank_fallback] * len(rows["user"])
    return out


class RecommendWorker:
    """A Ray Data actor holding one serving pipeline for its life."""

    def __init__(self, settings: Settings, config: PipelineConfig, dataset: list[Any],
                 k: int | None) -> None:
        import ray

        self.pipeline = RecommendPipeline.from_settings(settings, ray.get(dataset[0]),
                                                        config=config)
        self.k = k

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        return _batch_rows(self.pipeline, [str(u) for u in batch["user"]], self.k)


class _ParquetOut:
    """Row groups into ``<path>.tmp``, renamed to ``path`` on :meth:`close`."""

    def __init__(self, path: Path) -> None:
        import pyarrow as pa

        self.path, self.tmp = path, path.with_name(path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.schema = pa.schema([("user", pa.string()), ("rank", pa.int32()),
                                 ("item", pa.string()), ("title", pa.string()),
                                 ("score", pa.float64()), ("source", pa.string()),
                                 ("reason", pa.string())])
        self.writer: Any = None
        self.rows = 0

    def write(self, columns: dict[str, list[Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            self.writer = pq.ParquetWriter(self.tmp, self.schema)
        table = pa.table({c: columns[c] for c in COLUMNS}, schema=self.schema)
        self.writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        if self.writer is None:
            self.write({c: [] for c in COLUMNS})
        self.writer.close()
        os.replace(self.tmp, self.path)


def _local_batches(settings: Settings, config: PipelineConfig, dataset: Dataset,
                   users: Sequence[str], k: int | None, batch_size: int,
                   ) -> Iterator[dict[str, list[Any]]]:
    with RecommendPipeline.from_settings(settings, dataset, config=config) as pipeline:
        for start in range(0, len(users), batch_size):
            yield _batch_rows(pipeline, users[start:start + batch_size], k)


def _ray_batches(settings: Settings, config: PipelineConfig, dataset: Dataset,
                 users: Sequence[str], k: int | None, batch_size: int, workers: int,
                 worker_cpus: float) -> Iterator[dict[str, list[Any]]]:
    import ray
    import ray.data

    blocks = -(-len(users) // batch_size)
    rows = ray.data.from_items([{"user": u} for u in users], override_num_blocks=blocks
                               ).map_batches(
        RecommendWorker, fn_constructor_kwargs={"settings": settings, "config": config,
                                                "dataset": [ray.put(dataset)], "k": k},
        batch_size=batch_size, batch_format="numpy", num_cpus=worker_cpus,
        compute=ray.data.ActorPoolStrategy(size=min(workers, blocks)))
    for batch in rows.iter_batches(batch_size=None, batch_format="pandas"):
        yield {c: batch[c].tolist() for c in (*COLUMNS, "fallback")}


def recommend_all(settings: Settings, dataset: Dataset, users: Sequence[str], out: Path, *,
                  config: PipelineConfig | None = None, k: int | None = None,
                  engine: str = "local", batch_size: int = 16, workers: int = 2,
                  worker_cpus: float = 0.5,
                  on_batch: Callable[[int], None] | None = None) -> BatchSummary:
    """Write every user's top-``k`` to ``out`` (Parquet); ``on_batch(n_users)`` after each
    batch is written. ``engine='ray'`` needs a connected Ray session."""
    started = time.perf_counter()
    config = config or settings.recommend
    if not users:
        raise ValueError("recommend_all: no users")
    batches = (_ray_batches(settings, config, dataset, users, k, batch_size, workers,
                            worker_cpus) if engine == "ray"
               else _local_batches(settings, config, dataset, users, k, batch_size))
    writer = _ParquetOut(out)
    done: set[str] = set()
    fallbacks = 0
    try:
        for columns in batches:
            writer.write(columns)
            new = set(columns["user"]) - done
            done |= new
            fallbacks += len({u for u, f in zip(columns["user"], columns["fallback"]) if f})
            if on_batch is not None:
                on_batch(len(new))
    except BaseException:
        if writer.writer is not None:
            writer.writer.close()
        writer.tmp.unlink(missing_ok=True)
        raise
    writer.close()
    return BatchSummary(users=len(done), rows=writer.rows, rerank_fallbacks=fallbacks,
                        seconds=time.perf_counter() - started)
