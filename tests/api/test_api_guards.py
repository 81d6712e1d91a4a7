"""Every bad request gets a clear answer, and nothing internal leaks (the stand-in pipeline of
test_api.py behind FastAPI's TestClient): auth only off on loopback, bounded lists, valid
Unicode in every text field, genres and year ranges checked, one k limit, reason codes instead
of internal URLs, HEAD /health, offline docs."""

from __future__ import annotations

import json
import logging
import re

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tastelens.agent.recommendation import PipelineReport, RecommendationList
from tastelens.api.app import create_app, is_loopback
from tastelens.api.protocol import MAX_CATEGORIES, MAX_EXCLUDED, MAX_QUERIES, MAX_SEEDS
from tastelens.api.redact import REASON_CODES, reason_code
from tastelens.config.pipeline import MAX_K
from tastelens.errors import ConfigError
from tastelens.llm.errors import LLMUnavailableError

from .test_api import AUTH, KEY, StandInChat, StandInPipeline, settings_with

INTERNAL = "http://10.1.2.3:8100/v1"


@pytest.fixture
def pipeline(tiny_dataset) -> StandInPipeline:  # noqa: ANN001
    return StandInPipeline(tiny_dataset)


@pytest.fixture
def client(pipeline: StandInPipeline) -> TestClient:
    app = create_app(settings_with(api_key=SecretStr(KEY)), pipeline=pipeline,
                     chat_factory=StandInChat)
    return TestClient(app, raise_server_exceptions=False)


def post(client: TestClient, body: dict | bytes, path: str = "/v1/recommend"):  # noqa: ANN201
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(path, content=content,
                       headers={**AUTH, "Content-Type": "application/json"})


# -- 2: auth ---------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_no_key_is_allowed_on_loopback_and_announced(host: str, pipeline: StandInPipeline,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    assert is_loopback(host)
    app = create_app(settings_with(host=host, open_user_data=True), pipeline=pipeline)
    with caplog.at_level(logging.WARNING, logger="tastelens.api"), \
            TestClient(app, base_url="http://127.0.0.1") as open_:
        assert open_.post("/v1/recommend", json={"user": "2"}).status_code == 200
    assert "no API key" in caplog.text


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.org"])
def test_no_key_on_another_host_is_refused(host: str, pipeline: StandInPipeline) -> None:
    assert not is_loopback(host)
    with pytest.raises(ConfigError, match="not a loopback address and no api.api_key"):
        create_app(settings_with(host=host), pipeline=pipeline)
    app = create_app(settings_with(host=host, api_key=SecretStr(KEY)), pipeline=pipeline)
    assert TestClient(app).post("/v1/recommend", json={"user": "2"}).status_code == 401


# -- 3: text must be valid Unicode, in every field -------------------------------------
SURROGATE = '"\\ud800 heist"'  # JSON for a lone surrogate: valid JSON, not valid text


@pytest.mark.parametrize("path, template, where", [
    ("/v1/recommend", '{"user": %s}', "body.user"),
    ("/v1/recommend", '{"user": "1", "constraints": {"queries": [%s]}}',
     "body.constraints.queries.0"),
    ("/v1/recommend", '{"user": "1", "constraints": {"seed_items": [%s]}}',
     "body.constraints.seed_items.0"),
    ("/v1/recommend", '{"user": "1", "constraints": {"include_categories": [%s]}}',
     "body.constraints.include_categories.0"),
    ("/v1/recommend", '{"user": "1", "constraints": {"exclude_categories": [%s]}}',
     "body.constraints.exclude_categories.0"),
    ("/v1/recommend", '{"user": "1", "constraints": {"exclude_items": [%s]}}',
     "body.constraints.exclude_items.0"),
    ("/v1/chat", '{"message": %s}', "body.message"),
    ("/v1/chat", '{"message": "hi", "user": %s}', "body.user"),
    ("/v1/chat", '{"message": "hi", "session_id": %s}', "body.session_id"),
])
def test_a_lone_surrogate_in_any_text_field_is_422(client: TestClient, pipeline: StandInPipeline,
                                                   path: str, template: str, where: str) -> None:
    reply = post(client, (template % SURROGATE).encode(), path)
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["type"] == "validation_error"
    assert error["message"].startswith(where + ":")
    assert re.search(r"not valid Unicode|unicode string", error["message"])
    assert pipeline.calls == []


