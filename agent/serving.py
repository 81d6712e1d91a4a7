"""Building the serving stages from settings: the collaborative models the retriever asks and
the re-ranker the pipeline config names. Shared by :meth:`RecommendPipeline.from_settings`
(CLI, API, chat) and the commands that prepare them.

What serves is what ``tastelens index behaviour`` and ``tastelens rank train`` trained on the
dataset's interactions; a stage that needs one of them and finds it missing raises a
:class:`~tastelens.errors.ConfigError` naming the command to run (or the setting that turns
the stage off) — except the learned ranker for the interactive commands (chat, API), which
serve the retrieval order, labelled, until it is trained (:class:`UntrainedRanker`).
"""

from __future__ import annotations

from collections.abc import Sequence

from tastelens.agent.rank.features import FeatureBuilder, ItemStats
from tastelens.agent.rank.learned import CARD, LearnedRanker, LearnedReranker, ranker_dir
from tastelens.agent.rank.reranker import Reranker
from tastelens.agent.recommendation import (
    Candidate,
    Constraints,
    HistoryEvent,
    RerankResult,
    Reranks,
)
from tastelens.config.pipeline import PipelineConfig
from tastelens.config.settings import Settings
from tastelens.data.dataset import Dataset
from tastelens.errors import ConfigError
from tastelens.llm.base import LLMBackend
from tastelens.schemas import InterestProfile
from tastelens.vectorstore.collaborative import CollaborativeModels, models_dir
from tastelens.vectorstore.collection import BehaviourIndex
from tastelens.vectorstore.item_index import ItemIndex

NO_COLLABORATIVE = ("collaborative models not trained yet: lists come from the item text "
                    "and popularity; run `tastelens index behaviour`")


def collaborative_models(settings: Settings, dataset: Dataset, config: PipelineConfig, *,
                         train: bool = False, missing: bool = False,
                         ) -> CollaborativeModels | None:
    """The collaborative models fitted on all of ``dataset``'s interactions (None when
    ``collaborative.enabled`` is off). Without ``train`` a model that was never trained is an
    error telling the user to run ``tastelens index behaviour`` — or, with ``missing`` (the
    interactive commands), None: the pipeline then answers without them
    (:data:`NO_COLLABORATIVE`)."""
    if not config.collaborative.enabled:
        return None
    models = CollaborativeModels(config.collaborative, dataset,
                                 work_dir=models_dir(settings, dataset.name))
    if not train and not models.is_trained(dataset.interactions):
        if missing:
            return None
        raise ConfigError(
            f"the collaborative models of dataset {dataset.name!r} are not trained for these "
            "interactions and settings: run `tastelens index behaviour` (or `tastelens rank "
            "train`), or set recommend.collaborative.enabled = false")
    return models.fit(dataset.interactions)


def behaviour_index(settings: Settings, models: CollaborativeModels | None,
                    ) -> BehaviourIndex | None:
    """The collection holding ``models``' item vectors, written if it is missing."""
    if models is None:
        return None
    index = models.behaviour_index(settings)
    models.publish(index)
    return index


NO_RANKER = "no learned ranker yet: run `tastelens rank train`"


class UntrainedRanker:
    """The learned stage before its ranker exists: the retrieval order, flagged as a
    fallback that says how to get the ranker (interactive commands use it, so a newcomer can
    chat before training; batch commands and evaluations refuse to run without one).
    ``reason``: what is missing (default :data:`NO_RANKER`)."""

    def __init__(self, reason: str = NO_RANKER) -> None:
        self.reason = reason

    def rerank_many(self, profiles: Sequence[InterestProfile | None],
                    histories: Sequence[Sequence[HistoryEvent]],
                    candidates: Sequence[Sequence[Candidate]],
                    constraints: Sequence[Constraints | None] | Constraints | None = None,
                    ) -> list[RerankResult]:
        return [RerankResult(order=[c.item for c in cands],
                             scores={c.item: c.score for c in cands}, fallback=True,
                             reason=self.reason) for cands in candidates]


def build_reranker(settings: Settings, dataset: Dataset, config: PipelineConfig, *,
                   llm: LLMBackend | None, item_index: ItemIndex,
                   models: CollaborativeModels | None, missing_ranker: bool = False,
                   ) -> Reranks:
    """The re-rank stage ``config.rerank.mode`` names; with ``missing_ranker`` a learned
    ranker that was never trained is :class:`UntrainedRanker` instead of an error."""
    rerank = config.rerank
    if rerank.mode != "learned":
        return Reranker(rerank, llm=llm, dataset=dataset)
    folder = ranker_dir(settings.cache_dir, dataset.name, rerank.ranker)
    if missing_ranker and not (folder / CARD).is_file():
        return UntrainedRanker()
    if missing_ranker and models is None and config.collaborative.enabled:
        return UntrainedRanker(NO_COLLABORATIVE)  # its features need the models
    try:
        ranker = LearnedRanker.load(folder)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (or set recommend.rerank.mode to 'score' or 'none')") from exc
    if ranker.card.get("data", {}).get("cross_model") and models is None:
        raise ConfigError(f"the ranker in {folder} was trained on the collaborative models' "
                          "features, but recommend.collaborative.enabled is false")
    builder = FeatureBuilder(dataset, collaborative=models,
                             stats=ItemStats.from_events(dataset.interactions, dataset),
                             item_vectors=item_index.embeddings,
                             encode=item_index.encoder.encode)
    scorer = Reranker(rerank.model_copy(update={"mode": "score"}), llm=llm, dataset=dataset)
    return LearnedReranker(ranker, features=builder,
                           llm_reranker=scorer if llm is not None else None,
                           llm_feature=rerank.llm_feature)
