"""`tastelens serve`: run the vLLM server (LoRA enabled) in the foreground until Ctrl-C."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from tastelens.cli.common import console, settings_from
from tastelens.errors import ConfigError
from tastelens.settings import LLMSettings


def parse_adapters(values: list[str]) -> dict[str, Path]:
    """``name=path`` pairs from repeated --adapter options."""
    adapters: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--adapter {value!r}: expected name=path (a peft adapter folder)")
        adapters[name.strip()] = Path(path.strip()).expanduser()
    return adapters


def serve(
    ctx: typer.Context,
    port: Annotated[Optional[int], typer.Option(
        "--port", help="Port to listen on (default: settings llm.port).")] = None,
    adapter: Annotated[Optional[list[str]], typer.Option(
        "--adapter", help="LoRA adapter to serve as name=path; repeatable. Requests pick it "
                          "by using the name as the model.")] = None,
    model: Annotated[Optional[str], typer.Option(
        "--model", help="Checkpoint: 'smollm2-135m-instruct' (default, prepared on first "
                        "use), a local folder or a cached Hugging Face id.")] = None,
    max_model_len: Annotated[Optional[int], typer.Option(
        "--max-model-len", help="Context length to allocate for.")] = None,
) -> None:
    """Start the vLLM OpenAI-compatible server in the foreground; Ctrl-C stops it."""
    from tastelens.llm.errors import LLMUnavailableError
    from tastelens.llm.models import resolve_model_path
    from tastelens.llm.vllm_server import VLLMServer

    settings = settings_from(ctx)
    overrides: dict[str, Any] = {"port": port, "model": model, "max_model_len": max_model_len}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if adapter:
        overrides["adapters"] = {**settings.llm.adapters, **parse_adapters(adapter)}
    try:
        llm = LLMSettings.model_validate({**settings.llm.model_dump(), **overrides})
    except ValueError as exc:
        raise ConfigError(f"invalid serve option: {exc}") from exc
    settings = settings.model_copy(update={"llm": llm})

    with console.status("preparing the model checkpoint …"):
        model_path = resolve_model_path(settings, prepare_if_missing=True)
    server = VLLMServer(settings)
    # SIGTERM (e.g. from a process manager) must stop the server too, like Ctrl-C.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.start()
        with console.status(f"starting vLLM on {model_path} (log: {server.log_path}) …"):
            seconds = server.wait_healthy()
        console.print(f"vLLM serves [bold]{server.served_name}[/] at [bold]{server.base_url}[/] "
                      f"(ready in {seconds:.0f} s)", soft_wrap=True, highlight=False)
        for name, path in server.adapters.items():
            console.print(f"  adapter {name}: {path}", highlight=False, soft_wrap=True)
        console.print(f"  other commands reuse it on port {server.port}; elsewhere set "
                      f"TASTELENS_LLM__BASE_URL={server.base_url}\n  log: {server.log_path}\n"
                      "  Ctrl-C to stop", highlight=False, soft_wrap=True)
        while server.running:
            time.sleep(1.0)
        raise LLMUnavailableError(f"the vLLM server exited unexpectedly; log {server.log_path}:"
                                  f"\n{server.log_tail()}")
    except KeyboardInterrupt:
        console.print("stopping the vLLM server …")
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