def test_a_lone_surrogate_in_the_profile_path_is_422(client: TestClient) -> None:
    reply = client.get("/v1/users/%ED%A0%80/profile", headers=AUTH)
    assert reply.status_code in (404, 422) and reply.json()["error"]  # never a 500


# -- 4: every list is bounded ----------------------------------------------------------
@pytest.mark.parametrize("field, limit", [
    ("queries", MAX_QUERIES), ("seed_items", MAX_SEEDS),
    ("include_categories", MAX_CATEGORIES), ("exclude_categories", MAX_CATEGORIES),
    ("exclude_items", MAX_EXCLUDED)])
def test_constraint_lists_are_bounded(client: TestClient, pipeline: StandInPipeline,
                                      field: str, limit: int) -> None:
    reply = post(client, {"user": "1", "constraints": {field: ["1"] * (limit + 1)}})
    assert reply.status_code == 422
    assert f"body.constraints.{field}" in reply.json()["error"]["message"]
    assert pipeline.calls == []


def test_three_thousand_queries_are_refused_before_any_work(pipeline: StandInPipeline) -> None:
    app = create_app(settings_with(api_key=SecretStr(KEY)), pipeline=pipeline)  # 64 KB bodies
    body = {"user": "1", "constraints": {"queries": [f"q{i}" for i in range(3000)]}}
    reply = post(TestClient(app), body)
    assert reply.status_code == 422 and "at most 10 items" in reply.json()["error"]["message"]
    assert pipeline.calls == []


# -- 7: genres match case-insensitively, unknown ones and inverted ranges are errors ---
def test_genres_match_case_insensitively(client: TestClient, pipeline: StandInPipeline) -> None:
    reply = post(client, {"user": "1", "constraints": {"include_categories": ["comedy"],
                                                       "exclude_categories": ["HORROR"]}})
    assert reply.status_code == 200, reply.text
    constraints = pipeline.calls[0][2]
    assert (constraints.include_categories, constraints.exclude_categories) == (
        ["Comedy"], ["Horror"])


@pytest.mark.parametrize("constraints, expected", [
    ({"include_categories": ["Comdy"]}, "include_categories: unknown genre 'Comdy'; did you "
                                        "mean 'Comedy'?"),
    ({"exclude_categories": ["zzz"]}, "exclude_categories: unknown genre 'zzz'; known genres: "
                                      "Action, Animation, Comedy, Drama, Horror, Romance"),
    ({"year_min": 2020, "year_max": 1990}, "year_min 2020 is after year_max 1990"),
])
def test_unknown_genres_and_inverted_years_are_422(client: TestClient, pipeline: StandInPipeline,
                                                   constraints: dict, expected: str) -> None:
    reply = post(client, {"user": "1", "constraints": constraints})
    assert reply.status_code == 422
    assert reply.json()["error"]["type"] == "InvalidRequestError"
    assert expected in reply.json()["error"]["message"]
    assert pipeline.calls == []


# -- 8: one k limit --------------------------------------------------------------------
def test_k_limit_is_named_k(client: TestClient) -> None:
    assert post(client, {"user": "1", "k": MAX_K}).status_code == 200
    over = post(client, {"user": "1", "k": MAX_K + 1})
    assert over.status_code == 422
    assert over.json()["error"]["message"] == (
        f"body.k: Input should be less than or equal to {MAX_K}")


