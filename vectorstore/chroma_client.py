"""Opening Chroma (embedded or a `chroma run` server) and naming its collections.

Two rules every caller relies on:

- Chroma never embeds anything itself. Its default embedding function downloads a model,
  so collections are always opened with ``embedding_function=None`` and every add/query
  passes vectors computed by a :class:`~tastelens.vectorstore.encoders.TextEncoder`.
- Collections use cosine space, so ``similarity = 1 - distance``.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

from tastelens.errors import VectorIndexError

if TYPE_CHECKING:
    from chromadb.api import ClientAPI

    from tastelens.config.settings import Settings

#: Passed to every collection we create: cosine HNSW, no server-side embedding.
COLLECTION_CONFIGURATION: dict[str, Any] = {"hnsw": {"space": "cosine"}}

_NAME_MAX = 512
_BAD_CHARS = re.compile(r"[^a-zA-Z0-9._-]+")
_IPV4 = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")


def _chroma_settings() -> Any:
    from chromadb.config import Settings as ChromaConfig

    return ChromaConfig(anonymized_telemetry=False)


def open_client(settings: Settings) -> ClientAPI:
    """A Chroma client for ``settings.chroma``: embedded store or HTTP server.

    Raises :class:`VectorIndexError` with the command to start a server when mode is 'http'
    and nothing answers at host:port.
    """
    import chromadb

    cfg = settings.chroma
    if cfg.mode == "embedded":
        path = settings.chroma_path
        try:
            path.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
        except OSError as exc:
            raise VectorIndexError(f"cannot open the Chroma store at {path}: {exc}; "
                              "set chroma.path to a writable folder") from exc
    url = f"http://{cfg.host}:{cfg.port}"
    try:
        client = chromadb.HttpClient(host=cfg.host, port=cfg.port, settings=_chroma_settings())
        client.heartbeat()
    except Exception as exc:  # chromadb raises ValueError / httpx errors here
        raise VectorIndexError(
            f"no Chroma server at {url} — start one with "
            f"`chroma run --path DIR --port {cfg.port}` or set chroma.mode=embedded "
            f"({type(exc).__name__}: {exc})") from exc
    return client


def sanitise_name(raw: str) -> str:
    """Make ``raw`` a valid Chroma collection name, deterministically.

    Chroma accepts 3–512 characters of ``[a-zA-Z0-9._-]`` starting and ending
    alphanumeric, no ``..``, not an IPv4 address. Anything else is replaced by ``-``;
    names that had to be shortened get a hash suffix so distinct inputs stay distinct.
    """
    name = _BAD_CHARS.sub("-", raw.strip())
    name = re.sub(r"\.{2,}", ".", name)
    name = re.sub(r"-{2,}", "-", name)
    name = re.sub(r"^[^a-zA-Z0-9]+|[^a-zA-Z0-9]+$", "", name)
    digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:10]
    if len(name) > _NAME_MAX:
        name = name[: _NAME_MAX - 11].rstrip("._-") + "-" + digest
    if len(name) < 3 or _IPV4.match(name):
        name = f"c-{name}-{digest}" if name else f"c-{digest}"
    return name


def model_slug(model_id: str) -> str:
    """A short, stable tag for an encoder id: its last path component, lower-cased.

    ``sentence-transformers/all-MiniLM-L6-v2`` -> ``all-minilm-l6-v2``. A local folder
    path also gets a hash of the full path, so two folders named 'model' do not share a
    collection.
    """
    stripped = model_id.rstrip("/\\")
    last = re.split(r"[/\\]", stripped)[-1] or stripped
    slug = sanitise_name(last.lower())
    if stripped.startswith(("/", ".", "~")) or "\\" in stripped or stripped.count("/") > 1:
        slug += "-" + hashlib.sha256(stripped.encode("utf-8")).hexdigest()[:8]
    return slug


def collection_name(prefix: str, dataset: str, kind: str, tag: str) -> str:
    """``<prefix>-<dataset>-<kind>-<tag>``, sanitised for Chroma."""
    return sanitise_name(f"{prefix}-{dataset}-{kind}-{tag}")
