"""The collaborative models, fitted on interactions rather than text:

- :mod:`.sasrec` (network in :mod:`.sasrec_network`): the sequence model that turns a
  history into a user vector, whose item vectors live in Chroma's behaviour collection;
- :mod:`.ease`: the item-item model, scored in memory;
- :mod:`.facade`: :class:`CollaborativeModels`, both fitted on one dataset (with the items'
  popularity) and served together — what the retriever and the learned ranker ask — and
  :func:`models_dir`, where a dataset's fitted models are cached.
"""

from tastelens.vectorstore.collaborative.facade import CollaborativeModels, models_dir

__all__ = ["CollaborativeModels", "models_dir"]
