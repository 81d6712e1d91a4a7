"""A user's own edits to their taste profile: :class:`TasteOverrides`, changed by
:class:`TasteEdit`.

A profile is computed (from data, or by the model); the user may disagree with it. Their
edits are kept apart from the computed profile, in the profile store's ``overrides`` table
(:meth:`tastelens.profile_store.ProfileStore.edit_overrides`), one row per version, so that:

- a rebuilt profile (``tastelens profile build`` writes a new profile version) keeps them;
- every edit is a new version: ``expected_version`` makes an edit from a stale page fail
  (409) instead of silently undoing another edit.

The edits, and how the pipeline honours them
(:func:`tastelens.agent.profile.overrides.apply_overrides`):

============  ====================================================================
``remove``    drop a liked interest: no retrieval query, no ranking feature and no
              explanation uses it (``restore`` undoes it)
``pin``       keep a liked interest at full weight, asked first, even when a rebuilt
              profile no longer has it (a snapshot of it is stored; ``unpin`` undoes it)
``dislike``   a dislike in the user's words: a catalog category ("horror") is left
              out of lists unless a request asks for it; any other text ("slow
              dramas") demotes what it finds and is a ranking feature
              (``undislike`` undoes it)
============  ====================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from tastelens.errors import InvalidRequestError
from tastelens.schemas import Interest

MAX_OVERRIDES = 50
"""Most labels in each list of one user's overrides (removed, pinned, dislikes)."""

TasteAction = Literal["remove", "restore", "pin", "unpin", "dislike", "undislike"]


def _valid_text(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"not valid Unicode text (a lone surrogate at character {exc.start})"
                         ) from None
    if not value.strip():
        raise ValueError("must not be blank")
    return " ".join(value.split())


Label = Annotated[str, StringConstraints(min_length=1, max_length=80),
                  AfterValidator(_valid_text)]


class TasteEdit(BaseModel):
    """One edit of a user's taste (the body of ``POST /v1/users/{id}/taste``)."""

    model_config = ConfigDict(extra="forbid")

    action: TasteAction = Field(description="remove | restore | pin | unpin | dislike | "
                                            "undislike (see tastelens.taste).")
    label: Label = Field(description="The interest's label (remove, pin and their undos), or "
                                     "the dislike in the user's words, e.g. 'horror'.")
    expected_version: int | None = Field(
        default=None, ge=0, description="The overrides version the edit was made on; when "
                                        "given and not the latest, the edit is refused (409).")


class TasteOverrides(BaseModel):
    """One user's edits, versioned (version 0: none yet)."""

    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1)
    version: int = Field(default=0, ge=0, description="Increases by one with every edit.")
    updated_at: datetime | None = None
    removed: list[str] = Field(default_factory=list,
                               description="Liked interests the user removed (labels).")
    pinned: list[Interest] = Field(
        default_factory=list, description="Liked interests the user pinned, as they were "
                                          "when pinned.")
    dislikes: list[str] = Field(default_factory=list,
                                description="Dislikes the user added, in their words (a "
                                            "catalog category is spelled as the catalog "
                                            "spells it).")

    def is_empty(self) -> bool:
        return not (self.removed or self.pinned or self.dislikes)

    def edited(self, edit: TasteEdit, interests: Sequence[Interest],
               categories: Iterable[str]) -> TasteOverrides:
        """A copy with ``edit`` applied (version and time are the store's to set).

        ``interests`` are the liked interests the user sees (their profile with these
        overrides applied, plus the removed ones for ``restore``); ``categories`` the
        catalog's, so "horror" is stored as "Horror". Raises :class:`InvalidRequestError`
        naming the label when it is not one the action can apply to.
        """
        label, key = edit.label, edit.label.casefold()
        out = self.model_copy(deep=True)
        if edit.action == "remove":
            found = _find(interests, key, edit)
            out.removed = _add(out.removed, found.label)
            out.pinned = [p for p in out.pinned if p.label.casefold() != key]
        elif edit.action == "restore":
            out.removed = _drop(out.removed, key, edit, "removed interests")
        elif edit.action == "pin":
            found = _find(interests, key, edit)
            snapshot = found.model_copy(update={"pinned": False})
            out.pinned = [p for p in out.pinned if p.label.casefold() != key] + [snapshot]
            out.removed = [r for r in out.removed if r.casefold() != key]
        elif edit.action == "unpin":
            if not any(p.label.casefold() == key for p in out.pinned):
                pinned = _names(p.label for p in out.pinned)
                raise InvalidRequestError(f"label: {label!r} is not pinned; pinned: {pinned}")
            out.pinned = [p for p in out.pinned if p.label.casefold() != key]
        elif edit.action == "dislike":
            canonical = {c.casefold(): c for c in categories}
            out.dislikes = _add(out.dislikes, canonical.get(key, label))
        else:  # undislike
            out.dislikes = _drop(out.dislikes, key, edit, "dislikes you added")
        for name in ("removed", "pinned", "dislikes"):
            if len(getattr(out, name)) > MAX_OVERRIDES:
                raise InvalidRequestError(f"label: at most {MAX_OVERRIDES} {name} per user")
        return out


def _names(labels: Iterable[str]) -> str:
    shown = [repr(x) for x in labels]
    return ", ".join(shown[:12]) + (" …" if len(shown) > 12 else "") if shown else "none"


def _find(interests: Sequence[Interest], key: str, edit: TasteEdit) -> Interest:
    for interest in interests:
        if interest.polarity == "like" and interest.label.casefold() == key:
            return interest
    raise InvalidRequestError(
        f"label: {edit.label!r} is not one of the user's interests, so it cannot be "
        f"{'removed' if edit.action == 'remove' else 'pinned'}; the interests are "
        f"{_names(i.label for i in interests if i.polarity == 'like')}")


def _add(labels: list[str], label: str) -> list[str]:
    return labels if label.casefold() in {x.casefold() for x in labels} else [*labels, label]


def _drop(labels: list[str], key: str, edit: TasteEdit, what: str) -> list[str]:
    kept = [x for x in labels if x.casefold() != key]
    if len(kept) == len(labels):
        raise InvalidRequestError(f"label: {edit.label!r} is not among the {what}: "
                                  f"{_names(labels)}")
    return kept
