"""The evaluation run config: one TOML file under ``eval/configs/`` plus CLI overrides.

Every section is a small pydantic model with ``extra="forbid"``, so a misspelt key is an
error, and :func:`load_eval_config` turns any problem into a :class:`ConfigError` that names
the TOML file and the dotted field (``systems.2.type``). The resolved config round-trips
through JSON and is written into ``run.json`` beside the results.

Example (see ``eval/configs/ml-latest-small.toml``)::

    evaluate_on = "test"
    seeds = [42]

    [split]
    kind = "leave-last-out"

    [protocol]
    kind = "full"

    [bootstrap]
    reference = "popularity"

    [[systems]]
    name = "ease-250"
    type = "ease"
    params = { lambda = 250 }
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, model_validator

from tastelens.config.base import ConfigSection, format_validation_error, read_toml
from tastelens.errors import ConfigError


class DatasetSection(ConfigSection):
    """Which dataset to evaluate on."""

    path: Path | None = Field(
        default=None,
        description="Dataset folder. CLI --data wins; unset: settings `data`, else the cached "
                    "ml-latest-small download. Relative paths are relative to the working dir.")
    side_info: Path | None = Field(
        default=None,
        description="Side-information file joined onto the items (tastelens/data/side_info.py)."
                    " CLI --side-info wins; unset: settings `side_info`, else none.")


class SplitSection(ConfigSection):
    """How interactions are split into train / validation / test."""

    kind: Literal["leave-last-out", "temporal"] = Field(
        default="leave-last-out",
        description="'leave-last-out': each user's last event is the test target, the one "
                    "before it the validation target; 'temporal': a global time cut.")
    test_fraction: float = Field(default=0.1, gt=0, lt=1,
                                 description="temporal only: share of events after the cut.")
    validation_fraction: float = Field(
        default=0.1, ge=0, lt=1,
        description="temporal only: share of events between the validation and the test cut.")

    @model_validator(mode="after")
    def _check_fractions(self) -> SplitSection:
        if self.test_fraction + self.validation_fraction >= 1:
            raise ValueError("test_fraction + validation_fraction must be below 1")
        return self


class ProtocolSection(ConfigSection):
    """What each system ranks for each case."""

    kind: Literal["full", "candidates"] = Field(
        default="full",
        description="'full': rank the whole catalog with the user's seen items masked; "
                    "'candidates': rank the target among `n_negatives` sampled items.")
    n_negatives: int = Field(
        default=19, ge=1,
        description="candidates only: negatives per case, drawn uniformly from items the user "
                    "never interacted with; identical for every system and seed.")
    seed: int = Field(default=0, description="candidates only: seed of the negative sampling.")


class MetricsSection(ConfigSection):
    """Cut-offs of the @K metrics."""

    k: list[int] = Field(default_factory=lambda: [10, 20], min_length=1,
                         description="Cut-offs, e.g. [10, 20]; the first one is plotted.")

    @model_validator(mode="after")
    def _check_k(self) -> MetricsSection:
        if any(k < 1 for k in self.k) or len(set(self.k)) != len(self.k):
            raise ValueError("k must hold distinct positive integers")
        return self


class UsersSection(ConfigSection):
    """Which users are evaluated."""

    n: int | None = Field(default=None, ge=1,
                          description="Evaluate a random sample of n users; unset: all users.")
    seed: int = Field(default=0, description="Seed of the user sample.")


class BootstrapSection(ConfigSection):
    """Paired bootstrap confidence intervals of each system's difference to a reference."""

    reference: str | None = Field(
        default=None, description="Name (column label) of the reference system; unset: no CIs.")
    n_resamples: int = Field(default=1000, ge=10)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    seed: int = Field(default=0, description="Seed of the resampling (shared by all systems).")
    pairs: list[tuple[str, str]] = Field(
        default_factory=list, description="More (system, other) differences to report with "
                                          "their intervals, e.g. [[\"learned-llm\", "
                                          "\"learned\"]].")


