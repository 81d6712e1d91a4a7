"""The data template: one sentence stating the supported reasons and the cited history.

One lead clause from the first reason, by kind — "Something new to explore: "X"",
"Matches your interest in "A" and "B"", "Fits your request "X"", "Close to "Heat (1995)",
which you asked about", "One of your favourite genres, "Comedy"", "Watched by people whose
history is like yours" (the sequence model), "Often watched with films you have seen" (the
item-item model), "Widely watched" (the popularity prior) — then "like "T1" and "T2" from
your history" for the cited items.
With neither, the item's own categories: "A Comedy, Romance pick for you." Labels and titles
are quoted as JSON strings, so a reader (and the faithfulness bench) can find every claim.
"""

from __future__ import annotations

from collections.abc import Sequence

from tastelens.agent.recommendation import Reason
from tastelens.prompts.renderer import json_data
from tastelens.schemas import Item


def lead(reasons: Sequence[Reason], explored: bool) -> str | None:
    """The clause for the reasons (None: nothing to say)."""
    if explored:
        label = next((r.label for r in reasons if r.kind == "explore"), None)
        return "Something new to explore" + (f": {json_data(label)}" if label else "")
    interests = [json_data(r.label) for r in reasons if r.kind == "interest"]
    if interests:
        return "Matches your interest in " + " and ".join(interests)
    first = reasons[0] if reasons else None
    if first is None:
        return None
    if first.kind == "wish":
        return f"Fits your request {json_data(first.label)}"
    if first.kind == "seed":
        return f"Close to {json_data(first.label)}, which you asked about"
    if first.kind == "category":
        return f"One of your favourite genres, {json_data(first.label)}"
    if first.kind == "cooccurrence":
        return "Often watched with films you have seen"
    if first.kind == "prior":
        return "Widely watched"
    return "Watched by people whose history is like yours"


def sentence(item: Item, reasons: Sequence[Reason], evidence_titles: Sequence[str],
             explored: bool) -> str:
    """The whole template sentence."""
    parts = [p for p in [lead(reasons, explored)] if p]
    if evidence_titles:
        parts.append("like " + " and ".join(json_data(t) for t in evidence_titles)
                     + " from your history")
    if not parts:
        what = ", ".join(item.categories[:2]) or "new"
        parts.append(f"{'An' if what[0].lower() in 'aeiou' else 'A'} {what} pick for you")
    text = ", ".join(parts)
    return text[0].upper() + text[1:] + "."


def stated(reasons: Sequence[Reason], explored: bool) -> list[Reason]:
    """The reasons :func:`lead` puts into words (the rest are not claimed)."""
    if explored:
        return [r for r in reasons if r.kind == "explore"][:1]
    interests = [r for r in reasons if r.kind == "interest"]
    return interests or list(reasons[:1])
