"""Datasets: loading (MovieLens small/100k/1m and a generic format), downloads, splits.

Typical use::

    from tastelens.data import load_dataset, leave_last_out, masked_items
    dataset = load_for_settings(settings, data)  # + settings.side_info when set
    split = leave_last_out(dataset)

The generic format is described in :mod:`tastelens.data.generic`; downloads in
:mod:`tastelens.data.download` (imported lazily: it pulls in httpx).
"""

from __future__ import annotations

from tastelens.data.dataset import Dataset, History, sort_events
from tastelens.data.loader import (
    FORMATS,
    default_data_path,
    describe,
    detect_format,
    load_dataset,
    load_for_settings,
    locate_dataset,
    resolve_data_path,
)
from tastelens.data.splits import (
    EvalCase,
    Split,
    leave_last_out,
    masked_items,
    temporal,
    temporal_cuts,
)

__all__ = [
    "FORMATS", "Dataset", "EvalCase", "History", "Split", "default_data_path", "describe",
    "detect_format", "leave_last_out", "load_dataset", "load_for_settings", "locate_dataset",
    "masked_items", "resolve_data_path", "sort_events", "temporal", "temporal_cuts",
]
