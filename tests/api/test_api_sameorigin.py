"""What a web page elsewhere could make a browser send is refused before any route runs:
another Host name (DNS rebinding), a cross-origin write, a write whose body is not JSON; and
the per-client rate limit of /v1/recommend and /v1/chat. (tests/api/test_api_security.py
checks them over a real `tastelens api` process.)"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tastelens.api.app import create_app
from tastelens.api.ratelimit import RateLimiter
from tastelens.api.sameorigin import name_matches, split_host
from tastelens.config.settings import APISettings, Settings

from .test_api import StandInChat, StandInPipeline

KEY = "operator-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def pipeline(tiny_dataset) -> StandInPipeline:  # noqa: ANN001
    return StandInPipeline(tiny_dataset)


def client_for(pipeline: StandInPipeline, base_url: str = "http://127.0.0.1:8080",
               address: str = "127.0.0.1", **api: object) -> TestClient:
    settings = Settings(api=APISettings(open_user_data=True, **api))
    return TestClient(create_app(settings, pipeline=pipeline, chat_factory=StandInChat),
                      base_url=base_url, raise_server_exceptions=False,
                      client=(address, 50000))


@pytest.mark.parametrize("host", ["attacker.example:18555", "attacker.example",
                                  "127.0.0.1.nip.io:8080", "localhost.attacker.example",
                                  "10.0.0.5:8080", ""])
def test_without_a_key_only_loopback_names_are_answered(host: str,
                                                        pipeline: StandInPipeline) -> None:
    client = client_for(pipeline)
    for method, path, body in [("GET", "/v1/users/1/taste", None),
                               ("POST", "/v1/users/1/taste", {"action": "dislike",
                                                              "label": "horror"}),
                               ("GET", "/", None), ("GET", "/docs", None)]:
        reply = client.request(method, path, json=body, headers={
            "Host": host, "Origin": f"http://{host}"})
        assert reply.status_code == 400, (host, path)
        assert reply.json()["error"]["type"] == "invalid_host"
    assert pipeline.calls == []
    assert client.get("/health", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "127.0.0.1:9000", "localhost:8080",
                                  "LOCALHOST", "[::1]:8080", "127.5.6.7"])
def test_loopback_names_work_on_any_port(host: str, pipeline: StandInPipeline) -> None:
    client = client_for(pipeline)
    assert client.get("/v1/users/1/profile", headers={"Host": host}).status_code == 200


def test_allowed_hosts_and_a_key(pipeline: StandInPipeline) -> None:
    listed = client_for(pipeline, allowed_hosts=["recs.example.com", "*.example.org"])
    for host, status in [("recs.example.com", 200), ("a.b.example.org:443", 200),
                         ("example.org", 400), ("recs.example.com.evil", 400),
                         ("127.0.0.1:8080", 200)]:
        reply = listed.get("/v1/users/1/profile", headers={"Host": host})
        assert reply.status_code == status, host
    keyed = client_for(pipeline, api_key=SecretStr(KEY))
    assert keyed.get("/v1/users/1/profile", headers={**AUTH, "Host": "any.name"}
                     ).status_code == 200
    narrowed = client_for(pipeline, api_key=SecretStr(KEY), allowed_hosts=["recs.example.com"])
    assert narrowed.get("/v1/users/1/profile", headers={**AUTH, "Host": "any.name"}
                        ).status_code == 400


@pytest.mark.parametrize("origin, status", [
    ("http://127.0.0.1:8080", 200), ("HTTP://127.0.0.1:8080", 200),
    ("http://attacker.example", 403), ("http://127.0.0.1:3000", 403),
    ("http://localhost:8080", 403), ("null", 403), ("file://", 403), (None, 200)])
def test_writes_from_another_origin_are_refused(origin: str | None, status: int,
                                                pipeline: StandInPipeline) -> None:
    client = client_for(pipeline)
    headers = {"Origin": origin} if origin is not None else {}
    for path, body in [("/v1/chat", {"message": "hi"}), ("/v1/recommend", {"user": "1"})]:
        reply = client.post(path, json=body, headers=headers)
        assert reply.status_code == status, (origin, path, reply.text)
        if status == 403:
            assert reply.json()["error"]["type"] == "forbidden_origin"
    # reads are not writes (a cross-origin page cannot read the answer without CORS)
    assert client.get("/v1/users/1/profile", headers=headers).status_code == 200


def test_an_origin_named_in_allowed_hosts_may_write(pipeline: StandInPipeline) -> None:
    client = client_for(pipeline, base_url="http://127.0.0.1:8080",
                        allowed_hosts=["recs.example.com"])
    ok = client.post("/v1/recommend", json={"user": "1"},  # behind a proxy that rewrote Host
                     headers={"Origin": "https://recs.example.com"})
    assert ok.status_code == 200
    proxied = client.post("/v1/recommend", json={"user": "1"}, headers={
        "Host": "recs.example.com", "Origin": "https://recs.example.com"})
    assert proxied.status_code == 200


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_a_write_that_is_not_json_is_415(content_type: str | None,
                                         pipeline: StandInPipeline) -> None:
    client = client_for(pipeline)
    headers = {"Content-Type": content_type} if content_type else {}
    for path in ("/v1/chat", "/v1/users/1/taste", "/v1/recommend"):
        reply = client.post(path, content=b'{"message": "hi", "user": "1"}', headers=headers)
        assert reply.status_code == 415, (content_type, path)
        assert reply.json()["error"]["type"] == "unsupported_media_type"
    assert pipeline.calls == []
    for kind in ("application/json", "application/json; charset=utf-8", "application/x+json"):
        assert client.post("/v1/recommend", content=b'{"user": "1"}',
                           headers={"Content-Type": kind}).status_code == 200


def test_host_parts() -> None:
    assert split_host("Example.COM:8080") == ("example.com", 8080)
    assert split_host("[::1]:80") == ("[::1]", 80) and split_host("[::1]") == ("[::1]", None)
    assert split_host("localhost") == ("localhost", None)
    assert name_matches("a.example.org", ["*.example.org"])
    assert not name_matches("example.org", ["*.example.org"])
    assert name_matches("anything", ["*"])


def test_the_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(1.0)
    assert limiter.take("b") == 0.0  # per client
    now[0] = 1.5
    assert limiter.take("a") == 0.0 and limiter.take("a") == pytest.approx(0.5)
    small = RateLimiter(per_minute=60, burst=1, max_clients=2, clock=lambda: now[0])
    for key in ("a", "b", "c"):
        small.take(key)
    assert small.take("a") == 0.0  # 'a' was dropped (least recent): it starts full


def test_a_burst_gets_429_with_retry_after(pipeline: StandInPipeline) -> None:
    limited = client_for(pipeline, rate_limit_per_minute=6, rate_limit_burst=2,
                         rate_limit_loopback=True)
    replies = [limited.post("/v1/recommend", json={"user": "1"}) for _ in range(2)]
    replies += [limited.post("/v1/chat", json={"message": "hi"}) for _ in range(2)]
    assert [r.status_code for r in replies] == [200, 200, 429, 429]
    assert replies[2].headers["retry-after"] == "10"  # 6 a minute: one every 10 s
    assert replies[2].json()["error"]["type"] == "too_many_requests"
    assert limited.get("/v1/users/1/profile").status_code == 200  # other routes: no limit
    assert len(pipeline.calls) == 2
    # off for loopback by default; 0 = off everywhere
    default = client_for(pipeline, rate_limit_per_minute=6, rate_limit_burst=2)
    assert all(default.post("/v1/recommend", json={"user": "1"}).status_code == 200
               for _ in range(5))
    remote = client_for(pipeline, address="203.0.113.7", rate_limit_per_minute=6,
                        rate_limit_burst=2)
    assert [remote.post("/v1/recommend", json={"user": "1"}).status_code
            for _ in range(3)] == [200, 200, 429]
    off = client_for(pipeline, address="203.0.113.7", rate_limit_per_minute=0)
    assert all(off.post("/v1/recommend", json={"user": "1"}).status_code == 200
               for _ in range(25))
