"""Ranking-adapter data from the serving distribution: cross-fitted cut points, the serving
retriever's candidates, serving-identical prompts, no leakage, the prompt budget, seeds and
atomic writes."""

from __future__ import annotations

import json

import pytest

from tastelens.agent.rank.prompt import rank_request, rank_target
from tastelens.config.settings import ChromaSettings, Settings
from tastelens.errors import ConfigError
from tastelens.finetune import data_build
from tastelens.finetune.data_build import build_data
from tastelens.finetune.data_config import RankDataConfig
from tastelens.finetune.jsonl import read_jsonl
from tastelens.prompts.renderer import json_data

from ..conftest import TINY_COLLABORATIVE
from .conftest import held_out_pairs, read_files, training_events

RANK = {"cuts": 3, "skip_newest": 2, "min_history": 3, "candidates": 8}


def config(**overrides) -> RankDataConfig:
    raw = {"seed": 7, "tokenizer": False, "rank": {**RANK, **overrides.pop("rank", {})}}
    return RankDataConfig.model_validate({**raw, **overrides})


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    # The cross-fitted SASRec trains in a second on the tiny data.
    return Settings(cache_dir=tmp_path_factory.mktemp("rank-cache"),
                    chroma=ChromaSettings(mode="embedded"),
                    recommend={"collaborative": TINY_COLLABORATIVE})


@pytest.fixture(scope="module")
def built(rich_dataset, settings, hashing_index, tmp_path_factory):
    out = tmp_path_factory.mktemp("rank") / "data"
    result = build_data(config(), settings, dataset=rich_dataset, out=out,
                        item_index=hashing_index)
    examples = read_jsonl(out / "train.jsonl") + read_jsonl(out / "eval.jsonl")
    return result, examples


def cut_positions(n_train: int) -> list[int]:
    """Where the targets are, computed here from RANK: the newest `cuts` training events
    before the newest `skip_newest`, each with at least `min_history` events before it."""
    end = n_train - RANK["skip_newest"]
    return [t for t in range(max(end - RANK["cuts"], RANK["min_history"]), end)]


def test_targets_are_the_cuts_before_the_rankers_own(built, rich_dataset, settings):
    result, examples = built
    card = json.loads((result.out_dir / "card.json").read_text())
    expected = {(u, t) for u in rich_dataset.user_ids
                for t in cut_positions(len(training_events(rich_dataset, u)))}
    assert len(expected) > 60
    assert {(e.meta["user"], e.meta["position"]) for e in examples} == expected
    for e in examples:
        train = training_events(rich_dataset, e.meta["user"])
        assert train[e.meta["position"]].item == e.meta["positive"]
        # Never one of the learned ranker's cross-fitting targets (the newest events).
        assert e.meta["position"] < len(train) - RANK["skip_newest"]
    assert card["counts"]["train_examples"] + card["counts"]["eval_examples"] == len(expected)
    assert card["counts"]["eval_users"] == 3 and card["counts"]["train_users"] == 27
    train_users = {e.meta["user"] for e in read_jsonl(result.out_dir / "train.jsonl")}
    eval_users = {e.meta["user"] for e in read_jsonl(result.out_dir / "eval.jsonl")}
    assert not train_users & eval_users
    targets = card["extra"]["targets"]
    assert targets["retrieved"] + targets.get("inserted", 0) == len(examples)
    assert targets["retrieved"] > 0
    assert card["extra"]["cross_model"].startswith("sasrec-")
    # Unset in the config: the serving re-ranker's, so the adapter sees the served prompt.
    assert card["config"]["rank"]["max_history"] == settings.recommend.rerank.max_history


def test_candidates_are_the_retrievers_with_the_target_among_them(built):
    _, examples = built
    for e in examples:
        candidates = e.meta["candidates"]
        assert len(candidates) == RANK["candidates"] == len(set(candidates))
        assert e.meta["positive"] in candidates
        assert not set(candidates) & set(e.meta["history_shown"])
        rank = e.meta["retrieved_rank"]
        assert rank is None or 0 <= rank < RANK["candidates"]
    assert len({e.target for e in examples}) >= 6  # shuffled: the letter carries no position


def test_no_validation_or_test_item_is_shown(built, rich_dataset):
    _, examples = built
    held = held_out_pairs(rich_dataset)
    assert held and all(len(v) == 2 for v in held.values())
    for e in examples:
        user = e.meta["user"]
        assert not held[user] & (set(e.meta["candidates"]) | set(e.meta["history_shown"]))
        text = "\n".join(m.content for m in e.messages) + e.target
        for item in held[user]:
            assert json_data(rich_dataset.item(item).title) not in text, (e.id, item)


def test_prompts_and_targets_are_exactly_the_serving_ones(built, rich_dataset, settings):
    _, examples = built
    for e in examples:
        train = training_events(rich_dataset, e.meta["user"])
        t = e.meta["position"]
        prompt = rank_request(rich_dataset, [(x.item, x.rating) for x in train[:t]],
                              e.meta["candidates"], mode="score",
                              max_history=settings.recommend.rerank.max_history)
        assert [m.model_dump() for m in e.messages] == [
            {"role": m.role, "content": m.content} for m in prompt.request.messages]
        assert e.target == rank_target(prompt, e.meta["positive"])
        assert e.target == prompt.labels[e.meta["candidates"].index(e.meta["positive"])]


