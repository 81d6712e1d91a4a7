"""`tastelens eval chat` for real: a `tastelens api` process on loopback over the themed
catalog of tests/webdata.py (the bundled all-MiniLM-L6-v2 embedder, real Chroma, no LLM
server: the chat reads with its rules, lists keep retrieval order), replayed over HTTP with
protocol 'every' (recommender turns recorded with role 'assistant'), then the same dialogues
in process: the lists must be the same.

Not the 'hashing' test embedder: a query word no item text holds scores every item 0, and
Chroma returns such ties in an order that changes from process to process. (On this 72-item
catalog the lists have been identical across processes in every run; on ml-latest-small
Chroma's approximate search is not quite: bench/results/chat-redial.md.)"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tastelens.config.settings import load_settings
from tastelens.data import load_dataset
from tastelens.vectorstore.encoders import encoder_from_settings
from tastelens.vectorstore.item_index import ItemIndex

from ...apiproc import refused_llm, start_api
from ...conftest import write_movielens
from ...webdata import make_web_dataset
from .conftest import redial, write_jsonl

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

KEY = secrets.token_urlsafe(24)  # the API refuses short or sample keys
TITLES = {"1": "Vault 1 (1976)", "2": "Vault 2 (1979)", "3": "Vault 3 (1982)",
          "4": "Orbit 2 (1980)", "5": "Orbit 3 (1983)", "6": "Toybox 1 (1978)",
          "7": "Highway 1 (1978)", "8": "Highway 2 (1981)", "9": "Undead 1 (1976)"}
DIALOGUES = [
    redial("heist", [("S", "hi there"), ("S", "I loved @1 and @2"),
                     ("R", "you might like @3"), ("S", "seen it, what else?"),
                     ("R", "then @9 maybe")], TITLES),
    redial("space", [("S", "I want something set in space"), ("R", "@4 is good"),
                     ("S", "no horror please"), ("R", "@5")], TITLES),
    redial("hello", [("S", "hello"), ("R", "@6?")], TITLES),
    redial("road", [("S", "something funny, a road trip"), ("S", "like @7"), ("R", "@8")],
           TITLES),
]


def tastelens(cache: Path, *args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("tastelens")), "--cache-dir", str(cache), *args]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, dict]]:
    """(root, URL, env): a `tastelens api` with chat.k = 50, its settings file in root."""
    root = tmp_path_factory.mktemp("chat-eval")
    folder = write_movielens(make_web_dataset(), root / "ml-web", tags=True)
    (root / "tastelens.toml").write_text(
        f'data = "{folder}"\n'
        '[embedder]\nmodel = "all-MiniLM-L6-v2"\n' + refused_llm() +
        '[chat]\nk = 50\n[recommend]\nprofile_source = "facts"\n'
        '[recommend.rerank]\nmode = "none"\n[recommend.collaborative]\nenabled = false\n')
    cache = root / "cache"
    settings = load_settings(root / "tastelens.toml", cache_dir=cache)
    dataset = load_dataset(folder)
    ItemIndex.for_dataset(settings, dataset.name, encoder_from_settings(settings)).build(
        dataset.items.values(), progress=False)
    write_jsonl(root / "dialogues.jsonl", DIALOGUES)
    api = start_api(root, folder, cache, env={"TASTELENS_API__API_KEY": KEY})
    try:
        api.wait_healthy()
        yield root, api.base, {k: v for k, v in os.environ.items()
                               if not k.startswith("TASTELENS_")}
    finally:
        api.stop()
    assert "Traceback" not in api.output()


def eval_chat(root: Path, env: dict, out: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        tastelens(root / "cache", "eval", "chat", "--dialogues", "dialogues.jsonl",
                  "--protocol", "every", "--baseline", "popularity", "--baseline", "itemknn",
                  "--baseline", "dialogue-embedding", "--out", out, *extra),
        cwd=root, env=env, capture_output=True, text=True, timeout=400)


def test_eval_chat_over_http_matches_the_in_process_chat(site) -> None:  # noqa: ANN001
    root, base, env = site
    refused = eval_chat(root, env, "http-no-key", "--api", base)
    assert refused.returncode == 1 and "refused the API key" in refused.stdout + refused.stderr
    assert "fitting" not in refused.stdout           # checked before any baseline is fitted
    assert not (root / "http-no-key").exists()

    http = eval_chat(root, env, "http", "--api", base, "--api-key", KEY)
    assert http.returncode == 0, http.stdout + http.stderr
    assert "chat: 6/6 cases" in http.stdout          # plain progress lines off a terminal
    metrics = json.loads((root / "http" / "metrics.json").read_text())
    p = metrics["protocol"]
    assert (p["n_cases"], p["n_conversations"], p["chat"]["mode"]) == (6, 4, "http")
    assert set(metrics["systems"]) == {"chat", "popularity", "itemknn", "dialogue-embedding"}
    for values in metrics["systems"].values():
        assert {"recall@1", "recall@10", "recall@50", "mrr@10"} <= set(values)
    assert set(metrics["differences"]) == {"chat - popularity", "chat - itemknn",
                                           "chat - dialogue-embedding"}
    assert sum(b["n_cases"] for b in metrics["by_kind"].values()) == 6
    assert metrics["latency"]["seeker_turns"]["n"] == 8
    assert metrics["latency"]["observed_turns"]["n"] == 2
    turns = metrics["chat_turns"]
    assert turns["errors"] == 0 and turns["max_list_length"] > 10   # the server's chat.k
    assert metrics["matching"]["titles"]["rate"] == 1.0
    assert (root / "http" / "report.md").read_text().startswith("# Conversational")

    local = eval_chat(root, env, "local", "--no-llm")
    assert local.returncode == 0, local.stdout + local.stderr
    a = pd.read_parquet(root / "http" / "per_case.parquet")
    b = pd.read_parquet(root / "local" / "per_case.parquet")
    assert len(a) == 6
    assert [list(x) for x in a["chat_list"]] == [list(x) for x in b["chat_list"]]
    said_hello = a["conversation"] == "hello"         # smalltalk only: no list
    assert not a.loc[said_hello, "chat_has_list"].any()
    assert a.loc[~said_hello, "chat_list"].map(len).min() > 0
    for column in ("target", "kind", "rank_chat", "rank_itemknn", "rank_dialogue-embedding"):
        assert a[column].tolist() == b[column].tolist(), column
    assert [list(x) for x in a["turn_kinds"]] == [list(x) for x in b["turn_kinds"]]
    local_m = json.loads((root / "local" / "metrics.json").read_text())
    assert local_m["protocol"]["chat"]["mode"] == "in-process"
    assert local_m["systems"]["chat"] == metrics["systems"]["chat"]
