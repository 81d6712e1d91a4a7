"""The options the batch commands share to run on Ray (`profile build --engine ray`,
`recommend --all`) and their checks. The LLM servers the workers call are found (or started)
by :func:`tastelens.agent.jobs.servers.worker_settings`, given the ``--replicas`` URLs.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

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
