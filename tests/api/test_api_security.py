"""The API's defences, each probed as an attacker on loopback would, over a real `tastelens api`
process: DNS rebinding (a foreign Host, a foreign Origin), per-user tokens (token A cannot read
user B; revoked at once), the chat amplification message within its bound, a POST without a
Content-Type, taste-edit history pruned, the reply's exclusions not echoed, sessions capped
per client, and the rate limit (off for loopback by default; 429 under a burst when on).

The main server runs on ml-latest-small (the chat's fuzzy title look-ups cost what they cost
on its ~10k titles) with no API key, the 'hashing' embedder and an LLM nobody serves; the
rate-limit server on the tiny dataset. Weak keys are refused at start-up
(tests/cli/test_api_cli.py); no child outlives the API (tests/cli/test_api_children.py).
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..apiproc import QUICK_PIPELINE, ApiProcess, catalog, issue_token, refused_llm, run_cli
from ..apiproc import start_api

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ATTACK = " ".join(f"like qz{i:03d} and" for i in range(266))[:4000]
"""The probe's message: 266 'like X' phrases, none of them a title."""
CRAFTED = " ".join(["like a an the of and in to", "like aeiou nrstl the an of"] * 80)[:4000]
"""'like X' phrases whose X costs a fuzzy look-up the most (many titles pass difflib's quick
checks, so it computes the full ratio for them)."""
NORMAL = "something like Heat"
NORMALS = ("something like Heat", "something like Heat but funnier",
           "I love 90s Disney musicals", "a funny space adventure", "no horror please")
"""First messages of a conversation, as people write them: the median's cost is 'normal'."""


class Server:
    """A running API and what its tests need to reach it."""

    def __init__(self, api: ApiProcess, root: Path, folder: Path, cache: Path) -> None:
        self.api, self.root, self.folder, self.cache = api, root, folder, cache
        self.port = int(api.base.rsplit(":", 1)[1])
        self.http = httpx.Client(base_url=api.base, timeout=120)

    def token(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(self.root, self.cache, self.folder, user)}"}

    def taste_version(self, user: str, auth: dict[str, str]) -> int:
        reply = self.http.get(f"/v1/users/{user}/taste", headers=auth)
        assert reply.status_code == 200, reply.text
        return reply.json()["overrides"]["version"]


def serve(root: Path, folder: Path, cache: Path) -> Iterator[Server]:
    api = start_api(root, folder, cache)
    server = Server(api, root, folder, cache)
    try:
        api.wait_healthy(timeout_s=300)
        yield server
    finally:
        server.http.close()
        api.stop()
        api.kill_survivors()
    assert "Traceback" not in api.output(), api.output()[-4000:]


