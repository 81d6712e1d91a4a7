"""Run configs of the fine-tuning *data* builders: one TOML file per task plus CLI overrides.

``finetune/configs/rank-data.toml`` and ``profile-data.toml`` hold the common keys (seed,
dataset, output folder, how many users are held out for the eval-loss file) at the top
level and the task's own knobs in a ``[rank]`` or ``[profile]`` table::

    task = "rank"
    seed = 42
    eval_user_fraction = 0.1

    [rank]
    cuts = 8
    candidates = 20

Every model has ``extra="forbid"``, so a misspelt key is an error; :func:`load_data_config`
turns any problem into a :class:`ConfigError` naming the file and the dotted key, before any
data is read. The split is not configurable on purpose: examples always come from the
training part of the eval harness's leave-last-out split, so the evaluation's validation and
test events can never leak into training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from tastelens.config.base import ConfigSection, format_validation_error, read_toml
from tastelens.errors import ConfigError

Task = Literal["rank", "profile"]


class RankSection(ConfigSection):
    """How ranking examples are cut from each training history (serving candidates)."""

    cuts: int = Field(
        default=8, ge=1, description="Targets per user: the newest this many training events "
                                     "(after skip_newest), each with the events before it "
                                     "as history; the collaborative models are fitted on "
                                     "what comes before the cuts.")
    skip_newest: int = Field(
        default=3, ge=0, description="Newest training events of each user that are never a "
                                     "target nor fitted on: the learned ranker's cross-"
                                     "fitting targets (its config's `cuts`).")
    min_history: int = Field(default=5, ge=1,
                             description="Fewest history items before a target.")
    candidates: int = Field(default=20, ge=2, le=26,
                            description="Candidates per prompt: the retriever's first this "
                                        "many (the re-ranker's rerank.max_candidates).")
    absent: Literal["insert", "skip"] = Field(
        default="insert", description="When the retriever misses the target: 'insert' puts "
                                      "it in place of the last candidate, 'skip' drops the "
                                      "case.")
    max_history: int | None = Field(
        default=None, ge=1, description="Newest history items each prompt shows; unset: the "
                                        "serving re-ranker's (settings "
                                        "recommend.rerank.max_history), so the adapter is "
                                        "trained on the prompt it is served with.")
    max_prompt_tokens: int = Field(
        default=450, ge=64, description="A longer prompt (model tokenizer) shows fewer "
                                        "history items, oldest dropped first.")
    min_shown_history: int = Field(default=5, ge=1,
                                   description="History items kept however long the prompt.")


class ProfileSection(ConfigSection):
    """How profile examples split a training history into past (prompt) and future."""

    prompt: Literal["groups", "history"] = Field(
        default="groups",
        description="The serving prompt the examples teach: 'groups' (the model names the "
                    "mined groups: finetune/data_profile_groups.py) or 'history' (the model "
                    "states interests from the rated items: finetune/data_profile.py).")
    positions_per_user: int = Field(default=1, ge=1,
                                    description="Split points sampled per user (seeded).")
    min_past: int = Field(default=10, ge=2, description="Fewest past items (the prompt).")
    future_items: int = Field(
        default=10, ge=1, description="Future window: the next items after the split point, "
                                      "which the target's interests should cover.")
    min_future: int = Field(default=3, ge=1,
                            description="Fewest future items a split point needs.")
    max_interests: int = Field(default=5, ge=1, le=6, description="Interests per target.")
    min_evidence: int = Field(default=2, ge=1, le=3,
                              description="Liked past items an interest needs as evidence.")
    min_coverage: int = Field(default=1, ge=1,
                              description="Future items an interest must cover.")
    max_dislikes: int = Field(default=1, ge=0, le=2,
                              description="Dislike interests (from low-rated past items).")
    max_explore: int = Field(default=3, ge=0, le=3)
    explore_max_share: float = Field(
        default=0.05, ge=0, lt=1, description="A future category is an exploration idea when "
                                              "its share of the past is at most this.")
    max_prompt_tokens: int | None = Field(
        default=None, ge=64, description="Renderer budget; unset: the profiler's default.")
    max_items: int | None = Field(default=None, ge=1,
                                  description="Most history items shown; unset: default.")


class _DataConfig(ConfigSection):
    task: Task
    seed: int = Field(default=42, description="Seeds user hold-out, positions and negatives.")
    data: Path | None = Field(default=None, description="Dataset folder; CLI --data wins; "
                                                        "unset: settings `data`.")
    out: Path | None = Field(
        default=None, description="Output folder; CLI --out wins; unset: "
                                  "<cache_dir>/finetune/data/<task>-<dataset>.")
    eval_user_fraction: float = Field(
        default=0.1, ge=0, lt=1, description="Share of users whose examples go to eval.jsonl "
                                             "(held out by user, for the eval loss).")
    max_users: int | None = Field(default=None, ge=1,
                                  description="Use a seeded sample of this many users.")
    tokenizer: bool = Field(
        default=True, description="Count token lengths with the model's tokenizer when its "
                                  "checkpoint is prepared; else an estimate (named in the card).")


class RankDataConfig(_DataConfig):
    """Ranking-adapter examples: history + shuffled candidates -> label of the next item."""

    task: Literal["rank"] = "rank"
    rank: RankSection = Field(default_factory=RankSection)


class ProfileDataConfig(_DataConfig):
    """Profile-adapter examples: profiler prompt of the past -> ProfileReply covering the
    future (targets computed from data; see tastelens.finetune.data_profile)."""

    task: Literal["profile"] = "profile"
    profile: ProfileSection = Field(default_factory=ProfileSection)


DataConfig = RankDataConfig | ProfileDataConfig
_MODELS: dict[str, type[_DataConfig]] = {"rank": RankDataConfig, "profile": ProfileDataConfig}


def validate_data_config(raw: dict[str, Any], task: Task,
                         source: Path | str | None = None) -> DataConfig:
    """Validate a raw mapping as ``task``'s config; problems become one ConfigError."""
    found = raw.get("task", task)
    if found != task:
        raise ConfigError(f"{source or '<data config>'}: key 'task': this file is for "
                          f"{found!r}, but the command builds {task!r} data")
    try:
        return _MODELS[task].model_validate({**raw, "task": task})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, f"{task} data config", source)) from None


def load_data_config(path: Path, task: Task) -> DataConfig:
    """Read and validate a data config TOML for ``task``."""
    path = Path(path)
    raw = read_toml(path, "data config")
    return validate_data_config(raw, task, path)
