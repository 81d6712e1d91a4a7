"""The grouped profile prompt: the data mines the groups, the model names them.

The profiler's default prompt (``ProfilerConfig.prompt = "groups"``) shows the interests the
miner found (:func:`~tastelens.agent.profile.facts.mine_interests`) as numbered groups — each
with its kind, its descriptors and a few titles — and asks the model for one short label per
group and a summary, under a per-user guided-JSON schema whose ``labels`` object has exactly
the shown group ids as required keys. So the model cannot add, drop or re-ground an interest:
evidence, descriptors, weights and trends stay the data's.

Each label is then checked (:func:`check_label`): it must not be empty, generic, a title, a
copy of the instructions' example, a repeat, too long — and it must be supported by its
group's descriptors, evidence categories and decades
(:func:`~tastelens.agent.profile.grounding.is_supported`). A label that fails is replaced by
the group's data label (its descriptors), and the reason is counted.

Groups shown: up to ``max_groups`` liked ones — the strongest of each granularity first, then
by weight — and up to ``max_dislike_groups`` disliked ones that carry descriptors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from tastelens.agent.profile.grounding import is_supported
from tastelens.agent.profile.reply_schema import reply_object
from tastelens.config.pipeline import ReplyLimits
from tastelens.data.dataset import Dataset
from tastelens.data.titles import has_year, is_title
from tastelens.schemas import GRANULARITY_ORDER, Interest

GroupLabel = Annotated[str, Field(min_length=1, max_length=100)]


class GroupsReply(BaseModel):
    """The model's answer to the grouped prompt (read loosely: the profiler validates)."""

    model_config = ConfigDict(extra="forbid")

    labels: dict[Annotated[str, Field(pattern=r"^g[1-9][0-9]?$")], GroupLabel] = Field(
        default_factory=dict)
    summary: str = Field(default="", max_length=300)
    explore_next: list[Annotated[str, Field(min_length=2, max_length=60)]] = Field(
        default_factory=list, max_length=3)


@dataclass(frozen=True)
class Group:
    """One shown group: its prompt id and the mined interest it stands for."""

    short: str
    interest: Interest


def select_groups(likes: Sequence[Interest], dislikes: Sequence[Interest], max_groups: int,
                  max_dislike_groups: int) -> list[Group]:
    """The groups the prompt shows (see the module docstring), liked ones first."""
    chosen: list[Interest] = []
    for granularity in GRANULARITY_ORDER:  # every granularity the data found is shown
        best = max((i for i in likes if i.granularity == granularity),
                   key=lambda i: i.weight, default=None)
        if best is not None and len(chosen) < max_groups:
            chosen.append(best)
    rest = sorted((i for i in likes if all(i is not c for c in chosen)), key=lambda i: -i.weight)
    chosen += rest[: max(0, max_groups - len(chosen))]
    chosen.sort(key=lambda i: -i.weight)
    bad = [i for i in dislikes if i.descriptors][:max_dislike_groups]
    return [Group(f"g{k}", i) for k, i in enumerate([*chosen, *bad], start=1)]


def group_line(group: Group, dataset: Dataset, titles: int, json_data) -> str:  # noqa: ANN001
    """``g2 topic "heist, bank robbery" titles "Heat (1995)", "Ronin (1998)"``."""
    interest = group.interest
    words = interest.descriptors or [interest.label]
    shown = [dataset.items[e].title for e in interest.evidence[:titles] if e in dataset.items]
    line = f"{group.short} {interest.granularity} {json_data(', '.join(words[:4]))}"
    if shown:
        line += " titles " + ", ".join(json_data(t[:60]) for t in shown)
    return line


def groups_schema(ids: Sequence[str], limits: ReplyLimits) -> dict[str, Any]:
    """Exactly one bounded label per shown group, a summary and (optionally) ideas."""
    label = {"type": "string",
             "pattern": f"^[A-Za-z0-9][A-Za-z0-9 ,'&/-]{{2,{limits.max_label_chars - 1}}}$"}
    return reply_object({"labels": {"type": "object", "properties": {i: label for i in ids},
                                    "required": list(ids), "additionalProperties": False}},
                        limits)


def check_label(label: str | None, interest: Interest, dataset: Dataset, *,
                generic: frozenset[str], copied: set[str], titles: set[str],
                seen: set[str], max_chars: int) -> str | None:
    """Why ``label`` cannot name ``interest`` (None when it can): see the module docstring.
    ``copied`` holds the letters-only forms of the instructions' quoted examples."""
    if label is None:
        return "label_missing"
    text = " ".join(label.split())
    folded = text.casefold().strip(" .,:;!-\"'")
    if not folded:
        return "empty_label"
    if len(text) > max_chars:
        return "label_too_long"
    if folded in generic or sum(ch.isalpha() for ch in folded) < 3:
        return "generic_label"
    if "".join(ch for ch in folded if ch.isalpha()) in copied:
        return "copied_from_instructions"
    # A label made of the group's own descriptors names the group even when some film has
    # that title ("alien", "heist"); any other title-like label names one film.
    own = bool(interest.descriptors) and is_supported(text, interest.descriptors)
    if has_year(folded) or (not own and is_title(folded, titles)):
        return "label_is_a_title"
    if folded in seen:
        return "duplicate_label"
    items = [dataset.items[e] for e in interest.evidence if e in dataset.items]
    if interest.descriptors and not own and not is_supported(
            text, interest.descriptors, [c for it in items for c in it.categories],
            [it.year for it in items if it.year]):
        return "label_unsupported"
    return None
