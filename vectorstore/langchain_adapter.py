"""A LangChain ``Embeddings`` over a tastelens :class:`TextEncoder`.

Lets LangChain vector stores and retrievers share our encoder (and therefore the exact
vectors of an :class:`~tastelens.vectorstore.item_index.ItemIndex`).
"""

from __future__ import annotations

from langchain_core.embeddings import Embeddings

from tastelens.vectorstore.encoders import TextEncoder


class EncoderEmbeddings(Embeddings):
    """Adapter: ``embed_documents`` / ``embed_query`` call ``encoder.encode``."""

    def __init__(self, encoder: TextEncoder) -> None:
        self.encoder = encoder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encoder.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encoder.encode([text])[0].tolist()
