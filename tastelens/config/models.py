"""Configs of the collaborative models (the sequence model and the item-item model) that the
retriever and the learned re-ranker read, and the evaluation's baselines wrap. Core models,
so the ``[recommend]`` settings table validates them without importing the vector store.

    [recommend.collaborative]          CollaborativeConfig
    [recommend.collaborative.sasrec]     SASRecConfig   (vectorstore/collaborative/sasrec.py)
    [recommend.collaborative.ease]       EASEConfig     (vectorstore/collaborative/ease.py)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tastelens.config.base import ConfigSection


class SASRecConfig(ConfigSection):
    """How the sequence model is shaped and trained. Defaults were chosen on the validation
    split of ml-latest-small (bench/results/eval-pipeline.md)."""

    hidden: int = Field(default=64, ge=8, description="Embedding and hidden size.")
    layers: int = Field(default=2, ge=1, description="Self-attention blocks.")
    heads: int = Field(default=1, ge=1, description="Attention heads (must divide hidden).")
    ff_mult: int = Field(default=4, ge=1, description="Feed-forward width as a multiple of hidden.")
    dropout: float = Field(
        default=0.3, ge=0.0, lt=1.0,
        description="Dropout on embeddings, residual branches and the feed-forward layer.")
    attention_dropout: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Dropout on attention weights.")
    max_len: int = Field(default=200, ge=2, description="Newest events the model reads.")
    all_windows: bool = Field(
        default=False, description="Train on every max_len window of a long history, not "
                                   "only the newest one.")
    batch_size: int = Field(default=64, ge=1, description="Training windows per step.")
    negatives: int | None = Field(
        default=None, ge=1,
        description="None: softmax over the full catalog. A number: sampled softmax over the "
                    "target and that many uniformly drawn items per batch, for catalogs too "
                    "big for the full softmax.")
    lr: float = Field(default=3e-3, gt=0.0, description="AdamW learning rate.")
    weight_decay: float = Field(default=0.0, ge=0.0, description="AdamW weight decay.")
    max_epochs: int = Field(default=40, ge=1, description="Upper bound on training epochs.")
    patience: int = Field(
        default=5, ge=1, description="Stop after this many epochs without a better "
                                     "validation NDCG@10; the best epoch's weights are kept.")
    threads: int | None = Field(
        default=None, ge=1, description="torch CPU threads; None uses every core this process "
                                        "may run on.")
    device: str = Field(default="cpu", description="torch device, e.g. 'cpu' or 'cuda'.")
    score_batch_size: int = Field(default=256, ge=1, description="Histories per scoring pass.")
    progress: bool = Field(default=True, description="Show a rich progress bar while training.")

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> SASRecConfig:
        if self.hidden % self.heads:
            raise ValueError(f"heads={self.heads} must divide hidden={self.hidden}")
        return self


class EASEConfig(ConfigSection):
    """The EASE model's regularisation and size."""

    l2: float = Field(default=250.0, gt=0.0,
                      description="λ, the L2 penalty added to the Gram matrix's diagonal.")
    min_item_count: int = Field(
        default=1, ge=1,
        description="Items with fewer training interactions are left out of the model "
                    "(they rank last); raising it shrinks the n² inverse.")
    dtype: Literal["float32", "float64"] = Field(
        default="float64", description="Precision of the inverse; float32 halves memory "
                                       "and time.")


class CollaborativeConfig(ConfigSection):
    """Which collaborative models serve, and how they are fitted."""

    enabled: bool = Field(
        default=True, description="Retrieve with the sequence model (and EASE) trained by "
                                  "`tastelens index behaviour`; false = text queries only.")
    sasrec: SASRecConfig = Field(default_factory=SASRecConfig)
    ease: EASEConfig | None = Field(
        default_factory=EASEConfig, description="The item-item model; null = none.")
    seed: int = Field(default=42, description="The sequence model's training seed.")
