"""Who reaches what, with a stand-in pipeline: the operator key, per-user tokens, the
loopback-without-a-key rules, and the per-client session cap. (tests/api/test_api_security.py
checks the same over a real `tastelens api` process.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tastelens.api.access import Caller
from tastelens.api.app import create_app
from tastelens.api.routes import echoed_turn
from tastelens.api.sessions import SessionStore, UnknownSessionError
from tastelens.config.settings import APISettings, Settings
from tastelens.user_tokens import TokenStore, default_tokens_path

from .test_api import StandInChat, StandInPipeline

KEY = "operator-key-0123456789"
LOCAL = "http://127.0.0.1"


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
def tokens(tmp_path: Path) -> dict[str, str]:
    """A token for user 1 and one for user 2 of the tiny dataset, in ``tmp_path``'s cache."""
    with TokenStore(default_tokens_path(tmp_path, "tiny")) as store:
        return {user: store.issue(user)[1] for user in ("1", "2")}


def app_for(tmp_path: Path, pipeline: StandInPipeline, **api: object) -> TestClient:
    settings = Settings(cache_dir=tmp_path, api=APISettings(**api))
    return TestClient(create_app(settings, pipeline=pipeline, chat_factory=StandInChat),
                      base_url=LOCAL, raise_server_exceptions=False)


@pytest.fixture
def pipeline(tiny_dataset) -> StandInPipeline:  # noqa: ANN001
    return StandInPipeline(tiny_dataset)


@pytest.mark.parametrize("key", [None, KEY])
def test_a_user_token_reaches_its_user_only(key: str | None, tmp_path: Path,
                                            pipeline: StandInPipeline,
                                            tokens: dict[str, str]) -> None:
    client = app_for(tmp_path, pipeline, api_key=SecretStr(key) if key else None)
    one = bearer(tokens["1"])
    assert client.get("/v1/users/1/profile", headers=one).status_code == 200
    assert client.post("/v1/recommend", json={"user": "1"}, headers=one).status_code == 200
    for method, path, body in [("GET", "/v1/users/2/profile", None),
                               ("GET", "/v1/users/2/taste", None),
                               ("POST", "/v1/users/2/taste", {"action": "dislike",
                                                              "label": "horror"}),
                               ("POST", "/v1/recommend", {"user": "2"}),
                               ("POST", "/v1/chat", {"message": "hi", "user": "2"}),
                               ("GET", "/v1/users/nobody/profile", None)]:
        reply = client.request(method, path, json=body, headers=one)
        assert reply.status_code == 403, (path, reply.text)
        assert reply.json()["error"]["message"].startswith("this token is for user '1'")
    assert [c[0] for c in pipeline.calls] == ["1"]  # nothing ran for the refused ones
    # the operator (when there is one) reaches everyone; X-API-Key works for tokens too
    if key:
        assert client.get("/v1/users/2/profile", headers=bearer(KEY)).status_code == 200
    assert client.get("/v1/users/2/profile",
                      headers={"X-API-Key": tokens["2"]}).status_code == 200


def test_a_chat_session_started_for_a_user_stays_theirs(tmp_path: Path,
                                                        pipeline: StandInPipeline,
                                                        tokens: dict[str, str]) -> None:
    client = app_for(tmp_path, pipeline, api_key=SecretStr(KEY))
    first = client.post("/v1/chat", json={"message": "hi", "user": "1"},
                        headers=bearer(tokens["1"]))
    sid = first.json()["session_id"]
    again = client.post("/v1/chat", json={"message": "more", "session_id": sid},
                        headers=bearer(tokens["1"]))
    assert again.status_code == 200 and again.json()["text"] == "turn 2: more"
    taken = client.post("/v1/chat", json={"message": "x", "session_id": sid},
                        headers=bearer(tokens["2"]))
    assert taken.status_code == 403
    assert client.post("/v1/chat", json={"message": "x", "session_id": sid},
                       headers=bearer(KEY)).status_code == 200
    # an anonymous conversation belongs to nobody: any valid caller holding its id goes on
    anon = client.post("/v1/chat", json={"message": "hi"}, headers=bearer(tokens["2"]))
    assert client.post("/v1/chat", json={"message": "x", "session_id": anon.json()[
        "session_id"]}, headers=bearer(tokens["1"])).status_code == 200


