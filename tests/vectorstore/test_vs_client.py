"""Opening Chroma and naming collections."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tastelens.config.settings import ChromaSettings, Settings
from tastelens.errors import VectorIndexError
from tastelens.vectorstore.chroma_client import (
    collection_name,
    model_slug,
    open_client,
    sanitise_name,
)
from tastelens.vectorstore.encoders import HashingEncoder
from tastelens.vectorstore.item_index import ItemIndex

from .conftest import free_port

VALID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")

AWKWARD = ["ab", "a..b", "-ab-", "x" * 600, "192.168.1.1", "My Dataset (2024)!",
           "tastelens-ml latest/small-text-BAAI/bge small", "", "___", "é ü ß", "a" * 512]


@pytest.mark.parametrize("raw", AWKWARD)
def test_sanitised_names_are_valid_and_accepted_by_chroma(raw: str, tmp_path: Path) -> None:
    name = sanitise_name(raw)
    assert VALID.match(name) and ".." not in name
    assert not re.match(r"^\d+\.\d+\.\d+\.\d+$", name)
    assert sanitise_name(raw) == name  # deterministic
    client = open_client(Settings(cache_dir=tmp_path, chroma=ChromaSettings(mode="embedded")))
    client.get_or_create_collection(name, embedding_function=None)  # Chroma's own check


def test_sanitising_keeps_good_names_and_separates_long_ones() -> None:
    assert sanitise_name("tastelens-movielens-small-text-all-minilm-l6-v2") == \
        "tastelens-movielens-small-text-all-minilm-l6-v2"
    assert sanitise_name("x" * 600) != sanitise_name("x" * 601)
    assert len(sanitise_name("x" * 600)) == 512


def test_collection_and_model_names() -> None:
    assert model_slug("sentence-transformers/all-MiniLM-L6-v2") == "all-minilm-l6-v2"
    assert model_slug("all-MiniLM-L6-v2") == "all-minilm-l6-v2"
    a, b = model_slug("/models/a/model"), model_slug("/models/b/model")
    assert a.startswith("model-") and a != b
    assert collection_name("tastelens", "ml small", "text", "all-minilm-l6-v2") == \
        "tastelens-ml-small-text-all-minilm-l6-v2"


def test_unreachable_server_names_url_and_fix(tmp_path: Path) -> None:
    port = free_port()  # bound then released: nothing listens there
    settings = Settings(cache_dir=tmp_path,
                        chroma=ChromaSettings(mode="http", host="127.0.0.1", port=port))
    with pytest.raises(VectorIndexError) as info:
        open_client(settings)
    message = str(info.value)
    assert f"no Chroma server at http://127.0.0.1:{port}" in message
    assert f"chroma run --path DIR --port {port}" in message
    assert "chroma.mode=embedded" in message


def test_embedded_client_uses_settings_path(tmp_path: Path) -> None:
    where = tmp_path / "store"
    client = open_client(Settings(cache_dir=tmp_path / "cache",
                                  chroma=ChromaSettings(mode="embedded", path=where)))
    client.get_or_create_collection("abc", embedding_function=None)
    assert where.is_dir() and any(where.iterdir())
    assert not (tmp_path / "cache" / "chroma").exists()


def test_index_sanitises_the_name_it_is_given(tmp_path: Path) -> None:
    client = open_client(Settings(cache_dir=tmp_path, chroma=ChromaSettings(mode="embedded")))
    index = ItemIndex(client, "My Index (v2)!", HashingEncoder(dim=16))
    assert index.name == "My-Index-v2"
    index.upsert(["a"], HashingEncoder(dim=16).encode(["x"]))
    assert [c.name for c in client.list_collections()] == ["My-Index-v2"]
