"""`tastelens api`: serve the HTTP API (FastAPI under uvicorn) until Ctrl-C.

Start-up checks the cheap things first, so a mistake costs a second, not a model load: the
auth rule (no key only on a loopback host), then the port — bound right away and handed to
uvicorn, so nothing can take it while the pipeline loads — then the data folder and the
pipeline. Any of them failing is one line and exit status 1, no traceback.
"""

from __future__ import annotations

import signal
import socket
import threading
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from tastelens.cli.common import DataOption, SideInfoOption, console, settings_with
from tastelens.config.settings import Settings
from tastelens.errors import ConfigError


def bind_port(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not listening yet); a ConfigError when the port
    is taken or the host is not an address of this machine."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48):  # EADDRINUSE on Linux, macOS
            raise ConfigError(f"port {port} on {host} is already in use; choose another with "
                              "--port (settings api.port)") from None
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); check "
                          "--host / --port (settings api.host, api.port)") from None
    return sock


def serve(server: Any, sock: socket.socket) -> None:
    """``server.run`` on ``sock``. uvicorn shuts down gracefully on SIGINT and SIGTERM and then
    re-raises them (the command's handlers unwind it from there); SIGHUP — the terminal went
    away — gets the same graceful shutdown here, then ends the command as SIGHUP does."""
    hangups: list[int] = []

    def hang_up(signum: int, frame: object) -> None:
        hangups.append(signum)
        server.should_exit = True

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGHUP, hang_up) if main else None
    try:
        server.run(sockets=[sock])
    finally:
        if previous is not None:
            signal.signal(signal.SIGHUP, previous)
    if hangups:
        raise SystemExit(128 + signal.SIGHUP)


def build_pipeline(settings: Settings, data_path: Path) -> Any:
    """The pipeline the API serves: dataset, encoder and LLM backend loaded and warmed up."""
    from tastelens.agent.pipeline import RecommendPipeline
    from tastelens.data import load_dataset

    dataset = load_dataset(data_path, side_info=settings.side_info)
    pipeline = RecommendPipeline.from_settings(settings, dataset, missing_ranker=True)
    for notice in pipeline.notices:
        console.print(f"[yellow]note:[/] {notice}")
    try:  # the encoder load and the LLM server's start-up now, not in the first request
        pipeline.warm_up()
    except BaseException:
        pipeline.close()
        raise
    return pipeline


def api(
    ctx: typer.Context,
    host: Annotated[Optional[str], typer.Option(
        "--host", help="Interface to bind (default: settings api.host, 127.0.0.1). Any "
                       "non-loopback host needs settings api.api_key.")] = None,
    port: Annotated[Optional[int], typer.Option(
        "--port", min=1, max=65535, help="Port (default: settings api.port, 8080).")] = None,
    data: DataOption = None,
    side_info: SideInfoOption = None,
) -> None:
    """Serve /v1/recommend, /v1/chat, /v1/users/{id}/profile and /health (docs at /docs).

    The pipeline is built once at start-up: the dataset, the embedder, and the LLM backend
    (the vLLM server on settings llm.port is reused when it runs, else started, and then
    stopped when this command ends: Ctrl-C, SIGTERM, SIGHUP or a start-up error)."""
    import uvicorn

    from tastelens.api.app import api_key_of, create_app
    from tastelens.data import resolve_data_path

    settings = settings_with(ctx, side_info)
    updates = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = settings.model_copy(update={"api": settings.api.model_copy(update=updates)})
    key = api_key_of(settings.api)  # the auth rule first: no key only on loopback
    sock = bind_port(settings.api.host, settings.api.port)
    try:
        data_path = resolve_data_path(settings, data)
        with console.status(f"loading the pipeline for {data_path} …"):
            pipeline = build_pipeline(settings, data_path)
        try:
            app = create_app(settings, pipeline=pipeline)
            users = ("any user's data open to every local process (api.open_user_data)"
                     if key is None and settings.api.open_user_data else
                     "a user's data needs their token (`tastelens token issue`)")
            auth = (f"API key or user token required; {users}" if key is not None else
                    f"NO API KEY: anonymous answers open to every local process, {users}; "
                    "set api.api_key to require one")
            console.print(f"tastelens API on http://{settings.api.host}:{settings.api.port} "
                          f"(web page /, docs /docs; {auth}; data {data_path}; LLM deadline "
                          f"{settings.llm.interactive_deadline_s:g} s)",
                          highlight=False, soft_wrap=True)
            server = uvicorn.Server(uvicorn.Config(app, host=settings.api.host,
                                                   port=settings.api.port, log_level="info"))
            serve(server, sock)
        finally:
            pipeline.close()
    finally:
        sock.close()
