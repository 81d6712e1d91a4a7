"""Ranking-adapter data: counts, no leakage, serving-identical prompts, seeds, atomicity."""

from __future__ import annotations

import json

import pytest

from tastelens.agent.rank.prompt import rank_request, rank_target
from tastelens.errors import ConfigError
from tastelens.finetune import data_build
from tastelens.finetune.data_build import build_data
from tastelens.finetune.data_config import RankDataConfig
from tastelens.finetune.data_rank import negative_counts
from tastelens.finetune.jsonl import read_jsonl
from tastelens.prompts.renderer import json_data

from .conftest import held_out_pairs, read_files, training_events

RANK = {"positions_per_user": 3, "min_history": 4, "n_negatives": 9, "hard_pool": 12}


def config(**overrides) -> RankDataConfig:
    raw = {"seed": 7, "tokenizer": False, "rank": {**RANK, **overrides.pop("rank", {})}}
    return RankDataConfig.model_validate({**raw, **overrides})


@pytest.fixture(scope="module")
def built(rich_dataset, chroma_settings, hashing_index, tmp_path_factory):
    out = tmp_path_factory.mktemp("rank") / "data"
    result = build_data(config(), chroma_settings, dataset=rich_dataset, out=out,
                        item_index=hashing_index)
    examples = read_jsonl(out / "train.jsonl") + read_jsonl(out / "eval.jsonl")
    return result, examples


def test_counts_and_user_hold_out(built, rich_dataset, chroma_settings):
    result, examples = built
    card = json.loads((result.out_dir / "card.json").read_text())
    # Positions t in [min_history, len(training history)), at most 3 per user.
    expected = sum(min(3, max(0, len(training_events(rich_dataset, u)) - 4))
                   for u in rich_dataset.user_ids)
    assert expected > 60
    assert card["counts"]["train_examples"] + card["counts"]["eval_examples"] == expected
    assert card["counts"]["eval_users"] == 3 and card["counts"]["train_users"] == 27
    train_users = {e.meta["user"] for e in read_jsonl(result.out_dir / "train.jsonl")}
    eval_users = {e.meta["user"] for e in read_jsonl(result.out_dir / "eval.jsonl")}
    assert not train_users & eval_users
    assert len({e.id for e in examples}) == len(examples)
    assert card["source"]["hash_of"] == "content" and len(card["source"]["sha256"]) == 64
    assert card["tokens"]["train"]["prompt"]["n"] == card["counts"]["train_examples"]
    assert card["tokens"]["train"]["prompt"]["min"] > 100
    assert card["config"]["rank"]["n_negatives"] == 9 and card["seed"] == 7
    # Unset in the config: the serving re-ranker's, so the adapter sees the served prompt.
    assert card["config"]["rank"]["max_history"] == chroma_settings.recommend.rerank.max_history


def test_no_validation_or_test_pair_leaks(built, rich_dataset):
    _, examples = built
    held = held_out_pairs(rich_dataset)
    assert held and all(len(v) == 2 for v in held.values())
    for e in examples:
        user = e.meta["user"]
        assert not held[user] & (set(e.meta["candidates"]) | set(e.meta["history_shown"]))
        text = "\n".join(m.content for m in e.messages) + e.target
        for item in held[user]:
            assert json_data(rich_dataset.item(item).title) not in text, (e.id, item)


def test_prompts_and_targets_are_exactly_the_serving_ones(built, rich_dataset, chroma_settings):
    _, examples = built
    for e in examples:
        train = training_events(rich_dataset, e.meta["user"])
        t = e.meta["position"]
        assert train[t].item == e.meta["positive"]
        prompt = rank_request(rich_dataset, [(x.item, x.rating) for x in train[:t]],
                              e.meta["candidates"], mode="score",
                              max_history=chroma_settings.recommend.rerank.max_history)
        assert [m.model_dump() for m in e.messages] == [
            {"role": m.role, "content": m.content} for m in prompt.request.messages]
        assert e.target == rank_target(prompt, e.meta["positive"])
        assert e.target == prompt.labels[e.meta["candidates"].index(e.meta["positive"])]


def test_negatives_are_unseen_and_mixed_as_configured(built, rich_dataset):
    _, examples = built
    n_hard, n_pop, n_rand = negative_counts(config().rank)
    assert (n_hard, n_pop, n_rand) == (5, 2, 2)
    for e in examples:
        seen = set(rich_dataset.user_events(e.meta["user"])["item"])
        negatives = [c for c in e.meta["candidates"] if c != e.meta["positive"]]
        assert len(e.meta["candidates"]) == 10 and len(set(e.meta["candidates"])) == 10
        assert not seen & set(negatives)
        assert e.meta["sources"].count("hard") == n_hard
        assert e.meta["sources"].count("positive") == 1
    labels = {e.target for e in examples}
    assert len(labels) >= 6  # shuffled: the positive is not always at one position


def test_same_seed_same_bytes_other_seed_differs(rich_dataset, chroma_settings,
                                                 hashing_index, tmp_path):
    files = []
    for seed, name in ((3, "a"), (3, "b"), (4, "c")):
        build_data(config(seed=seed), chroma_settings, dataset=rich_dataset,
                   out=tmp_path / name, item_index=hashing_index)
        files.append(read_files(tmp_path / name))
    assert files[0]["train.jsonl"] == files[1]["train.jsonl"]
    assert files[0]["eval.jsonl"] == files[1]["eval.jsonl"]
    assert files[0]["train.jsonl"] != files[2]["train.jsonl"]


def test_a_failed_run_leaves_nothing_and_keeps_the_old_folder(
        rich_dataset, chroma_settings, hashing_index, tmp_path, monkeypatch):
    out = tmp_path / "data"
    build_data(config(), chroma_settings, dataset=rich_dataset, out=out,
               item_index=hashing_index)
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
        build_data(config(seed=99), chroma_settings, dataset=rich_dataset, out=out,
                   item_index=hashing_index)
    assert read_files(out) == before
    calls.clear()
    with pytest.raises(OSError):
        build_data(config(), chroma_settings, dataset=rich_dataset, out=tmp_path / "new",
                   item_index=hashing_index)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_hard_negatives_need_the_item_index(rich_dataset, tmp_path):
    from tastelens.settings import ChromaSettings, Settings

    settings = Settings(cache_dir=tmp_path, chroma=ChromaSettings(mode="embedded"))
    with pytest.raises(ConfigError, match="index build"):
        build_data(config(), settings, dataset=rich_dataset, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()
    # Without hard negatives no index is needed.
    result = build_data(config(rank={"hard_fraction": 0}), settings, dataset=rich_dataset,
                        out=tmp_path / "y")
    assert result.card.extra["negative_sources"].get("hard", 0) == 0
