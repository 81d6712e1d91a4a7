"""`tastelens api`: start-up failures are one line and exit 1, the port is checked before
anything slow, and a good start serves /health (GET and HEAD) and offline docs over loopback
(a real `tastelens api` process on the tiny dataset, 'hashing' embedder, 'fake' LLM)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tastelens.cli import api as api_cmd
from tastelens.cli.main import app
from tastelens.config.settings import load_settings
from tastelens.llm.vllm_server import free_port
from tastelens.vectorstore.encoders import HashingEncoder
from tastelens.vectorstore.item_index import ItemIndex

from ..apiproc import issue_token
from ..conftest import write_movielens

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_outside_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("TASTELENS_")]:
        monkeypatch.delenv(name)


def invoke(*args: str):  # noqa: ANN201
    return runner.invoke(app, ["api", *args])


def test_a_busy_port_is_found_first_in_one_line(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    def never(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the pipeline was loaded before the port was checked")

    monkeypatch.setattr(api_cmd, "build_pipeline", never)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.perf_counter()
        result = invoke("--port", str(port), "--data", str(tmp_path / "no-such-folder"))
    assert result.exit_code == 1, result.output
    assert result.output.strip() == (f"Error: port {port} on 127.0.0.1 is already in use; "
                                     "choose another with --port (settings api.port)")
    assert time.perf_counter() - started < 5


def test_a_bad_data_folder_is_one_line(tmp_path: Path) -> None:
    result = invoke("--port", str(free_port()), "--data", str(tmp_path / "no-such-folder"))
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error: ") and "no-such-folder" in lines[-1]
    assert "Traceback" not in result.output


def test_no_key_on_a_public_host_is_refused(tmp_path: Path) -> None:
    result = invoke("--host", "0.0.0.0", "--port", str(free_port()))
    assert result.exit_code == 1
    assert "not a loopback address and no api.api_key" in result.output
    empty = runner.invoke(app, ["api"], env={"TASTELENS_API__API_KEY": ""})
    assert empty.exit_code == 1
    assert "TASTELENS_API__API_KEY: key 'api.api_key': the API key is empty" in empty.output


@pytest.mark.parametrize("key", ["change-me", "fifteen-chars-x"])
def test_a_weak_key_stops_the_start_with_how_to_make_one(key: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASTELENS_")}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("tastelens")), "api", "--port", str(free_port())],
        cwd=tmp_path, env={**env, "TASTELENS_API__API_KEY": key}, capture_output=True,
        text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert ("TASTELENS_API__API_KEY: key 'api.api_key': the API key is too weak: use at least "
            "16 random characters") in done.stderr
    assert "python -c 'import secrets; print(secrets.token_urlsafe(32))'" in done.stderr
    assert key not in done.stdout + done.stderr and "Traceback" not in done.stderr


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_tastelens_api_serves_health_and_offline_docs(tiny_dataset, tmp_path: Path) -> None:  # noqa: ANN001
    folder = write_movielens(tiny_dataset, tmp_path / "ml-tiny")
    (tmp_path / "tastelens.toml").write_text(
        '[embedder]\nmodel = "hashing"\n[llm]\nbackend = "fake"\n'
        '[recommend]\nprofile_source = "facts"\n[recommend.rerank]\nmode = "score"\n'
        '[recommend.collaborative]\nenabled = false\n')
    cache = tmp_path / "cache"
    settings = load_settings(tmp_path / "tastelens.toml", cache_dir=cache)
    from tastelens.data import load_dataset

    ItemIndex.for_dataset(settings, load_dataset(folder).name, HashingEncoder()).build(
        tiny_dataset.items.values(), progress=False)
    token = issue_token(tmp_path, cache, folder, "1")  # user 1's data needs their token
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASTELENS_")}
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("tastelens")), "--cache-dir", str(cache), "api",
         "--port", str(port), "--data", str(folder)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "tastelens api did not answer within 180 s"
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        with httpx.Client(base_url=base, timeout=30) as http:
            health = http.get("/health").json()
            assert health["dataset"] == "ml-tiny" and health["llm"]["backend"] == "fake"
            assert http.head("/health").status_code == 200
            docs = http.get("/docs").text
            for asset in re.findall(r'(?:src|href)="(/[^"]+\.(?:js|css))"', docs):
                assert http.get(asset).status_code == 200
            assert http.post("/v1/recommend", json={"user": "1", "k": 3}).status_code == 401
            reply = http.post("/v1/recommend", json={"user": "1", "k": 3},
                              headers={"Authorization": f"Bearer {token}"})
            assert reply.status_code == 200, reply.text
            report = reply.json()["report"]
            assert report["rerank_fallback"] and report["rerank_fallback_reason"] in (
                "llm_unavailable", "llm_circuit_open")
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0]
    assert process.returncode in (0, 130), output  # uvicorn re-raises Ctrl-C: 128 + SIGINT
    assert "NO API KEY" in output and "Traceback" not in output
