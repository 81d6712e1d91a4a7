"""`tastelens api`: serve the HTTP API (FastAPI under uvicorn) until Ctrl-C."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from tastelens.cli.common import DataOption, console, settings_from


def api(
    ctx: typer.Context,
    host: Annotated[Optional[str], typer.Option(
        "--host", help="Interface to bind (default: settings api.host, 127.0.0.1).")] = None,
    port: Annotated[Optional[int], typer.Option(
        "--port", min=1, max=65535, help="Port (default: settings api.port, 8080).")] = None,
    data: DataOption = None,
) -> None:
    """Serve /v1/recommend, /v1/chat, /v1/users/{id}/profile and /health (docs at /docs).

    The pipeline is built once at start-up: the dataset, the embedder, and the LLM backend
    (the vLLM server on settings llm.port is reused when it runs, else started, and then
    stopped at shutdown)."""
    import uvicorn

    from tastelens.api.app import create_app
    from tastelens.data import resolve_data_path

    settings = settings_from(ctx)
    updates = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = settings.model_copy(update={"api": settings.api.model_copy(update=updates)})
    data_path = resolve_data_path(settings, data)

    def build_pipeline():  # noqa: ANN202 - runs in the app's lifespan, at start-up
        from tastelens.agent.pipeline import RecommendPipeline
        from tastelens.data import load_dataset

        dataset = load_dataset(data_path)
        pipeline = RecommendPipeline.from_settings(settings, dataset)
        try:  # the encoder load and the LLM server's start-up now, not in the first request
            pipeline.warm_up()
        except BaseException:
            pipeline.close()
            raise
        return pipeline

    app = create_app(settings, pipeline_factory=build_pipeline)
    auth = "API key required" if settings.api.api_key else "no API key (open)"
    console.print(f"tastelens API on http://{settings.api.host}:{settings.api.port} "
                  f"(docs /docs; {auth}; data {data_path})", highlight=False, soft_wrap=True)
    uvicorn.run(app, host=settings.api.host, port=settings.api.port, log_level="info")
