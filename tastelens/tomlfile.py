"""Read the TOML config files of runs (eval, fine-tuning data, training)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from tastelens.errors import ConfigError


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The parsed table of ``path``; a missing file or bad TOML is a ConfigError naming
    ``what`` (e.g. "eval config") and the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
