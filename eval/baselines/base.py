"""The one interface every evaluated system implements, and the registry that names them.

A system is fitted on a split's training interactions and then scores users' histories
against the whole catalog (``score``) or against given candidates (``score_candidates``).
Higher scores rank first. Masking of already-seen items is the harness's job, not the
system's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd
from pydantic import ValidationError

from tastelens.config.base import ConfigSection, format_validation_error
from tastelens.data.dataset import Dataset, History
from tastelens.data.splits import EvalCase
from tastelens.errors import ConfigError, UnknownComponentError


class SystemConfig(ConfigSection):
    """Base for each system's own config; unknown keys are errors."""


@dataclass
class SystemContext:
    """What a system may need besides its config: the catalog, where to cache, a seed,
    and lazily built shared resources (the Chroma item index, the text encoder)."""

    dataset: Dataset
    work_dir: Path
    seed: int = 42
    resources: dict[str, Any] | None = None
    """Shared objects by name, e.g. 'item_index' (vectorstore ItemIndex), 'encoder'."""
    labelled: Sequence[EvalCase] = ()
    """Held-out cases before the evaluated ones that a system may learn from: the validation
    cases when a run evaluates on the test split (their events are in every test history),
    none when it evaluates on validation."""

    def resource(self, name: str) -> Any:
        if not self.resources or name not in self.resources:
            raise UnknownComponentError(
                f"this system needs the shared resource {name!r}, "
                "which the harness did not provide")
        return self.resources[name]


class Recommender(ABC):
    """A fitted-then-queried recommender. Subclasses set ``name`` and ``Config``."""

    name: ClassVar[str]
    Config: ClassVar[type[SystemConfig]] = SystemConfig
    needs: ClassVar[tuple[str, ...]] = ()
    """Names of shared resources (see SystemContext.resources) the system uses."""

    def __init__(self, config: SystemConfig | dict[str, Any] | None, context: SystemContext):
        if not isinstance(config, SystemConfig):
            try:
                config = self.Config.model_validate(config or {})
            except ValidationError as exc:
                raise ConfigError(format_validation_error(
                    exc, f"config of system {self.name!r}")) from None
        self.config = config
        self.context = context

    @abstractmethod
    def fit(self, train: pd.DataFrame) -> None:
        """Learn from the training interactions (columns user, item, rating, timestamp)."""

    @abstractmethod
    def score(self, histories: Sequence[History]) -> np.ndarray:
        """Scores for every catalog item: float32 array of shape (len(histories), n_items)."""

    def candidates(self) -> list[np.ndarray] | None:
        """The candidate lists (catalog indices, in the order handed to the ranking stage)
        of the histories of the last :meth:`score` call; None for a system without a
        candidate stage. The harness reports candidate recall@N from them."""
        return None

    def card(self) -> dict[str, Any] | None:
        """What the report should show about the fitted system beyond its metrics (e.g. a
        learned ranker's features and importances); None for nothing."""
        return None

    def score_candidates(self, histories: Sequence[History], candidates: np.ndarray) -> np.ndarray:
        """Scores for given candidates (catalog indices, shape (n, c)); default: gather."""
        full = self.score(histories)
        return np.take_along_axis(full, candidates, axis=1)


R = TypeVar("R", bound=type[Recommender])
_REGISTRY: dict[str, type[Recommender]] = {}


def register(cls: R) -> R:
    """Class decorator: register a system under ``cls.name``; duplicates are rejected."""
    name = cls.name
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"a system named {name!r} is already registered ({_REGISTRY[name]!r})")
    _REGISTRY[name] = cls
    return cls


def registered() -> dict[str, type[Recommender]]:
    """All registered systems by name. The built-ins are among them: this module is part of
    the ``tastelens.eval.baselines`` package, whose ``__init__`` imports every built-in
    system module (and so registers it) before any of its modules can be used."""
    return dict(_REGISTRY)


def build(kind: str, config: dict[str, Any] | None, context: SystemContext) -> Recommender:
    systems = registered()
    if kind not in systems:
        raise UnknownComponentError(
            f"unknown system type {kind!r}; known: {', '.join(sorted(systems))}")
    return systems[kind](config, context)
