"""The page's routes through FastAPI's TestClient, in front of the real pipeline (themed
catalog, HashingEncoder index in a temporary Chroma, profile store, no LLM): the page and
its assets, the taste view and its edits, and the titles the chat sends for cited items."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tastelens.agent.pipeline import RecommendPipeline
from tastelens.api.app import create_app
from tastelens.api.web import ASSETS, WEB_DIR
from tastelens.config.settings import (
    APISettings,
    ChromaSettings,
    EmbedderSettings,
    LLMSettings,
    Settings,
)
from tastelens.llm.errors import LLMUnavailableError
from tastelens.llm.fake import FakeBackend
from tastelens.vectorstore.encoders import HashingEncoder
from tastelens.vectorstore.item_index import ItemIndex

from ..webdata import make_web_dataset

KEY = "taste-key-0123456789abc"


def down(request):  # noqa: ANN001, ANN201
    raise LLMUnavailableError("no LLM server")


@pytest.fixture(scope="module")
def client(tmp_path_factory):  # noqa: ANN001, ANN201
    dataset = make_web_dataset()
    settings = Settings(cache_dir=tmp_path_factory.mktemp("api-taste"),
                        chroma=ChromaSettings(mode="embedded"),
                        embedder=EmbedderSettings(model="hashing"),
                        llm=LLMSettings(backend="fake"), api=APISettings(api_key=SecretStr(KEY)),
                        recommend={"profile_source": "facts", "k": 8,
                                   "rerank": {"mode": "none"}, "retriever": {"n_candidates": 12},
                                   "collaborative": {"enabled": False}})
    ItemIndex.for_dataset(settings, dataset.name, HashingEncoder()).build(
        dataset.items.values(), progress=False)
    pipeline = RecommendPipeline.from_settings(settings, dataset,
                                               llm=FakeBackend(responder=down),
                                               config=settings.recommend)
    with TestClient(create_app(settings, pipeline=pipeline),
                    headers={"Authorization": f"Bearer {KEY}"}) as test_client:
        yield test_client
    pipeline.close()


def test_the_page_and_its_assets_need_no_key_and_nothing_from_outside(client) -> None:  # noqa: ANN001
    page = client.get("/", headers={"Authorization": ""})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    linked = re.findall(r'(?:src|href)="([^"#]+)"', page.text)
    assert sorted(linked) == ["/web/app.js", "/web/favicon.svg", "/web/style.css"]
    for name, media in ASSETS.items():
        asset = client.get(f"/web/{name}", headers={"Authorization": ""})
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(media)
    for path in WEB_DIR.iterdir():  # no URL of another origin anywhere (SVG's namespace aside)
        text = path.read_text().replace("http://www.w3.org/2000/svg", "")
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text), path.name
    assert client.get("/web/../app.py").status_code == 404
    assert client.get("/web/secret.txt").status_code == 404
    assert client.head("/").status_code == 200
    assert client.get("/v1/users/1/taste", headers={"Authorization": ""}).status_code == 401


def test_the_taste_view(client) -> None:  # noqa: ANN001
    view = client.get("/v1/users/1/taste").json()
    assert view["overrides"] == {"user": "1", "version": 0, "updated_at": None, "removed": [],
                                 "pinned": [], "dislikes": []}
    labels = [i["label"] for i in view["profile"]["interests"]]
    assert "heist" in labels and view["removed"] == []
    evidence = {e for i in view["profile"]["interests"] for e in i["evidence"]}
    assert evidence and evidence <= set(view["titles"])
    assert view["titles"][next(iter(evidence))].endswith(")")  # "Vault 3 (1982)"
    assert client.get("/v1/users/nobody/taste").status_code == 404


def test_an_edit_is_stored_shown_and_honoured(client) -> None:  # noqa: ANN001
    def heist_items() -> list[str]:
        items = client.post("/v1/recommend", json={"user": "6"}).json()["items"]
        return [r["item"] for r in items if "heist" in r["explanation"]["interests"]]

    assert heist_items()  # user 6 likes heists (webdata)
    edited = client.post("/v1/users/6/taste", json={"action": "remove", "label": "Heist",
                                                    "expected_version": 0})
    assert edited.status_code == 200, edited.text
    body = edited.json()
    assert body["overrides"]["version"] == 1 and body["overrides"]["removed"] == ["heist"]
    assert [i["label"] for i in body["removed"]] == ["heist"]
    assert "heist" not in [i["label"] for i in body["profile"]["interests"]]
    assert not heist_items()
    assert client.get("/v1/users/6/profile").json()["interests"] == body["profile"]["interests"]
    restored = client.post("/v1/users/6/taste", json={"action": "restore", "label": "heist"})
    assert restored.json()["overrides"]["version"] == 2 and heist_items()


@pytest.mark.parametrize(("body", "status", "says"), [
    ({"action": "remove", "label": "no such interest"}, 422,
     "label: 'no such interest' is not one of the user's interests"),
    ({"action": "explode", "label": "heist"}, 422, "body.action"),
    ({"action": "remove", "label": ""}, 422, "body.label"),
    ({"action": "dislike"}, 422, "body.label"),
    ({"action": "dislike", "label": "x", "expected_version": 99}, 409,
     "is at version 0, not 99"),
])
def test_bad_edits_are_clear_errors(client, body: dict, status: int, says: str) -> None:  # noqa: ANN001
    reply = client.post("/v1/users/5/taste", json=body)
    assert reply.status_code == status, reply.text
    assert says in reply.json()["error"]["message"]
    assert client.get("/v1/users/5/taste").json()["overrides"]["version"] == 0


def test_a_disliked_genre_leaves_chat_lists(client) -> None:  # noqa: ANN001
    def chat() -> list[dict]:
        reply = client.post("/v1/chat", json={"message": "something exciting", "user": "12"})
        return reply.json()["recommendations"]["items"]

    assert any("Thriller" in r["categories"] for r in chat())
    assert client.post("/v1/users/12/taste", json={"action": "dislike", "label": "thriller"}
                       ).status_code == 200
    items = chat()
    assert items and not any("Thriller" in r["categories"] for r in items)


def test_chat_replies_carry_the_cited_titles_and_item_facts(client) -> None:  # noqa: ANN001
    reply = client.post("/v1/chat", json={"message": "something exciting", "user": "1"}).json()
    items = reply["recommendations"]["items"]
    assert all(r["year"] and r["categories"] for r in items)
    cited = {e for r in items for e in r["explanation"]["evidence"]}
    assert cited and cited <= set(reply["titles"])
    assert reply["titles"] == {i: client.app.state.pipeline.dataset.items[i].title
                               for i in reply["titles"]}
