"""Explanations that are true of the item they explain.

Every claim is checked against the item's own data before it is stated, and every cited
history item is one of the user's liked items most similar to the recommended one:

- ``support.py``: does an item support a label — its categories, decade, tags, text;
- ``vectors.py``: item text vectors (the Chroma item index) and claim text vectors;
- ``claims.py``: the supported reasons for one item;
- ``evidence.py``: the history items to cite, diversified across a list;
- ``template.py``: the data template sentence;
- ``writer.py``: the model-written sentence, its request and its checks;
- ``explainer.py``: :class:`Explainer`, the stage the pipeline wires.
"""

from tastelens.agent.explain.explainer import Explainer, ExplainStats
from tastelens.agent.explain.writer import ExplainReply, reply_schema

__all__ = ["ExplainReply", "ExplainStats", "Explainer", "reply_schema"]
