"""The LLM servers a batch job's workers call (`profile build --engine ray`,
`recommend --all --engine ray`).

Workers never start a vLLM server of their own: they call N running OpenAI-compatible
replicas (backend 'replicas', least loaded first). The URLs are the job's own (the CLI's
``--replicas``), else settings ``llm.replicas``, else ``llm.base_url``; with none of them and
backend 'vllm', one server is started here (or the one already on ``llm.host:llm.port``
reused) for the job's length, so a job also works on one machine. Every replica is checked
before the job starts: an unreachable one is an error naming it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from tastelens.config.settings import Settings
from tastelens.errors import ConfigError


@contextmanager
def worker_settings(settings: Settings, replicas: Sequence[str] = ()) -> Iterator[Settings]:
    """``settings`` whose LLM is backend 'replicas' over the job's servers, all checked;
    ``replicas``: the job's base URLs (…/v1), first choice over the settings'."""
    from tastelens.llm.replicas import ReplicaBackend
    from tastelens.llm.vllm_server import VLLMBackend

    llm = settings.llm
    urls = list(replicas) or list(llm.replicas) or ([llm.base_url] if llm.base_url else [])
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
