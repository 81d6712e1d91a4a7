"""Fixtures for the vector store tests: Chroma backends and a counting fake encoder.

``chroma_server`` starts a REAL `chroma run` server (the CLI installed next to the test
interpreter) on a free port, waits for its heartbeat and kills it at teardown.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tastelens.config.settings import ChromaSettings, Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chroma_cli() -> str | None:
    beside = Path(sys.executable).parent / "chroma"
    return str(beside) if beside.is_file() else shutil.which("chroma")


@dataclass(frozen=True)
class ChromaServer:
    host: str
    port: int
    path: Path

    def settings(self, cache_dir: Path) -> Settings:
        return Settings(cache_dir=cache_dir,
                        chroma=ChromaSettings(mode="http", host=self.host, port=self.port))


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    cli = chroma_cli()
    if cli is None:
        pytest.skip("the `chroma` CLI is not installed next to the test interpreter")
    root = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    log_path = root / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [cli, "run", "--path", str(root / "db"), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api/v2/heartbeat"
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"chroma run exited with {proc.returncode}:\n"
                            f"{log_path.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"chroma run gave no heartbeat at {url} within 60 s:\n"
                            f"{log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        yield ChromaServer("127.0.0.1", port, root / "db")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def unique_name() -> str:
    """A fresh collection name, so tests sharing one server never see each other's data."""
    return f"test-{uuid.uuid4().hex[:12]}"
