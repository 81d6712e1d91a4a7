"""SASRec, self-attentive sequential recommendation (Kang & McAuley, ICDM 2018), as a
serving component: it turns a history into a user state whose inner product with an item's
output vector is the item's score.

Trained with softmax cross-entropy over the full catalog at every position ("SASRec+CE",
Klenitskiy & Vasilev, RecSys 2023) instead of the paper's binary loss with one sampled
negative: simpler (no sampler), far fewer epochs, better rankings, and affordable on CPU for
catalogs of ~10k items (``negatives`` switches to a sampled softmax for larger ones).

Each sequence's newest event is held out as the internal validation target whose NDCG@10
(full catalog, seen items masked) drives early stopping. Checkpoints go to
``<work_dir>/sasrec/<key>/`` where the key hashes the training-relevant config, the seed and
the data, so a killed run resumes where it stopped and a finished one loads without training.

The item vectors (:meth:`SASRec.item_vectors`) go into Chroma's behaviour collection; at
request time :meth:`SASRec.user_states` encodes a history and Chroma answers the inner-product
query with the model's own top items.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from tastelens.config.models import SASRecConfig
from tastelens.fsutil import atomic_write, atomic_write_json
from tastelens.progress import LoggedProgress
from tastelens.vectorstore.collaborative.sasrec_network import SASRecNet, left_pad, training_windows

# Fields that change neither the trained weights' meaning nor the data: a checkpoint made
# under other values of these is resumed (max_epochs may grow between calls).
_NOT_IN_KEY = {"max_epochs", "progress", "threads", "device", "score_batch_size"}
CHECKPOINT_VERSION = 2
DONE_FILE = "done.json"


def sequences_fingerprint(sequences: Sequence[np.ndarray], item_ids: Sequence[str]) -> str:
    """sha256 of the catalog and the sequences (catalog indices, oldest first)."""
    digest = hashlib.sha256()
    digest.update("\n".join(item_ids).encode("utf-8"))
    for seq in sequences:
        digest.update(np.asarray(len(seq), np.int64).tobytes())
        digest.update(np.ascontiguousarray(seq, dtype=np.int64).tobytes())
    return digest.hexdigest()


class SASRec:
    """A trained (or loading) SASRec over a catalog of ``n_items``: call :meth:`fit` once,
    then score. Sequences and histories are arrays of catalog indices, oldest first.

    After :meth:`fit`, ``history`` holds one record per epoch ever trained for this
    checkpoint, ``resumed_from_epoch`` the epoch the call started after, ``epochs_run`` how
    many it trained, ``best_epoch`` the one kept and ``checkpoint_dir`` where it lives.
    """

    def __init__(self, config: SASRecConfig, n_items: int, *, work_dir: Path,
                 seed: int) -> None:
        self.config = config
        self.n_items = n_items
        self.work_dir = work_dir
        self.seed = seed
        self.model: SASRecNet | None = None
        self.history: list[dict[str, float]] = []
        self.resumed_from_epoch = 0
        self.epochs_run = 0
        self.best_epoch = 0
        self.checkpoint_dir: Path | None = None

    # -- training ---------------------------------------------------------------------
    def fit(self, sequences: Sequence[np.ndarray], item_ids: Sequence[str]) -> SASRec:
        """Train (or resume, or load) on ``sequences``; ``item_ids`` (catalog order) only
        enters the checkpoint key, so another catalog never loads these weights."""
        cfg = self.config
        if len(item_ids) != self.n_items:
            raise ValueError(f"{len(item_ids)} item ids for a catalog of {self.n_items}")
        key, meta = self.checkpoint_key(sequences, item_ids)
        self.checkpoint_dir = self.work_dir / "sasrec" / key
        model_ids = [np.asarray(s, np.int64) + 1 for s in sequences if len(s)]
        # The newest event of each sequence is held out for early stopping.
        val = [(s[:-1], int(s[-1])) for s in model_ids if len(s) >= 2]
        windows = training_windows([s[:-1] for s in model_ids], cfg.max_len, cfg.all_windows)
        with torch_threads(cfg.threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.model = self._new_model().to(cfg.device)
            optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr,
                                          weight_decay=cfg.weight_decay)
            state = self._load(optimizer)
            self.history = state["log"]
            self.resumed_from_epoch = state["epoch"]
            self.epochs_run = 0
            if not state["finished"] and state["epoch"] < cfg.max_epochs:
                atomic_write_json(self.checkpoint_dir / "meta.json", meta)
                self._train_loop(state, optimizer, windows, val)
                atomic_write_json(self.checkpoint_dir / DONE_FILE,
                                  {"best_epoch": state["best_epoch"], "epochs": state["epoch"],
                                   "val_ndcg10": state["best_metric"]})
            self.best_epoch = state["best_epoch"]
            if state["best_state"] is not None:
                self.model.load_state_dict(state["best_state"])
            self.model.eval()
        return self

    def _train_loop(self, state: dict[str, Any], optimizer: torch.optim.Optimizer,
                    windows: list[np.ndarray], val: list[tuple[np.ndarray, int]]) -> None:
        cfg = self.config
        n_targets = sum(len(w) - 1 for w in windows)
        with EpochProgress(cfg.max_epochs, state["epoch"], enabled=cfg.progress) as bar:
            for epoch in range(state["epoch"] + 1, cfg.max_epochs + 1):
                started = time.perf_counter()
                loss = self._train_epoch(windows, optimizer, epoch)
                ndcg = self._validate(val)
                seconds = time.perf_counter() - started
                record = {"epoch": epoch, "loss": loss, "val_ndcg10": ndcg,
                          "seconds": seconds, "items_per_s": n_targets / seconds}
                state["log"].append(record)
                self.epochs_run += 1
                if ndcg > state["best_metric"]:
                    state.update(best_metric=ndcg, best_epoch=epoch, bad_epochs=0,
                                 best_state=_copy_state(self._net))
                else:
                    state["bad_epochs"] += 1
                state["epoch"] = epoch
                state["finished"] = state["bad_epochs"] >= cfg.patience
                self._save(state, optimizer)  # every epoch: a killed run loses at most one
                bar.update(record, state["best_metric"])
                if state["finished"]:
                    break

    def _train_epoch(self, windows: list[np.ndarray], optimizer: torch.optim.Optimizer,
                     epoch: int) -> float:
        cfg = self.config
        net = self._net
        net.train()
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(windows))
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        total, count = 0.0, 0
        for start in range(0, len(order), cfg.batch_size):
            batch = [windows[i] for i in order[start:start + cfg.batch_size]]
            seq = left_pad([w[:-1] for w in batch], cfg.max_len).to(cfg.device)
            target = left_pad([w[1:] for w in batch], cfg.max_len).to(cfg.device)
            real = target != 0
            # Logits only where there is a target: padding would be most of the work.
            loss = self._loss(net(seq)[real], target[real], generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            n = int(real.sum())
            total += float(loss.detach()) * n
            count += n
        return total / max(count, 1)

    def _loss(self, hidden: torch.Tensor, target: torch.Tensor,
              generator: torch.Generator) -> torch.Tensor:
        """Softmax cross-entropy of the next item: over the whole catalog, or over the target
        plus ``negatives`` uniformly sampled items shared by the batch (sampled softmax)."""
        weights = self._net.item_weights()
        if self.config.negatives is None:
            return F.cross_entropy(hidden @ weights.T, target - 1)
        negatives = torch.randint(0, weights.shape[0], (self.config.negatives,),
                                  generator=generator).to(hidden.device)
        positive = (hidden * weights[target - 1]).sum(-1, keepdim=True)
        negative = hidden @ weights[negatives].T
        # A sampled "negative" that is the target itself must not count against it.
        negative = negative.masked_fill(negatives[None] == (target - 1)[:, None], float("-inf"))
        logits = torch.cat([positive, negative], dim=1)
        return F.cross_entropy(logits, torch.zeros_like(target))

    def _validate(self, cases: list[tuple[np.ndarray, int]]) -> float:
        """Mean NDCG@10 of the held-out newest event, seen items masked."""
        if not cases:
            return 0.0
        gains = []
        for start in range(0, len(cases), self.config.score_batch_size):
            chunk = cases[start:start + self.config.score_batch_size]
            scores = self._scores_model_ids([c[0] for c in chunk])
            for row, (seen, target) in enumerate(chunk):
                target_score = scores[row, target - 1]
                scores[row, seen[seen > 0] - 1] = -np.inf
                rank = int((scores[row] > target_score).sum())
                gains.append(1.0 / np.log2(rank + 2) if rank < 10 else 0.0)
        return float(np.mean(gains))

    # -- scoring ----------------------------------------------------------------------
    @property
    def _net(self) -> SASRecNet:
        if self.model is None:
            raise RuntimeError("SASRec is not fitted: call fit() first")
        return self.model

    def user_states(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """(len(histories), hidden) float32: the state after each history's newest event.
        An item's score is ``state · item_vectors()[item]``."""
        with torch_threads(self.config.threads):
            states = self._states([np.asarray(h, np.int64) + 1 for h in histories])
        return states.cpu().numpy().astype(np.float32)

    def scores(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """(len(histories), n_items) float32 scores of every catalog item."""
        with torch_threads(self.config.threads):
            return self._scores_model_ids([np.asarray(h, np.int64) + 1 for h in histories])

    def item_vectors(self) -> np.ndarray:
        """(n_items, hidden) float32 output embeddings in catalog order. Scores are inner
        products with these: index them in an inner-product space."""
        return self._net.item_weights().detach().cpu().numpy().astype(np.float32)

    def _scores_model_ids(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        states = self._states(sequences)
        weights = self._net.item_weights().detach()
        out = np.empty((len(sequences), weights.shape[0]), dtype=np.float32)
        step = self.config.score_batch_size
        with torch.no_grad():
            for start in range(0, len(sequences), step):
                out[start:start + step] = (states[start:start + step] @ weights.T).cpu().numpy()
        return out

    def _states(self, sequences: Sequence[np.ndarray]) -> torch.Tensor:
        net = self._net
        net.eval()
        parts = []
        step = self.config.score_batch_size
        with torch.no_grad():
            for start in range(0, len(sequences), step):
                seq = left_pad(sequences[start:start + step], self.config.max_len)
                parts.append(net.last_state(seq.to(self.config.device)))
        if not parts:
            return torch.zeros(0, self.config.hidden, device=self.config.device)
        return torch.cat(parts)

    # -- checkpoints ------------------------------------------------------------------
    def _new_model(self) -> SASRecNet:
        cfg = self.config
        return SASRecNet(self.n_items, cfg.hidden, cfg.layers, cfg.heads, cfg.dropout,
                         cfg.max_len, cfg.ff_mult, cfg.attention_dropout)

    def is_trained(self, sequences: Sequence[np.ndarray], item_ids: Sequence[str]) -> bool:
        """Whether :meth:`fit` on these sequences would load a finished model without
        training."""
        key, _ = self.checkpoint_key(sequences, item_ids)
        return (self.work_dir / "sasrec" / key / DONE_FILE).is_file()

    def checkpoint_key(self, sequences: Sequence[np.ndarray], item_ids: Sequence[str],
                       ) -> tuple[str, dict[str, Any]]:
        """(folder name, metadata) of the checkpoint for this config, seed and data."""
        training = self.config.model_dump(exclude=_NOT_IN_KEY)
        meta = {"version": CHECKPOINT_VERSION, "config": training, "seed": self.seed,
                "data_fingerprint": sequences_fingerprint(sequences, item_ids),
                "n_train_events": int(sum(len(s) for s in sequences))}
        key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode("utf-8")).hexdigest()[:16]
        return key, meta

    def _load(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        fresh = {"epoch": 0, "finished": False, "best_metric": -1.0, "best_epoch": 0,
                 "bad_epochs": 0, "best_state": None, "log": []}
        assert self.checkpoint_dir is not None
        path = self.checkpoint_dir / "checkpoint.pt"
        if not path.is_file():
            return fresh
        saved = torch.load(path, map_location=self.config.device, weights_only=True)
        self._net.load_state_dict(saved.pop("model"))
        optimizer.load_state_dict(saved.pop("optimizer"))
        torch.set_rng_state(saved.pop("rng"))
        return {**fresh, **saved}

    def _save(self, state: dict[str, Any], optimizer: torch.optim.Optimizer) -> None:
        assert self.checkpoint_dir is not None
        payload = {**state, "model": self._net.state_dict(),
                   "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()}
        atomic_write(self.checkpoint_dir / "checkpoint.pt", lambda tmp: torch.save(payload, tmp))


def _copy_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (None: every core this process may
    use), restoring the previous number afterwards."""
    previous = torch.get_num_threads()
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
            (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class EpochProgress:
    """A rich progress bar over epochs showing loss, validation NDCG@10 and items/s (plain
    lines when the output is not a terminal); does nothing when disabled (tests, quiet
    runs)."""

    def __init__(self, total: int, done: int, *, enabled: bool) -> None:
        self.progress = LoggedProgress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), disable=not enabled)
        self.task = self.progress.add_task("sasrec epochs", total=total, completed=done,
                                           info="resumed" if done else "")

    def __enter__(self) -> EpochProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, record: dict[str, float], best: float) -> None:
        info = (f"loss {record['loss']:.3f}  val NDCG@10 {record['val_ndcg10']:.4f} "
                f"(best {best:.4f})  {record['items_per_s']:,.0f} items/s")
        self.progress.update(self.task, completed=record["epoch"], info=info)