# -- 9: no internal URLs in answers; HEAD /health; offline docs ------------------------
class FallingBackPipeline(StandInPipeline):
    def recommend(self, user, **kw):  # noqa: ANN001, ANN003, ANN201
        result = super().recommend(user, **kw)
        report = PipelineReport(rerank="score", rerank_fallback=True,
                                rerank_fallback_reason=f"LLM unavailable: cannot reach the "
                                                       f"LLM server at {INTERNAL} (boom)")
        return result.model_copy(update={"report": report})


def test_fallback_reasons_are_codes_and_the_url_goes_to_the_log(
        tiny_dataset, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    pipeline = FallingBackPipeline(tiny_dataset)
    client = TestClient(create_app(settings_with(open_user_data=True), pipeline=pipeline,
                                   chat_factory=StandInChat), base_url="http://127.0.0.1")
    with caplog.at_level(logging.WARNING, logger="tastelens.api"):
        reply = client.post("/v1/recommend", json={"user": "1"})
        turn = client.post("/v1/chat", json={"message": "hi", "user": "1"})
    assert reply.status_code == 200 and turn.status_code == 200
    result = RecommendationList.model_validate(reply.json())
    assert result.report.rerank_fallback
    assert result.report.rerank_fallback_reason == "llm_unavailable"
    assert turn.json()["recommendations"]["report"]["rerank_fallback_reason"] == \
        "llm_unavailable"
    assert "10.1.2.3" not in reply.text and "10.1.2.3" not in turn.text
    assert INTERNAL in caplog.text  # the operator still sees it


@pytest.mark.parametrize("reason, code", [
    ("LLM unavailable: cannot reach the LLM server at http://x:1/v1 (ConnectError)",
     "llm_unavailable"),
    ("LLM unavailable: the LLM circuit breaker is open after 3 consecutive timed-out or "
     "failed calls; next probe in 12 s", "llm_circuit_open"),
    ("timeout: no reply within 30 s (APITimeoutError)", "llm_timeout"),
    ("deadline: not sent: the interactive LLM deadline was spent", "llm_timeout"),
    ("server_error: HTTP 500: boom; timeout: no reply", "llm_error"),
    ("reply unusable: invalid after retry: ranking: too short", "llm_reply_unusable"),
    ("no LLM backend configured", "no_llm"),
    ("LLM feature unavailable: LLM unavailable: cannot reach the LLM server at http://x:1/v1",
     "llm_unavailable"),
    ("LLM feature unavailable: timeout: no reply within 30 s", "llm_timeout"),
    ("something new", "rerank_failed"),
])
def test_reason_codes(reason: str, code: str) -> None:
    assert reason_code(reason) == code and code in REASON_CODES


def test_llm_errors_are_503_without_internal_details(tiny_dataset) -> None:  # noqa: ANN001
    class Down(StandInPipeline):
        def profile_for(self, user: str):  # noqa: ANN201
            raise LLMUnavailableError(f"cannot reach the LLM server at {INTERNAL}")

    client = TestClient(create_app(settings_with(open_user_data=True),
                                   pipeline=Down(tiny_dataset)), base_url="http://127.0.0.1")
    reply = client.get("/v1/users/1/profile")
    assert reply.status_code == 503
    assert reply.json()["error"] == {
        "type": "LLMUnavailableError",
        "message": "the LLM server is unavailable; the server log has the details"}


def test_head_health(client: TestClient) -> None:
    reply = client.head("/health")
    assert reply.status_code == 200 and reply.content == b""


def test_docs_need_no_cdn(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200
        assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        scripts = [a for a in assets if a.endswith((".js", ".css"))]
        assert scripts, html.text
        for asset in scripts:
            assert asset.startswith("/"), f"{page} loads {asset} from another host"
            fetched = client.get(asset)
            assert fetched.status_code == 200 and len(fetched.content) > 10_000
        assert "cdn." not in html.text and "fonts.googleapis" not in html.text


def test_unicode_text_names_the_lone_surrogate() -> None:
    from tastelens.api.protocol import unicode_text

    assert unicode_text("heist ☂") == "heist ☂"
    with pytest.raises(ValueError, match="lone surrogate at character 2"):
        unicode_text("ab\ud800")
