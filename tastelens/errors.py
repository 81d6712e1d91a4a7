"""Named exceptions whose messages say what is wrong and where.

The CLI prints any `TastelensError` without a traceback and exits non-zero, so every
message here must be actionable on its own: name the file, line, field or id, and say
what was expected.
"""

from __future__ import annotations

from pathlib import Path


class TastelensError(Exception):
    """Base class for errors a user can act on."""


class DataFormatError(TastelensError):
    """A data file is malformed: the message names the file, line and field."""

    def __init__(self, path: Path | str, message: str, *, line: int | None = None,
                 field: str | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.field = field
        where = str(self.path)
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {message}")


class DatasetNotFoundError(TastelensError):
    """No dataset at the given path, or the folder's format is not recognised."""


class DownloadError(TastelensError):
    """A dataset could not be downloaded or failed verification."""


class ConfigError(TastelensError):
    """A run config (TOML) or a settings value is invalid."""


class InvalidRequestError(TastelensError):
    """A request (CLI options or an API body) asks for something that cannot be answered as
    given, e.g. an unknown genre or a year range that ends before it starts."""


class UnknownComponentError(TastelensError):
    """A registry was asked for a name it does not hold."""


class VectorIndexError(TastelensError):
    """The vector index is missing, stale or unreachable."""


class UnknownIdError(TastelensError):
    """A user or item id does not exist in the dataset."""
