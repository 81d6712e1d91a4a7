"""Building the serving stages from settings: the collaborative models the retriever asks and
the re-ranker the pipeline config names. Shared by :meth:`RecommendPipeline.from_settings`
(CLI, API, chat) and the commands that prepare them.

What serves is what ``tastelens index behaviour`` and ``tastelens rank train`` trained on the
dataset's interactions; a stage that needs one of them and finds it missing raises a
:class:`~tastelens.errors.ConfigError` naming the command to run (or the setting that turns
the stage off).
"""

from __future__ import annotations

from tastelens.agent.rank.features import FeatureBuilder, ItemStats
from tastelens.agent.rank.learned import LearnedRanker, LearnedReranker, ranker_dir
from tastelens.agent.rank.reranker import Reranker
from tastelens.agent.recommendation import Reranks
from tastelens.data.dataset import Dataset
from tastelens.errors import ConfigError
from tastelens.llm.base import LLMBackend
from tastelens.pipeline_config import PipelineConfig
from tastelens.settings import Settings
from tastelens.vectorstore.collaborative import CollaborativeModels, models_dir
from tastelens.vectorstore.collection import BehaviourIndex
from tastelens.vectorstore.item_index import ItemIndex


def collaborative_models(settings: Settings, dataset: Dataset, config: PipelineConfig, *,
                         train: bool = False) -> CollaborativeModels | None:
    """The collaborative models fitted on all of ``dataset``'s interactions (None when
    ``collaborative.enabled`` is off). Without ``train`` a model that was never trained is an
    error telling the user to run ``tastelens index behaviour``."""
    if not config.collaborative.enabled:
        return None
    models = CollaborativeModels(config.collaborative, dataset,
                                 work_dir=models_dir(settings, dataset.name))
    if not train and not models.is_trained(dataset.interactions):
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


def build_reranker(settings: Settings, dataset: Dataset, config: PipelineConfig, *,
                   llm: LLMBackend | None, item_index: ItemIndex,
                   models: CollaborativeModels | None) -> Reranks:
    """The re-rank stage ``config.rerank.mode`` names."""
    rerank = config.rerank
    if rerank.mode != "learned":
        return Reranker(rerank, llm=llm, dataset=dataset)
    folder = ranker_dir(settings.cache_dir, dataset.name, rerank.ranker)
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