def test_skip_keeps_only_retrieved_targets(rich_dataset, settings, hashing_index, tmp_path):
    result = build_data(config(rank={"absent": "skip"}), settings, dataset=rich_dataset,
                        out=tmp_path / "skip", item_index=hashing_index)
    examples = read_jsonl(tmp_path / "skip" / "train.jsonl")
    assert examples and all(e.meta["retrieved_rank"] is not None for e in examples)
    assert "inserted" not in result.card.extra["targets"]


def test_long_prompts_show_fewer_history_items(rich_dataset, settings, hashing_index,
                                               tmp_path):
    cfg = config(rank={"max_history": 8, "max_prompt_tokens": 64, "min_shown_history": 2})
    result = build_data(cfg, settings, dataset=rich_dataset, out=tmp_path / "short",
                        item_index=hashing_index)
    examples = read_jsonl(tmp_path / "short" / "train.jsonl")
    # 64 tokens never fit 8 candidate lines: every prompt is cut to the 2-item floor.
    assert all(len(e.meta["history_shown"]) == 2 for e in examples)
    assert result.card.extra["prompts_with_fewer_history_items"] > 0


def test_same_seed_same_bytes_other_seed_differs(rich_dataset, settings, hashing_index,
                                                 tmp_path):
    files = []
    for seed, name in ((3, "a"), (3, "b"), (4, "c")):
        build_data(config(seed=seed), settings, dataset=rich_dataset, out=tmp_path / name,
                   item_index=hashing_index)
        files.append(read_files(tmp_path / name))
    assert files[0]["train.jsonl"] == files[1]["train.jsonl"]
    assert files[0]["eval.jsonl"] == files[1]["eval.jsonl"]
    assert files[0]["train.jsonl"] != files[2]["train.jsonl"]


def test_a_failed_run_leaves_nothing_and_keeps_the_old_folder(
        rich_dataset, settings, hashing_index, tmp_path, monkeypatch):
    out = tmp_path / "data"
    build_data(config(), settings, dataset=rich_dataset, out=out, item_index=hashing_index)
    before = read_files(out)
    calls = []

    def broken(path, examples):  # the second file fails half-way
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(path, examples)

    real = data_build.write_jsonl
    monkeypatch.setattr(data_build, "write_jsonl", broken)
    with pytest.raises(OSError, match="disk full"):
        build_data(config(seed=99), settings, dataset=rich_dataset, out=out,
                   item_index=hashing_index)
    assert read_files(out) == before
    calls.clear()
    with pytest.raises(OSError):
        build_data(config(), settings, dataset=rich_dataset, out=tmp_path / "new",
                   item_index=hashing_index)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_ranking_data_needs_the_item_index_and_the_collaborative_models(rich_dataset,
                                                                         tmp_path):
    plain = Settings(cache_dir=tmp_path, chroma=ChromaSettings(mode="embedded"))
    with pytest.raises(ConfigError, match="index build"):
        build_data(config(), plain, dataset=rich_dataset, out=tmp_path / "x")
    off = plain.model_copy(update={"recommend": plain.recommend.model_copy(update={
        "collaborative": plain.recommend.collaborative.model_copy(update={"enabled": False})})})
    with pytest.raises(ConfigError, match="collaborative.enabled"):
        build_data(config(), off, dataset=rich_dataset, out=tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.integration
def test_the_built_data_trains_and_merges_on_the_real_model(built, prepared_model, llm_settings,
                                                            tmp_path):
    """End to end on the tiny data: the rank-cpu choices (letter-only loss, top layers,
    bf16 where the CPU has it) through the tiny training config, then a merged checkpoint."""
    from pathlib import Path

    from tastelens.finetune.merge import merge_adapter
    from tastelens.finetune.train import train
    from tastelens.finetune.train_config import load_train_config

    result, _ = built
    tiny = Path(__file__).resolve().parents[2] / "finetune" / "configs" / "tiny.toml"
    cfg = load_train_config(tiny, max_lora_rank=16, data_dir=result.out_dir,
                            output_dir=tmp_path / "run", max_steps=2, max_seq_len=512)
    cfg = cfg.model_copy(update={"end_token_loss": False, "eval_every": 0,
                                 "lora": cfg.lora.model_copy(update={"top_layers": 2})})
    trained = train(cfg, llm_settings, resume=False)
    m = trained.metrics
    assert m["steps"] == 2 and m["target_tokens"] == 2 * cfg.batch_size  # one letter each
    assert m["dropped_too_long"] == {"train": 0, "eval": 0}
    merged = merge_adapter(trained.adapter_dir, str(prepared_model), tmp_path / "merged")
    assert (merged / "config.json").is_file() and (merged / "merged.json").is_file()
