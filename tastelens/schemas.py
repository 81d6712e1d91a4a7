"""Domain types shared by every part of tastelens.

Ids are strings everywhere (MovieLens' integer ids become "1", "296", ...), so the
generic format and any later catalog can use whatever ids they have.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Item(BaseModel):
    """One catalog item with the text the embedder and the prompts see."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, description="Item id, unique in its catalog.")
    title: str = Field(min_length=1, description="Display title, e.g. 'Heat (1995)'.")
    year: int | None = Field(default=None, description="Release year when known.")
    categories: tuple[str, ...] = Field(
        default=(), description="Genres or categories, in the source's order.")
    tags: tuple[str, ...] = Field(
        default=(), description="Free-text tags (e.g. MovieLens tags.csv), most frequent first.")
    text: str | None = Field(
        default=None, description="Optional longer description from the source.")

    @field_validator("categories", "tags", mode="before")
    @classmethod
    def _drop_blanks(cls, value: object) -> object:
        if isinstance(value, (list, tuple)):
            return tuple(str(v).strip() for v in value if str(v).strip())
        return value

    def document(self, max_tags: int = 12) -> str:
        """The text that is embedded for retrieval: title, categories, tags, description."""
        parts = [self.title]
        if self.categories:
            parts.append("Genres: " + ", ".join(self.categories))
        if self.tags:
            parts.append("Tags: " + ", ".join(self.tags[:max_tags]))
        if self.text:
            parts.append(self.text)
        return ". ".join(parts)


class Interaction(BaseModel):
    """One user-item event. Every rating counts as an interaction."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user: str = Field(min_length=1)
    item: str = Field(min_length=1)
    rating: float | None = Field(default=None, description="Explicit rating when the source has one.")
    timestamp: int | None = Field(default=None, description="Unix seconds when known.")
