"""`tastelens serve`: run the vLLM server (LoRA enabled) in the foreground until Ctrl-C."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from tastelens.cli.common import console, settings_from
from tastelens.config.settings import LLMSettings
from tastelens.errors import ConfigError


def parse_adapters(values: list[str], option: str = "--adapter",
                   what: str = "a peft adapter folder") -> dict[str, Path]:
    """``name=path`` pairs from repeated --adapter (or --merged) options."""
    adapters: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"{option} {value!r}: expected name=path ({what})")
        adapters[name.strip()] = Path(path.strip()).expanduser()
    return adapters


def serve(
    ctx: typer.Context,
    port: Annotated[Optional[int], typer.Option(
        "--port", help="Port to listen on (default: settings llm.port).")] = None,
    adapter: Annotated[Optional[list[str]], typer.Option(
        "--adapter", help="LoRA adapter to serve as name=path; repeatable. Requests pick it "
                          "by using the name as the model.")] = None,
    merged: Annotated[Optional[list[str]], typer.Option(
        "--merged", help="Merged checkpoint (`tastelens finetune merge`) to serve as "
                         "name=path, on its own server on the next port; repeatable (adds to "
                         "llm.merged). Commands with the same llm.merged reuse it.")] = None,
    model: Annotated[Optional[str], typer.Option(
        "--model", help="Checkpoint: 'smollm2-135m-instruct' (default, prepared on first "
                        "use), a local folder or a cached Hugging Face id.")] = None,
    max_model_len: Annotated[Optional[int], typer.Option(
        "--max-model-len", help="Context length to allocate for.")] = None,
) -> None:
    """Start the vLLM OpenAI-compatible server in the foreground, and one more for each
    merged checkpoint (llm.merged, --merged) on the ports after it; Ctrl-C stops them."""
    from tastelens.llm.errors import LLMUnavailableError
    from tastelens.llm.models import resolve_model_path
    from tastelens.llm.vllm_server import VLLMServer, merged_server_settings

    settings = settings_from(ctx)
    overrides: dict[str, Any] = {"port": port, "model": model, "max_model_len": max_model_len}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if adapter:
        overrides["adapters"] = {**settings.llm.adapters, **parse_adapters(adapter)}
    if merged:
        overrides["merged"] = {**settings.llm.merged, **parse_adapters(
            merged, "--merged", "a folder written by `tastelens finetune merge`")}
    try:
        llm = LLMSettings.model_validate({**settings.llm.model_dump(), **overrides})
    except ValueError as exc:
        raise ConfigError(f"invalid serve option: {exc}") from exc
    settings = settings.model_copy(update={"llm": llm})

    # the same servers, on the same ports, as the vllm backend would start for these settings
    servers = [VLLMServer(settings)] + [
        VLLMServer(own) for own in merged_server_settings(settings).values()]
    with console.status("preparing the model checkpoint …"):
        model_path = resolve_model_path(settings, prepare_if_missing=True)
    # SIGTERM (e.g. from a process manager) must stop the servers too, like Ctrl-C.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for server in servers:
            server.start()
        for server in servers:
            with console.status(f"starting vLLM on {server.settings.llm.model or model_path} "
                                f"(log: {server.log_path}) …"):
                seconds = server.wait_healthy()
            console.print(f"vLLM serves [bold]{server.served_name}[/] at "
                          f"[bold]{server.base_url}[/] (ready in {seconds:.0f} s)",
                          soft_wrap=True, highlight=False)
            for name, path in server.adapters.items():
                console.print(f"  adapter {name}: {path}", highlight=False, soft_wrap=True)
        base = servers[0]
        console.print(f"  other commands reuse it on port {base.port}; elsewhere set "
                      f"TASTELENS_LLM__BASE_URL={base.base_url}\n  log: {base.log_path}\n"
                      "  Ctrl-C to stop", highlight=False, soft_wrap=True)
        while all(server.running for server in servers):
            time.sleep(1.0)
        dead = next(server for server in servers if not server.running)
        raise LLMUnavailableError(f"the vLLM server on port {dead.port} exited unexpectedly; "
                                  f"log {dead.log_path}:\n{dead.log_tail()}")
    except KeyboardInterrupt:
        console.print("stopping the vLLM server …")
    finally:
        for server in servers:
            server.stop()
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
