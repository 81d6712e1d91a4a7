"""The collaborative models: fit once then load, publish to a behaviour collection named after
the model, and (integration, real MovieLens) Chroma's inner-product answer to the user state
is the model's own exact top-50."""

from __future__ import annotations

import numpy as np
import pytest

from tastelens.config.models import CollaborativeConfig
from tastelens.config.settings import ChromaSettings, Settings
from tastelens.data.dataset import user_sequences
from tastelens.vectorstore.collaborative import CollaborativeModels, models_dir

TINY = {"sasrec": {"hidden": 16, "max_epochs": 3, "progress": False}}


@pytest.fixture()
def settings(tmp_path) -> Settings:
    return Settings(cache_dir=tmp_path, chroma=ChromaSettings(mode="embedded"))


def test_fit_then_load_and_publish_once(tiny_dataset, settings) -> None:  # noqa: ANN001
    config = CollaborativeConfig.model_validate(TINY)
    work = models_dir(settings, tiny_dataset.name)
    models = CollaborativeModels(config, tiny_dataset, work_dir=work)
    assert not models.is_trained(tiny_dataset.interactions)
    models.fit(tiny_dataset.interactions)
    assert models.sasrec.epochs_run == 3 and models.is_trained(tiny_dataset.interactions)
    again = CollaborativeModels(config, tiny_dataset, work_dir=work).fit(
        tiny_dataset.interactions)
    assert again.sasrec.epochs_run == 0 and again.ease.loaded and again.tag == models.tag
    histories = list(user_sequences(tiny_dataset.interactions, tiny_dataset).values())[:3]
    np.testing.assert_allclose(again.user_states(histories), models.user_states(histories))
    np.testing.assert_allclose(again.ease_scores(histories), models.ease_scores(histories))
    # Other data, other model: a new tag (and collection), never the old weights.
    fewer = CollaborativeModels(config, tiny_dataset, work_dir=work).fit(
        tiny_dataset.interactions.iloc[:-20])
    assert fewer.tag != models.tag
    index = models.behaviour_index(settings)
    assert models.tag in index.name and not index.exists()
    assert models.publish(index) == tiny_dataset.n_items == index.count()
    stored = index.embeddings(tiny_dataset.item_ids[:5])
    np.testing.assert_allclose(stored, models.item_vectors[:5], rtol=1e-6)


def test_without_ease(tiny_dataset, settings) -> None:  # noqa: ANN001
    config = CollaborativeConfig.model_validate({**TINY, "ease": None})
    models = CollaborativeModels(config, tiny_dataset,
                                 work_dir=models_dir(settings, tiny_dataset.name))
    models.fit(tiny_dataset.interactions)
    assert models.ease is None and models.ease_scores([np.array([1, 2])]) is None


@pytest.mark.integration
@pytest.mark.slow  # minutes: `make test-all` runs it, CI's `make test` does not
def test_chroma_returns_the_models_own_top_50(real_data_path, settings) -> None:  # noqa: ANN001
    from tastelens.data.movielens import load_movielens_csv

    dataset = load_movielens_csv(real_data_path)
    # Two epochs are enough for a model whose scores spread; the overlap measures the index.
    config = CollaborativeConfig.model_validate(
        {"sasrec": {"max_epochs": 2, "progress": False}, "ease": None})
    models = CollaborativeModels(config, dataset,
                                 work_dir=models_dir(settings, dataset.name))
    models.fit(dataset.interactions)
    index = models.behaviour_index(settings)
    models.publish(index)
    rng = np.random.default_rng(0)
    sequences = list(user_sequences(dataset.interactions, dataset).values())
    users = rng.choice(len(sequences), size=100, replace=False)
    histories = [sequences[u] for u in users]
    states = models.user_states(histories)
    exact = states @ models.item_vectors.T
    hits = index.query(states, 50)
    overlap = []
    for row, found in zip(exact, hits):
        truth = {dataset.item_ids[j] for j in np.argsort(-row)[:50]}
        overlap.append(len(truth & {i for i, _ in found}) / 50)
        # Chroma reports the inner product itself as the similarity.
        best = dataset.item_index[found[0][0]]
        assert found[0][1] == pytest.approx(row[best], rel=1e-3, abs=1e-3)
    assert np.mean(overlap) >= 0.95, f"mean overlap {np.mean(overlap):.3f}"
