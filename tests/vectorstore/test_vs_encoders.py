"""Text encoders: the hashing fake (unit) and the bundled all-MiniLM-L6-v2 (integration)."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from tastelens.config.settings import ChromaSettings, EmbedderSettings, Settings
from tastelens.errors import ConfigError
from tastelens.schemas import Item
from tastelens.vectorstore.chroma_client import open_client
from tastelens.vectorstore.encoders import (
    DEFAULT_MODEL_ID,
    HashingEncoder,
    SentenceTransformerEncoder,
    encoder_from_settings,
)
from tastelens.vectorstore.item_index import ItemIndex


def test_hashing_encoder_is_deterministic_unit_and_similarity_aware() -> None:
    enc = HashingEncoder(dim=128)
    texts = ["Toy Story animation cowboy", "Toy Story animation cowboy",
             "Toy Story animation pixar", "Heat crime thriller", ""]
    vectors = enc.encode(texts)
    assert vectors.shape == (5, 128) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(vectors[0], vectors[1])
    np.testing.assert_array_equal(vectors[0], HashingEncoder(dim=128).encode([texts[0]])[0])
    assert vectors[0] @ vectors[2] > vectors[0] @ vectors[3]
    assert (enc.calls, enc.texts_encoded) == (1, 5)


def test_encoder_from_settings_picks_the_named_encoder() -> None:
    settings = Settings(embedder=EmbedderSettings(model="hashing-64"))
    assert encoder_from_settings(settings).dim == 64
    assert encoder_from_settings(settings, "hashing").model_id == "hashing-256"
    real = encoder_from_settings(Settings(embedder=EmbedderSettings(batch_size=7)))
    assert isinstance(real, SentenceTransformerEncoder) and real.batch_size == 7


@pytest.mark.parametrize("name", ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"])
def test_default_model_resolves_to_bundled_copy_without_loading(name: str) -> None:
    enc = SentenceTransformerEncoder(name)
    assert enc.model_id == DEFAULT_MODEL_ID
    assert (Path(enc._source) / "model.safetensors").is_file()
    assert enc._local_only and enc._model is None


def test_missing_model_folder_fails_before_loading_anything(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no-such-model does not exist"):
        SentenceTransformerEncoder(str(tmp_path / "no-such-model"))


@pytest.mark.integration
def test_unloadable_model_raises_config_error(tmp_path: Path) -> None:
    (tmp_path / "empty-model").mkdir()
    enc = SentenceTransformerEncoder(str(tmp_path / "empty-model"))
    with pytest.raises(ConfigError, match="could not load embedder .*empty-model"):
        enc.encode(["x"])


@pytest.mark.integration
def test_minilm_ranks_toy_story_for_toy_cowboy_animation(tmp_path: Path, monkeypatch) -> None:
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def no_network(sock, address):  # noqa: ANN001
        if not (isinstance(address, tuple) and address[0] in ("127.0.0.1", "localhost", "::1")):
            attempts.append(address)
            raise OSError(f"test blocks network access to {address}")
        return real_connect(sock, address)

    # The default model must load from the bundled copy without touching any hub.
    monkeypatch.setattr(socket.socket, "connect", no_network)
    enc = SentenceTransformerEncoder("all-MiniLM-L6-v2")
    items = [
        Item(id="1", title="Toy Story (1995)", year=1995,
             categories=("Adventure", "Animation", "Children", "Comedy", "Fantasy")),
        Item(id="6", title="Heat (1995)", year=1995, categories=("Action", "Crime", "Thriller")),
        Item(id="2", title="Jumanji (1995)", year=1995,
             categories=("Adventure", "Children", "Fantasy")),
        Item(id="296", title="Pulp Fiction (1994)", year=1994,
             categories=("Comedy", "Crime", "Drama", "Thriller")),
    ]
    vectors = enc.encode([it.document() for it in items])
    assert vectors.shape == (4, enc.dim) == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    index = ItemIndex(open_client(Settings(cache_dir=tmp_path,
                                           chroma=ChromaSettings(mode="embedded"))),
                      "minilm-sanity", enc)
    index.build(items, progress=False)
    ranked = [i for i, _ in index.query_text(["toy cowboy animation"], k=4)[0]]
    assert ranked.index("1") < ranked.index("6")
    assert ranked[0] == "1"
    crime = [i for i, _ in index.query_text(["armed robbery crime thriller"], k=4)[0]]
    assert crime.index("6") < crime.index("1")
    assert attempts == []
