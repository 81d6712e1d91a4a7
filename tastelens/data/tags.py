"""Dated tags: what users wrote on items and when, and which of it an evaluation may see.

Users tag the items they rate, held-out ones included: a tag written on the very item an
evaluation hides (or after it) would tell the item text, and through it the profile and
the retriever, what the user did next. So a loader keeps the tag *events*
(``Dataset.tag_events``), ``Item.tags`` aggregates all of them for serving, and
:func:`tags_before` rebuilds the catalog's tags from the events dated before a split's cut:

- a global cut (temporal split): events with ``timestamp < cut`` stay;
- per-user cuts (leave-last-out: each evaluated user's first held-out event): a user's own
  events stay when dated before their cut; users without a cut keep theirs. Events
  without a timestamp are dropped under any cut (nothing says they came before it).

Aggregation per item: distinct tags compared case-insensitively, most frequent first, ties
by first appearance in the file, each shown in its first-seen spelling.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pandas as pd

from tastelens.data.dataset import Dataset

TAG_EVENT_COLUMNS = ("user", "item", "tag", "timestamp")


def aggregate(events: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """Per item: its distinct tags, most frequent first (see the module docstring). Rows keep
    file order; the ``tag`` column is already stripped and non-blank."""
    if events.empty:
        return {}
    frame = pd.DataFrame({"item": events["item"].to_numpy(), "tag": events["tag"].to_numpy(),
                          "key": events["tag"].str.casefold().to_numpy(),
                          "order": np.arange(len(events))})
    grouped = (frame.groupby(["item", "key"], sort=False)
               .agg(count=("tag", "size"), tag=("tag", "first"), order=("order", "min"))
               .reset_index()
               .sort_values(["item", "count", "order"], ascending=[True, False, True]))
    # Rows are sorted by item: cut the tag column at item boundaries instead of groupby.
    owners = grouped["item"].to_numpy()
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    chunks = np.split(grouped["tag"].to_numpy(dtype=object), starts[1:])
    return {str(owners[s]): tuple(chunk) for s, chunk in zip(starts, chunks)}


def tags_before(dataset: Dataset, cut: int | Mapping[str, int]) -> Dataset:
    """``dataset`` whose items carry only the tags dated before ``cut`` (a global Unix time
    or a per-user mapping); the same object when nothing is dropped or there are no dated
    tags."""
    events = dataset.tag_events
    if events is None or events.empty:
        return dataset
    stamps = events["timestamp"].to_numpy(np.int64)
    if isinstance(cut, Mapping):
        limits = events["user"].map(cut).to_numpy(dtype=np.float64)  # NaN: no cut, keep
        keep = np.isnan(limits) | ((stamps >= 0) & (stamps < np.nan_to_num(limits)))
    else:
        keep = (stamps >= 0) & (stamps < int(cut))
    if keep.all():
        return dataset
    kept = events.loc[keep].reset_index(drop=True)
    tags = aggregate(kept)
    items = {item_id: (item if tags.get(item_id, ()) == item.tags
                       else item.model_copy(update={"tags": tags.get(item_id, ())}))
             for item_id, item in dataset.items.items()}
    report = {**dataset.report, "tags_before_cut": {
        "tag_events_kept": int(keep.sum()), "tag_events_dropped": int((~keep).sum()),
        "items_changed": sum(1 for i, it in items.items() if it is not dataset.items[i])}}
    return dataclasses.replace(dataset, items=items, tag_events=kept, report=report)
