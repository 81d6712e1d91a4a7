"""Config files and their errors: the TOML run configs (eval, fine-tuning data, training), JSON
objects beside models and adapters, and pydantic validation errors as one line per key.

Every config model derives from :class:`ConfigSection` (unknown keys are errors), and every
validation problem reaches the user through :func:`format_validation_error`, so a mistake in
any file reads the same: ``<file>: key 'systems.2.type': <what is wrong>``.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from tastelens.errors import ConfigError

# A cross-field check runs on the whole model; its message starts with the key it is about.
_KEY_PREFIX = re.compile(r"^([a-z_][\w.]*): ")


class ConfigSection(BaseModel):
    """Base of every config model: a misspelt key is an error, not a silent default, and a
    key that moved (``moved``) is an error that names its new home."""

    model_config = ConfigDict(extra="forbid")
    moved: ClassVar[dict[str, str]] = {}
    """Keys this section no longer has -> where the setting lives now (relative to it)."""

    @model_validator(mode="before")
    @classmethod
    def _no_moved_keys(cls, data: Any) -> Any:
        if cls.moved and isinstance(data, dict):
            for old, new in cls.moved.items():
                if old in data:
                    raise ValueError(f"{old}: this key moved; set `{new}` in the same table "
                                     "instead")
        return data


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


def read_json_object(path: Path, where: str | None = None) -> dict[str, Any]:
    """The JSON object in ``path``; invalid JSON or another JSON value is a ConfigError that
    names the file (after ``where``, e.g. "<train config>: key 'data_dir'", when given)."""
    path = Path(path)
    lead = f"{where}: " if where else ""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{lead}{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{lead}{path} must hold a JSON object")
    return data


def validation_problems(exc: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, message) for each problem of ``exc``; keys start with ``prefix``."""
    problems = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        named = _KEY_PREFIX.match(msg)
        if named:  # "lora.r: …" from a check on the whole model (or a section of it)
            key, msg = ".".join(filter(None, [key, named.group(1)])), msg[named.end():]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not a field of this section)"
        problems.append((prefix + key if key else prefix.rstrip(".") or "<top level>", msg))
    return problems


def format_validation_error(exc: ValidationError, what: str,
                            source: Path | str | None = None, prefix: str = "") -> str:
    """``invalid <what>:`` and one ``<source>: key '<a.b.c>': <message>`` line per problem."""
    where = source or f"<{what}>"
    lines = [f"{where}: key {key!r}: {msg}" for key, msg in validation_problems(exc, prefix)]
    return f"invalid {what}:\n  " + "\n  ".join(lines)
