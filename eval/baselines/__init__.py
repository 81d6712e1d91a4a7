"""Baseline recommenders; importing this package registers every built-in system.

Names: ``random``, ``popularity``, ``itemknn``, ``ease``, ``sasrec``, ``embed-mean``,
``embed-recency``. Build one with :func:`tastelens.eval.baselines.base.build`.
"""

from tastelens.eval.baselines import ease, embedding, itemknn, sasrec, simple  # noqa: F401
