"""What the batch commands share to run on Ray (`profile build --engine ray`,
`recommend --all`): the options, and the LLM servers the workers call.

Workers never start a vLLM server of their own: they call N running OpenAI-compatible
replicas (backend 'replicas', least loaded first). The URLs come from ``--replicas``, else
settings ``llm.replicas``, else ``llm.base_url``; with none of them and backend 'vllm', one
server is started here (or the one already on ``llm.host:llm.port`` reused) for the job's
length, so the command also works on one machine. Every replica is checked before the job
starts: an unreachable one is an error naming it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Optional

import typer

from tastelens.config.settings import Settings
from tastelens.errors import ConfigError

ENGINES = ("local", "ray")

EngineOption = Annotated[str, typer.Option(
    "--engine", help="local: this process; ray: a Ray Data pipeline on a Ray cluster.")]
AddressOption = Annotated[Optional[str], typer.Option(
    "--address", help="Ray cluster to join (HOST:PORT of `ray start --head`, or 'auto'); "
                      "default: a Ray instance started for the job on this machine.")]
ReplicasOption = Annotated[Optional[str], typer.Option(
    "--replicas", help="Comma-separated base URLs (…/v1) of running `tastelens serve` "
                       "servers the workers share (default: settings llm.replicas, else "
                       "llm.base_url, else one server started here).")]
WorkersOption = Annotated[int, typer.Option(
    "--workers", min=1, help="Ray workers (actors), each with its own LLM client.")]


def check_engine(engine: str, address: str | None) -> None:
    if engine not in ENGINES:
        raise ConfigError(f"--engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if address is not None and engine != "ray":
        raise ConfigError("--address is for --engine ray")


def parse_replicas(text: str | None) -> list[str]:
    if text is None:
        return []
    urls = [u.strip() for u in text.split(",") if u.strip()]
    if not urls:
        raise ConfigError(f"--replicas {text!r}: expected comma-separated base URLs, e.g. "
                          "http://gpu1:8100/v1,http://gpu2:8100/v1")
    return urls


@contextmanager
def worker_settings(settings: Settings, replicas: str | None) -> Iterator[Settings]:
    """``settings`` whose LLM is backend 'replicas' over the job's servers, all checked."""
    from tastelens.llm.replicas import ReplicaBackend
    from tastelens.llm.vllm_server import VLLMBackend

    llm = settings.llm
    urls = parse_replicas(replicas) or list(llm.replicas) or (
        [llm.base_url] if llm.base_url else [])
    if not urls and llm.backend == "fake":
        yield settings  # no server at all: every worker falls back, flagged (a dry run)
        return
    managed: VLLMBackend | None = None
    if not urls:
        if llm.backend != "vllm":
            raise ConfigError(f"llm.backend {llm.backend!r} with --engine ray needs running "
                              "servers: --replicas URL,URL (or settings llm.replicas)")
        managed = VLLMBackend.from_settings(settings).start()
        urls = [managed.base_url]
    try:
        shared = settings.model_copy(update={"llm": llm.model_copy(
            update={"backend": "replicas", "replicas": urls})})
        with ReplicaBackend.from_settings(shared) as probe:
            probe.check()
        yield shared
    finally:
        if managed is not None:
            managed.close()