@pytest.fixture(scope="module")
def server(real_data_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("api-security")
    folder, cache = catalog(root, folder=real_data_path, settings=(
        QUICK_PIPELINE + refused_llm()
        + "[api]\nmax_chat_sessions = 8\nmax_chat_sessions_per_client = 3\n"))
    yield from serve(root, folder, cache)


@pytest.fixture(scope="module")
def limited(tiny_dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:  # noqa: ANN001
    root = tmp_path_factory.mktemp("api-rate-limit")
    folder, cache = catalog(root, tiny_dataset, settings=(
        QUICK_PIPELINE + refused_llm() + "[api]\nrate_limit_loopback = true\n"
        "rate_limit_per_minute = 30\nrate_limit_burst = 3\n"))
    yield from serve(root, folder, cache)


def client_from(server: Server, address: str) -> httpx.Client:
    """A client whose requests come from another loopback address (another 'client')."""
    return httpx.Client(base_url=server.api.base, timeout=120,
                        transport=httpx.HTTPTransport(local_address=address))


# -- 1: DNS rebinding --------------------------------------------------------------------
def test_a_rebinding_page_gets_nothing(server: Server) -> None:
    me = server.token("3")
    rebound = {"Host": f"attacker.example:{server.port}",
               "Origin": f"http://attacker.example:{server.port}"}
    for headers in (rebound, {**rebound, **me}):  # with the user's token too
        read = server.http.get("/v1/users/3/taste", headers=headers)
        assert read.status_code == 400 and read.json()["error"]["type"] == "invalid_host"
        edit = server.http.post("/v1/users/3/taste", headers=headers,
                                json={"action": "dislike", "label": "horror"})
        assert edit.status_code == 400
        assert server.http.post("/v1/chat", json={"message": "hi"},
                                headers=headers).status_code == 400
        assert server.http.get("/", headers=headers).status_code == 400
    # the page is on 127.0.0.1 but another origin sent the write
    foreign = server.http.post("/v1/users/3/taste", json={"action": "dislike", "label": "horror"},
                               headers={**me, "Origin": "http://attacker.example"})
    assert foreign.status_code == 403 and foreign.json()["error"]["type"] == "forbidden_origin"
    assert server.taste_version("3", me) == 0  # nothing was written
    own = server.http.post("/v1/users/3/taste", json={"action": "dislike", "label": "horror"},
                           headers={**me, "Origin": f"http://127.0.0.1:{server.port}"})
    assert own.status_code == 200 and own.json()["overrides"]["version"] == 1
    local = server.http.get("/v1/users/3/taste", headers={**me, "Host": f"localhost:{server.port}"})
    assert local.status_code == 200


# -- 2: per-user tokens --------------------------------------------------------------------
def test_user_token_a_cannot_reach_user_b(server: Server) -> None:
    a, b = server.token("4"), server.token("5")
    assert server.http.get("/v1/users/4/taste", headers=a).status_code == 200
    for method, path, body in [("GET", "/v1/users/5/taste", None),
                               ("GET", "/v1/users/5/profile", None),
                               ("POST", "/v1/users/5/taste", {"action": "dislike",
                                                              "label": "horror"}),
                               ("POST", "/v1/recommend", {"user": "5", "k": 3}),
                               ("POST", "/v1/chat", {"message": "hi", "user": "5"})]:
        reply = server.http.request(method, path, json=body, headers=a)
        assert reply.status_code == 403, (path, reply.text)
    assert server.taste_version("5", b) == 0
    # no token at all: a user's data is not open to every local process
    bare = server.http.get("/v1/users/4/taste")
    assert bare.status_code == 401 and "tastelens token issue --user 4" in bare.text
    # a session started for user 4 answers only to user 4's token
    first = server.http.post("/v1/chat", json={"message": "hi", "user": "4"}, headers=a)
    assert first.status_code == 200, first.text
    sid = first.json()["session_id"]
    assert server.http.post("/v1/chat", json={"message": "more", "session_id": sid},
                            headers=b).status_code == 403
    assert server.http.post("/v1/chat", json={"message": "more", "session_id": sid}
                            ).status_code == 401
    # revoked by the operator while the server runs: refused from the next request on
    done = run_cli(server.root, server.cache, "token", "revoke", "--user", "4", "--data",
                   str(server.folder))
    assert done.returncode == 0 and "revoked 1 token(s) of user 4" in done.stdout
    assert server.http.get("/v1/users/4/taste", headers=a).status_code == 401
    assert server.http.get("/v1/users/5/taste", headers=b).status_code == 200


# -- 3: chat amplification ------------------------------------------------------------------
def cpu_seconds(server: Server, message: str) -> float:
    """The server process's CPU time for one chat message in a new conversation."""
    import psutil

    process = psutil.Process(server.api.process.pid)
    before = process.cpu_times()
    reply = server.http.post("/v1/chat", json={"message": message})
    after = process.cpu_times()
    assert reply.status_code == 200, reply.text
    return (after.user + after.system) - (before.user + before.system)


def test_the_worst_message_costs_at_most_three_normal_ones(server: Server) -> None:
    cpu_seconds(server, NORMAL)  # warm: the catalog vocabulary is built on the first chat
    normal = statistics.median(cpu_seconds(server, m) for m in NORMALS * 2)
    worst = {name: statistics.median(cpu_seconds(server, message) for _ in range(3))
             for name, message in (("probe", ATTACK), ("crafted", CRAFTED))}
    print(f"server CPU per chat turn: median normal {normal * 1000:.0f} ms; " + ", ".join(
        f"{name} {cpu * 1000:.0f} ms ({cpu / normal:.1f}x)" for name, cpu in worst.items()))
    assert max(worst.values()) <= 3 * normal, (normal, worst)


# -- 4: bodies without a Content-Type --------------------------------------------------------
def test_a_post_without_content_type_is_refused(server: Server) -> None:
    me = server.token("6")
    body = json.dumps({"action": "dislike", "label": "horror"}).encode()
    request = server.http.build_request("POST", "/v1/users/6/taste", content=body, headers=me)
    assert "content-type" not in request.headers
    reply = server.http.send(request)
    assert reply.status_code == 415 and reply.json()["error"]["type"] == "unsupported_media_type"
    chat = server.http.build_request("POST", "/v1/chat", content=b'{"message": "hi"}')
    assert "content-type" not in chat.headers
    assert server.http.send(chat).status_code == 415
    plain = server.http.post("/v1/users/6/taste", content=body,
                             headers={**me, "Content-Type": "text/plain"})
    assert plain.status_code == 415
    assert server.taste_version("6", me) == 0


# -- 5: growth ---------------------------------------------------------------------------------
def test_taste_history_is_pruned(server: Server) -> None:
    me = server.token("7")
    for i in range(25):  # 25 toggles of one dislike
        action = "dislike" if i % 2 == 0 else "undislike"
        reply = server.http.post("/v1/users/7/taste", headers=me,
                                 json={"action": action, "label": "horror"})
        assert reply.status_code == 200, reply.text
    assert server.taste_version("7", me) == 25
    store = server.cache / "profiles" / "ml-latest-small.sqlite"
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
        versions = [v for (v,) in conn.execute(
            "SELECT version FROM overrides WHERE user = '7' ORDER BY version")]
    assert versions == list(range(6, 26))


def test_a_reply_does_not_echo_every_excluded_item(server: Server) -> None:
    first = server.http.post("/v1/chat", json={"message": NORMAL})
    sid = first.json()["session_id"]
    shown = len(first.json()["recommendations"]["items"])
    for _ in range(3):
        more = server.http.post("/v1/chat", json={"message": "more", "session_id": sid})
        assert more.status_code == 200, more.text
        constraints = more.json()["turn"]["constraints"]
        assert "exclude_items" not in constraints
        assert constraints["exclude_items_count"] == shown > 0  # everything shown before
        shown += len(more.json()["recommendations"]["items"])


# -- 7: sessions per client ------------------------------------------------------------------
def test_one_client_cannot_push_out_anothers_conversation(server: Server) -> None:
    mine = server.http.post("/v1/chat", json={"message": "hi"}).json()["session_id"]
    with client_from(server, "127.0.0.3") as flooder:
        opened = [flooder.post("/v1/chat", json={"message": "hi"}).json()["session_id"]
                  for _ in range(12)]  # more than the server's total of 8
        alive = [flooder.post("/v1/chat", json={"message": "hi", "session_id": s}).status_code
                 for s in opened]
    assert alive == [404] * 9 + [200] * 3  # it keeps its own last 3
    again = server.http.post("/v1/chat", json={"message": "hi", "session_id": mine})
    assert again.status_code == 200, again.text


# -- rate limit ------------------------------------------------------------------------------
def test_loopback_is_not_rate_limited_by_default(server: Server) -> None:
    sid = server.http.post("/v1/chat", json={"message": "hi"}).json()["session_id"]
    codes = [server.http.post("/v1/chat", json={"message": "hi", "session_id": sid}).status_code
             for _ in range(30)]  # over the default burst of 20
    assert codes == [200] * 30


def test_a_burst_gets_429_with_retry_after(limited: Server) -> None:
    replies = [limited.http.post("/v1/chat", json={"message": "hi"}) for _ in range(6)]
    codes = [r.status_code for r in replies]
    assert codes[:3] == [200] * 3 and 429 in codes[3:], codes
    refused = next(r for r in replies if r.status_code == 429)
    wait = int(refused.headers["retry-after"])
    assert 1 <= wait <= 2 and refused.json()["error"]["type"] == "too_many_requests"
    assert limited.http.post("/v1/recommend", json={"constraints": {"queries": ["x"]}}
                             ).status_code == 429  # one bucket for both routes
    assert limited.http.get("/health").status_code == 200  # never limited
    time.sleep(wait + 0.5)
    assert limited.http.post("/v1/chat", json={"message": "hi"}).status_code == 200