def test_without_a_key_a_users_data_needs_their_token(tmp_path: Path,
                                                      pipeline: StandInPipeline,
                                                      tokens: dict[str, str]) -> None:
    client = app_for(tmp_path, pipeline)
    refused = client.get("/v1/users/1/taste")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["error"]["message"] == (
        "user '1''s data needs their token (`tastelens token issue --user 1` makes one)")
    assert client.post("/v1/chat", json={"message": "hi", "user": "1"}).status_code == 401
    assert client.post("/v1/chat", json={"message": "hi"}).status_code == 200  # anonymous
    wrong = client.get("/v1/users/1/profile", headers=bearer("tlu_" + "x" * 43))
    assert wrong.status_code == 401 and "invalid API key or token" in wrong.text
    assert client.get("/v1/users/1/profile", headers=bearer(tokens["1"])).status_code == 200


def test_a_revoked_token_is_refused_at_once(tmp_path: Path, pipeline: StandInPipeline,
                                            tokens: dict[str, str]) -> None:
    client = app_for(tmp_path, pipeline)
    assert client.get("/v1/users/1/profile", headers=bearer(tokens["1"])).status_code == 200
    with TokenStore(default_tokens_path(tmp_path, "tiny")) as store:
        assert store.revoke_user("1") == 1
    assert client.get("/v1/users/1/profile", headers=bearer(tokens["1"])).status_code == 401


def test_tokens_of_another_dataset_are_not_this_ones(tmp_path: Path,
                                                     pipeline: StandInPipeline) -> None:
    with TokenStore(default_tokens_path(tmp_path, "ml-other")) as store:
        _, token = store.issue("1")
    client = app_for(tmp_path, pipeline)
    assert client.get("/v1/users/1/profile", headers=bearer(token)).status_code == 401


def test_open_user_data_is_for_keyless_loopback_only(tmp_path: Path,
                                                     pipeline: StandInPipeline,
                                                     tokens: dict[str, str]) -> None:
    opened = app_for(tmp_path, pipeline, open_user_data=True)
    assert opened.get("/v1/users/2/profile").status_code == 200
    # ... a token still reaches only its user
    assert opened.get("/v1/users/2/profile", headers=bearer(tokens["1"])).status_code == 403
    keyed = app_for(tmp_path, pipeline, open_user_data=True, api_key=SecretStr(KEY))
    assert keyed.get("/v1/users/2/profile").status_code == 401


def test_a_client_keeps_its_own_sessions_only() -> None:
    store = SessionStore(lambda user: object(), max_sessions=6, max_per_client=2)
    mine = store.open(None, None, "addr:10.0.0.1")
    backend = [store.open(None, None, None) for _ in range(2)]  # the operator: not capped
    flood = [store.open(None, None, "addr:10.0.0.9") for _ in range(50)]
    assert store.open(mine.id, None) is mine
    assert all(store.open(b.id, None) is b for b in backend)
    assert store.open(flood[-1].id, None) is flood[-1]
    assert store.open(flood[-2].id, None) is flood[-2]
    with pytest.raises(UnknownSessionError):  # the flooder lost its own oldest ones
        store.open(flood[-3].id, None)
    assert len(store) == 5
    user = [store.open(None, "1", "user:1") for _ in range(3)]
    with pytest.raises(UnknownSessionError):
        store.owner(user[0].id)
    assert store.owner(user[2].id) == "1"
    # the total cap still holds, dropping the least recently used whoever's it is
    for i in range(6):
        store.open(None, None, f"addr:10.1.0.{i}")
    assert len(store) == 6


def test_caller_clients() -> None:
    assert Caller(operator=True, address="1.2.3.4").client is None
    assert Caller(user="7", address="1.2.3.4").client == "user:7"
    assert Caller(address="1.2.3.4").client == "addr:1.2.3.4"


def test_the_reply_counts_excluded_items_instead_of_echoing_them() -> None:
    dumped = {"text": "t", "recommendations": None, "intent": {"action": "more"},
              "constraints": {"exclude_items": [str(i) for i in range(500)],
                              "queries": ["funny"]}}
    turn = echoed_turn(dumped)
    assert turn == {"intent": {"action": "more"},
                    "constraints": {"queries": ["funny"], "exclude_items_count": 500}}
    assert len(dumped["constraints"]["exclude_items"]) == 500  # the turn itself is untouched