class SystemSpec(ConfigSection):
    """One evaluated system: a column label, a registry type and that type's params."""

    name: str = Field(min_length=1, description="Column label, unique within the run.")
    type: str = Field(min_length=1, description="Registry name, e.g. 'ease' or 'sasrec'.")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="The system's own config (validated by it).")
    history_limit: int | None = Field(
        default=None, ge=1, description="Score from only the newest N events of each "
                                        "evaluation history (a cold-start row; items seen "
                                        "earlier stay masked); None = the whole history.")


class EvalConfig(ConfigSection):
    """A complete evaluation run."""

    dataset: DatasetSection = Field(default_factory=DatasetSection)
    split: SplitSection = Field(default_factory=SplitSection)
    protocol: ProtocolSection = Field(default_factory=ProtocolSection)
    metrics: MetricsSection = Field(default_factory=MetricsSection)
    users: UsersSection = Field(default_factory=UsersSection)
    bootstrap: BootstrapSection = Field(default_factory=BootstrapSection)
    systems: list[SystemSpec] = Field(min_length=1)
    evaluate_on: Literal["test", "validation"] = Field(
        default="test", description="Which cases are scored; systems always fit on `train`.")
    seeds: list[int] = Field(
        default_factory=lambda: [42], min_length=1,
        description="Each system is fitted and scored once per seed; metrics are averaged.")
    batch_size: int = Field(default=256, ge=1, description="Histories per score() call.")
    publish_behaviour: bool = Field(
        default=False,
        description="Write item_embeddings() of fitted systems (SASRec) into the vector store.")

    _source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_names(self) -> EvalConfig:
        names = [s.name for s in self.systems]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"systems: names must be unique; repeated: {', '.join(dupes)}")
        ref = self.bootstrap.reference
        if ref is not None and ref not in names:
            raise ValueError(f"bootstrap.reference: {ref!r} is not one of the systems' names "
                             f"({', '.join(names)})")
        for pair in self.bootstrap.pairs:
            unknown = [n for n in pair if n not in names]
            if unknown:
                raise ValueError(f"bootstrap.pairs: {unknown[0]!r} is not one of the systems' "
                                 f"names ({', '.join(names)})")
        return self

    @property
    def source(self) -> Path | None:
        """The TOML file this config came from (for error messages), if any."""
        return self._source

    def where(self, key: str) -> str:
        """'<file>: key <key>' for error messages."""
        return f"{self.source or '<eval config>'}: key {key!r}"

    def with_overrides(self, *, data: Path | None = None, users: int | None = None,
                       systems: list[str] | None = None,
                       side_info: Path | None = None,
                       evaluate_on: str | None = None) -> EvalConfig:
        """The config with CLI overrides applied (validated again)."""
        raw = self.model_dump()
        if evaluate_on is not None:
            raw["evaluate_on"] = evaluate_on
        if data is not None:
            raw["dataset"]["path"] = data
        if side_info is not None:
            raw["dataset"]["side_info"] = side_info
        if users is not None:
            raw["users"]["n"] = users
        if systems:
            known = [s["name"] for s in raw["systems"]]
            unknown = [n for n in systems if n not in known]
            if unknown:
                raise ConfigError(f"--system {', '.join(unknown)}: not in "
                                  f"{self.source or 'the config'} (systems: {', '.join(known)})")
            raw["systems"] = [s for s in raw["systems"] if s["name"] in systems]
            # A reference that was filtered out means no CIs, not an error.
            if raw["bootstrap"]["reference"] not in systems:
                raw["bootstrap"]["reference"] = None
            raw["bootstrap"]["pairs"] = [p for p in raw["bootstrap"]["pairs"]
                                         if all(n in systems for n in p)]
        return _validate(raw, self.source)


def _validate(raw: dict[str, Any], source: Path | None) -> EvalConfig:
    try:
        config = EvalConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "eval config", source)) from None
    config._source = source
    return config


def load_eval_config(path: Path) -> EvalConfig:
    """Read and validate an eval config TOML; every problem becomes a ConfigError."""
    path = Path(path)
    raw = read_toml(path, "eval config")
    return _validate(raw, path)
