"""The real pipeline's explanations on ml-latest-small (TASTELENS_TEST_DATA), checked from the
output alone: every genre and decade an interest claim names is the item's, every citation
is among the user's five most similar liked items, lists cite many items.

A HashingEncoder index keeps it to seconds (the default encoder's figures are in
bench/results/explain-faithfulness.md, from bench/explain_faithfulness.py); the similarity
floor is the hashing vectors' own.
"""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from tastelens.agent.explain import Explainer
from tastelens.agent.pipeline import RecommendPipeline
from tastelens.agent.profile.profiler import Profiler
from tastelens.agent.rank.reranker import Reranker
from tastelens.agent.retrieve.retriever import Retriever
from tastelens.config.pipeline import PipelineConfig
from tastelens.config.settings import ChromaSettings, EmbedderSettings, Settings
from tastelens.data import load_dataset
from tastelens.llm.fake import FakeBackend
from tastelens.vectorstore.encoders import HashingEncoder
from tastelens.vectorstore.item_index import ItemIndex

pytestmark = pytest.mark.integration
DECADE = re.compile(r"\b(1[89]\d0|20\d0)s\b")


@pytest.fixture(scope="module")
def lists(real_data_path, tmp_path_factory):
    dataset = load_dataset(real_data_path)
    settings = Settings(cache_dir=tmp_path_factory.mktemp("real-explain"),
                        chroma=ChromaSettings(mode="embedded"),
                        embedder=EmbedderSettings(model="hashing"))
    index = ItemIndex.for_dataset(settings, dataset.name, HashingEncoder())
    index.build(dataset.items.values(), progress=False)
    cfg = PipelineConfig.model_validate({"profile_source": "facts", "rerank": {"mode": "none"},
                                         "explain": {"evidence_min_similarity": 0.3}})
    llm = FakeBackend()  # no stage asks the model: any call would fail the test
    pipe = RecommendPipeline(
        cfg, dataset=dataset, profiler=Profiler(llm), llm=llm,
        retriever=Retriever(cfg.retriever, dataset=dataset, item_index=index),
        reranker=Reranker(cfg.rerank, llm=llm, dataset=dataset),
        explainer=Explainer(cfg.explain, llm=llm, dataset=dataset, item_index=index))
    users = random.Random(0).sample(dataset.user_ids, 12)
    return dataset, index, pipe, users, pipe.recommend_many(users, k=10)


def of_profile(label: str, interests) -> bool:  # noqa: ANN001
    """A profile interest's label, or the part of one the item carries ("Comedy: high
    school" of "Comedy: high school, christmas": its category and some of its descriptors)."""
    if label in {i.label for i in interests}:
        return True
    head, sep, rest = label.partition(": ")
    parts = set((rest if sep else label).split(", "))
    return any(parts <= set(i.descriptors) and (not sep or i.label.startswith(head + ": "))
               for i in interests)


def test_interest_claims_name_only_the_items_genres_and_decade(lists):
    dataset, _, pipe, users, results = lists
    genres = {c for it in dataset.items.values() for c in it.categories}
    claims = 0
    for user, result in zip(users, results):
        interests = pipe.profile_for(user).interests
        for rec in result.items:
            item = dataset.items[rec.item]
            for label in rec.explanation.interests:
                claims += 1
                assert of_profile(label, interests) or rec.source == "explored", label
                named = [g for g in genres if re.search(rf"\b{re.escape(g)}\b", label)]
                assert set(named) <= set(item.categories), (item.title, label)
                for decade in DECADE.findall(label):
                    assert item.year and int(decade) <= item.year < int(decade) + 10
    assert claims >= 50  # plenty to check


def test_citations_are_among_the_most_similar_liked_items(lists):
    dataset, index, pipe, users, results = lists
    floor = pipe.explainer.config.evidence_min_similarity
    for user, result in zip(users, results):
        liked = [e.item for e in dataset.history(user) if e.rating >= 3.5]
        vectors = index.embeddings(liked)
        cited, pools = set(), set()
        for rec in result.items:
            item = dataset.items[rec.item]
            share = np.array([bool(set(dataset.items[h].categories) & set(item.categories))
                              for h in liked])
            sims = np.where(share, vectors @ index.embeddings([rec.item])[0], -np.inf)
            for h in rec.explanation.evidence:
                assert int((sims > sims[liked.index(h)]).sum()) < 5, (item.title, h)
            cited |= set(rec.explanation.evidence)
            pools |= {liked[k] for k in np.argsort(-sims)[:5] if sims[k] >= floor}
        # At least six distinct citations per list, where the pools hold six items.
        assert len(cited) >= min(6, len(pools)), (user, len(cited), len(pools))
