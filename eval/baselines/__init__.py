"""Baseline recommenders; importing this package registers every built-in system.

Names: ``random``, ``popularity``, ``itemknn``, ``ease``, ``sasrec``, ``embed-mean``,
``embed-recency``, ``profile-embed``, ``llm-pipeline``. Build one with
:func:`tastelens.eval.baselines.base.build`.
"""

from tastelens.eval.baselines import (  # noqa: F401
    ease,
    embedding,
    itemknn,
    llm_pipeline,
    profile_embed,
    sasrec,
    simple,
)
