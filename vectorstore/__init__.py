"""Vector store: text encoders and the Chroma item / behaviour indexes.

Names are imported lazily so ``import tastelens.vectorstore`` stays cheap (chromadb and
sentence-transformers take seconds to import).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TextEncoder": "encoders",
    "SentenceTransformerEncoder": "encoders",
    "HashingEncoder": "encoders",
    "encoder_from_settings": "encoders",
    "open_client": "chroma_client",
    "collection_name": "chroma_client",
    "sanitise_name": "chroma_client",
    "VectorCollection": "collection",
    "BehaviourIndex": "collection",
    "ItemIndex": "item_index",
    "BuildReport": "item_index",
    "item_filter": "item_index",
    "EncoderEmbeddings": "langchain_adapter",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
