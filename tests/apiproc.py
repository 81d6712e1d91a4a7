"""`tastelens api` as a real process for the tests: a settings file, a dataset folder with a
'hashing' item index built beforehand, the process with its log, /health polled until it
answers, and its process tree (psutil) for the tests that check no child outlives it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tastelens.config.settings import load_settings
from tastelens.data import load_dataset
from tastelens.data.dataset import Dataset
from tastelens.llm.vllm_server import free_port
from tastelens.vectorstore.encoders import HashingEncoder
from tastelens.vectorstore.item_index import ItemIndex

from .conftest import write_movielens

TASTELENS = str(Path(sys.executable).with_name("tastelens"))
QUICK_PIPELINE = ('[embedder]\nmodel = "hashing"\n'
                  '[recommend]\nprofile_source = "facts"\nk = 8\n'
                  '[recommend.rerank]\nmode = "none"\n[recommend.collaborative]\nenabled = false\n')
"""Settings for a pipeline that starts in seconds and never asks the LLM to rank."""


def refused_llm() -> str:
    """TOML for an LLM nobody serves (a loopback port nobody listens on): the chat reads with
    its rules and answers without waiting."""
    return f'[llm]\nbackend = "openai"\nbase_url = "http://127.0.0.1:{free_port()}/v1"\n'


def catalog(root: Path, dataset: Dataset | None = None, *, folder: Path | None = None,
            settings: str = QUICK_PIPELINE + refused_llm()) -> tuple[Path, Path]:
    """(data folder, cache dir) under ``root``: ``dataset`` written as MovieLens (or the
    existing ``folder``), ``settings`` as ``root/tastelens.toml`` and the 'hashing' index."""
    root.mkdir(parents=True, exist_ok=True)
    if folder is None:
        assert dataset is not None
        folder = write_movielens(dataset, root / f"ml-{dataset.name}", tags=True)
    (root / "tastelens.toml").write_text(settings)
    cache = root / "cache"
    config = load_settings(root / "tastelens.toml", cache_dir=cache)
    data = load_dataset(folder)
    ItemIndex.for_dataset(config, data.name, HashingEncoder()).build(data.items.values(),
                                                                     progress=False)
    return folder, cache


@dataclass
class ApiProcess:
    """One `tastelens api` process; :meth:`stop` signals it and waits."""

    process: subprocess.Popen[str]
    base: str
    log: Path
    seen: dict[int, float] = field(default_factory=dict)
    """Every descendant process seen so far: pid -> create time."""

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_healthy(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            self.watch()
            assert self.process.poll() is None, self.output()[-4000:]
            assert time.monotonic() < deadline, (f"tastelens api did not answer within "
                                                 f"{timeout_s:g} s:\n{self.output()[-4000:]}")
            try:
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)

    def watch(self) -> list:
        """Record (and return) the process's descendants now."""
        import psutil

        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for child in children:
            try:
                self.seen.setdefault(child.pid, child.create_time())
            except psutil.NoSuchProcess:
                pass
        return children

    def survivors(self) -> list[str]:
        """The descendants seen that still run (the same pid and start time)."""
        import psutil

        alive = []
        for pid, created in self.seen.items():
            try:
                proc = psutil.Process(pid)
                if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{pid}: {' '.join(proc.cmdline())[:200]}")
            except psutil.NoSuchProcess:
                pass
        return alive

    def stop(self, signum: int = signal.SIGINT, timeout_s: float = 90) -> int:
        if self.process.poll() is None:
            self.watch()
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
            raise

    def kill_survivors(self) -> None:
        """Clean-up after a failed test: never leave a process behind."""
        import psutil

        for pid, created in self.seen.items():
            try:
                proc = psutil.Process(pid)
                if proc.create_time() == created:
                    proc.kill()
            except psutil.NoSuchProcess:
                pass


def start_api(root: Path, folder: Path, cache: Path, *, env: dict[str, str] | None = None,
              args: tuple[str, ...] = ()) -> ApiProcess:
    """`tastelens api` on a free loopback port, in ``root`` (its tastelens.toml applies)."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TASTELENS_")}
    log = root / f"api-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [TASTELENS, "--cache-dir", str(cache), "api", "--port", str(port), "--data",
             str(folder), *args],
            cwd=root, env={**clean, **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
            text=True)
    return ApiProcess(process, f"http://127.0.0.1:{port}", log)


def issue_token(root: Path, cache: Path, folder: Path, user: str) -> str:
    """`tastelens token issue --user USER` as the operator runs it; returns the token."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TASTELENS_")}
    done = subprocess.run([TASTELENS, "--cache-dir", str(cache), "token", "issue", "--user",
                           user, "--data", str(folder)], cwd=root, env=clean,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()[-1]


def run_cli(root: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TASTELENS_")}
    return subprocess.run([TASTELENS, "--cache-dir", str(cache), *args], cwd=root, env=clean,
                          capture_output=True, text=True, timeout=120)
