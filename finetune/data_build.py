"""Build one fine-tuning data set: examples -> ``train.jsonl``, ``eval.jsonl``, ``card.json``.

:func:`build_data` loads the dataset, keeps the training part of the eval harness's split
(:mod:`tastelens.finetune.data_source`), holds out a seeded share of USERS for the eval-loss
file, runs the task's example builder over every selected user, checks that no held-out
(validation/test) pair of a user reached that user's examples, counts token lengths and
writes the folder atomically (:func:`tastelens.fsutil.staged_dir`): a failed or interrupted
run leaves the previous folder, or nothing, behind.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tastelens.config.settings import Settings
from tastelens.data.dataset import Dataset
from tastelens.errors import ConfigError, TastelensError
from tastelens.finetune.data_config import DataConfig, ProfileDataConfig, RankDataConfig
from tastelens.finetune.data_source import TrainingData, assign_users, training_data
from tastelens.finetune.dataset_card import (
    DataCard,
    source_fingerprint,
    token_counter_for,
    token_stats,
)
from tastelens.finetune.jsonl import CARD_FILE, EVAL_FILE, TRAIN_FILE, Example, write_jsonl
from tastelens.fsutil import atomic_write_json, staged_dir
from tastelens.prompts.tokens import TokenCounter
from tastelens.runinfo import run_record
from tastelens.vectorstore.item_index import ItemIndex

Progress = Callable[[int, int], None]  # (users done, users total)


class LeakageError(TastelensError):
    """An example holds a validation or test item of its user (a builder bug)."""


@dataclass(frozen=True)
class BuildResult:
    out_dir: Path
    card: DataCard


def default_out_dir(settings: Settings, task: str, dataset_name: str) -> Path:
    return settings.cache_dir / "finetune" / "data" / f"{task}-{dataset_name}"


def example_items(example: Example) -> set[str]:
    """Every item id an example's prompt or target is built from (from its meta)."""
    meta = example.meta
    if example.task == "rank":
        return set(meta["candidates"]) | set(meta["history_shown"])
    return set(meta["shown"]) | set(meta["future"])


def check_no_leakage(examples: list[Example], data: TrainingData) -> None:
    for example in examples:
        bad = example_items(example) & data.held_out.get(example.meta["user"], frozenset())
        if bad:
            raise LeakageError(f"example {example.id} holds held-out item(s) "
                               f"{sorted(bad)[:5]} of user {example.meta['user']!r}")


def open_item_index(settings: Settings, dataset: Dataset) -> ItemIndex:
    """The dataset's text index (default encoder); it must exist and hold the catalog."""
    from tastelens.vectorstore.encoders import encoder_from_settings

    index = ItemIndex.for_dataset(settings, dataset.name, encoder_from_settings(settings))
    if not index.exists() or index.count() == 0:
        raise ConfigError(f"ranking examples need the item index {index.name!r} in "
                          f"{settings.chroma_path}: run `tastelens index build` first")
    return index


def build_data(config: DataConfig, settings: Settings, *, dataset: Dataset | None = None,
               out: Path | None = None, item_index: ItemIndex | None = None,
               progress: Progress | None = None) -> BuildResult:
    """Build ``config.task``'s data set and write it to ``out`` (see the module doc)."""
    from tastelens.data.loader import load_dataset, resolve_data_path

    started = time.perf_counter()
    if isinstance(config, RankDataConfig) and config.rank.max_history is None:
        rank = config.rank.model_copy(
            update={"max_history": settings.recommend.rerank.max_history})
        config = config.model_copy(update={"rank": rank})
    if dataset is None:
        dataset = load_dataset(resolve_data_path(settings, config.data),
                               side_info=settings.side_info)
    out_dir = Path(out or config.out or default_out_dir(settings, config.task, dataset.name))
    data = training_data(dataset)
    train_users, eval_users = assign_users(data.users, eval_fraction=config.eval_user_fraction,
                                           max_users=config.max_users, seed=config.seed)
    counter = token_counter_for(settings, use_tokenizer=config.tokenizer)
    builder, extra = _builder(config, settings, data, item_index, counter)
    examples: dict[str, list[Example]] = {"train": [], "eval": []}
    users = [(u, "train") for u in train_users] + [(u, "eval") for u in eval_users]
    for done, (user, part) in enumerate(users, start=1):
        examples[part].extend(builder.examples_for(user))
        if progress:
            progress(done, len(users))
    all_examples = examples["train"] + examples["eval"]
    if not examples["train"]:
        raise ConfigError(f"no {config.task} training examples from {dataset.name!r}: every "
                          f"user was dropped ({dict(builder.dropped)}); lower the history "
                          "minimums in the config")
    check_no_leakage(all_examples, data)
    with_examples = Counter(e.meta["user"] for e in all_examples)
    card = DataCard(
        task=config.task, seed=config.seed,
        counts={"train_examples": len(examples["train"]),
                "eval_examples": len(examples["eval"]),
                "train_users": sum(with_examples[u] > 0 for u in train_users),
                "eval_users": sum(with_examples[u] > 0 for u in eval_users),
                "users_selected": len(users), **extra.pop("counts", {})},
        dropped=dict(builder.dropped),
        tokens={part: token_stats(rows, counter) for part, rows in examples.items()},
        split={**data.split_summary(), "example_users": "eval.jsonl holds whole users "
               "held out from train.jsonl", "leakage_check": "passed: no example holds a "
               "validation or test item of its user"},
        target_source=extra.pop("target_source"), source=source_fingerprint(dataset),
        config=config.model_dump(mode="json"),
        files={"train": TRAIN_FILE, "eval": EVAL_FILE}, seconds=0.0,
        extra=extra | _builder_extra(config, builder))
    with staged_dir(out_dir) as tmp:
        write_jsonl(tmp / TRAIN_FILE, examples["train"])
        write_jsonl(tmp / EVAL_FILE, examples["eval"])
        card.seconds = round(time.perf_counter() - started, 2)
        atomic_write_json(tmp / CARD_FILE, run_record(
            config.model_dump(mode="json"), **card.model_dump(mode="json", exclude={"config"})))
    return BuildResult(out_dir=out_dir, card=card)


def _builder(config: DataConfig, settings: Settings, data: TrainingData,
             item_index: ItemIndex | None,
             counter: TokenCounter):  # noqa: ANN202 - one of two builder classes
    if isinstance(config, RankDataConfig):
        from tastelens.agent.rank.prompt import rank_prompt_version
        from tastelens.finetune.data_rank import RankExampleBuilder
        from tastelens.finetune.ranker import TrainingSetup

        if not settings.recommend.collaborative.enabled:
            raise ConfigError("ranking examples take their candidates from the serving "
                              "retriever with the collaborative models: set "
                              "recommend.collaborative.enabled = true")
        if item_index is None:
            item_index = open_item_index(settings, data.dataset)
        setup = TrainingSetup(dataset=data.dataset, settings=settings,
                              pipeline=settings.recommend, item_index=item_index)
        builder = RankExampleBuilder(config.rank, data, setup, seed=config.seed,
                                     count_tokens=counter.count_messages)
        return (builder,
                {"counts": {"candidates_per_example": config.rank.candidates},
                 "target_source": "data: the letter of the user's next training item among "
                                  "the serving retriever's candidates",
                 "prompt_version": rank_prompt_version(),
                 "prompt_token_counter": counter.name,
                 "item_index": item_index.name, "cross_model": builder.models.tag})
    assert isinstance(config, ProfileDataConfig)
    from tastelens.agent.profile.profiler import renderer_for_settings
    from tastelens.finetune.data_profile import (
        TARGET_SOURCE,
        ProfileExampleBuilder,
        renderer_config,
    )

    renderer = renderer_for_settings(settings, renderer_config(config.profile))
    if config.profile.prompt == "groups":
        from tastelens.finetune import data_profile_groups as grouped

        return (grouped.GroupExampleBuilder(config.profile, data, renderer, seed=config.seed),
                {"target_source": grouped.TARGET_SOURCE, "prompt": "groups",
                 "prompt_version": renderer.prompt_version,
                 "renderer": renderer.config.model_dump(mode="json"),
                 "prompt_token_counter": renderer.counter.name})
    return (ProfileExampleBuilder(config.profile, data, renderer, seed=config.seed),
            {"target_source": TARGET_SOURCE, "prompt_version": renderer.prompt_version,
             "renderer": renderer.config.model_dump(mode="json"),
             "prompt_token_counter": renderer.counter.name})


def _builder_extra(config: DataConfig, builder) -> dict:  # noqa: ANN001
    if isinstance(config, RankDataConfig):
        return {"targets": dict(builder.sources),
                "prompts_with_fewer_history_items": builder.history_cut}
    cover = builder.coverage
    return {"interest_kinds": dict(builder.kinds),
            "granularities": dict(builder.granularities),
            "interests_skipped_by_profiler_rules": dict(builder.skipped_interests),
            "mean_future_coverage": round(sum(cover) / len(cover), 3) if cover else 0.0}
