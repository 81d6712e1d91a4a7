"""Re-rank retrieved candidates with the LLM, over the shared ranking prompt
(:mod:`tastelens.agent.rank.prompt`, the one the ranking fine-tuning data is built from).

Two modes (``RerankConfig.mode``):

- ``score``: one request per prompt with ``max_tokens=1`` and ``top_logprobs``; each
  candidate scores the log-probability of its label token (``"A"``, ``" A"`` and any other
  decoding of the same letter are summed). Candidates absent from the top-k get a floor score
  below every present one, in retrieval order. Never invalid.
- ``listwise``: guided JSON ``{"ranking": [...]}`` whose items must be candidate labels (an
  enum in the schema). Duplicate and unknown labels are removed and counted (``invalid_ids``);
  candidates the model left out are appended in retrieval order (``appended``).

``permutations > 1`` ranks seeded shuffles of the candidate order as well (the first is the
retrieval order) and aggregates — Borda or mean reciprocal rank for listwise, the mean
log-probability for score — against the position bias of small models.

Failure is data, not an exception: when the server is down (``LLMUnavailableError``) or every
request of a user failed (timeout, server error, unusable reply), the result keeps retrieval
order with ``fallback=True`` and a reason. Configuration mistakes (an unknown adapter) still
raise. :meth:`Reranker.rerank_many` sends all users' requests in one batch.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from pydantic import BaseModel, Field, create_model

from tastelens.agent.rank.prompt import MAX_CANDIDATES, RankPrompt, rank_request
from tastelens.agent.recommendation import (
    Candidate,
    Constraints,
    HistoryEvent,
    RerankResult,
    history_pairs,
)
from tastelens.config.pipeline import RerankConfig
from tastelens.data.dataset import Dataset
from tastelens.errors import ConfigError
from tastelens.llm.base import ChatFailure, ChatRequest, ChatResult, LLMBackend, ParseOutcome
from tastelens.llm.errors import LLMUnavailableError
from tastelens.schemas import InterestProfile

FLOOR_GAP = 1.0  # how far below the lowest seen logprob absent labels start


class ListwiseReply(BaseModel):
    """The listwise reply. Validation accepts any strings (unknown labels are counted, not
    fatal); the schema sent for guided decoding restricts them to the prompt's labels."""

    ranking: list[str] = Field(max_length=4 * MAX_CANDIDATES)


@lru_cache(maxsize=MAX_CANDIDATES)
def listwise_schema(labels: tuple[str, ...]) -> type[ListwiseReply]:
    """A :class:`ListwiseReply` whose JSON schema lists exactly ``labels`` once each."""
    extra = {"items": {"type": "string", "enum": list(labels)},
             "minItems": len(labels), "maxItems": len(labels)}
    return create_model(f"Ranking{len(labels)}", __base__=ListwiseReply,
                        ranking=(list[str], Field(json_schema_extra=extra)))


@dataclass
class _Job:
    """One user's prompts (one per permutation) and what came back."""

    items: list[str]
    prompts: list[RankPrompt]
    scores: list[dict[str, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    invalid_ids: int = 0
    appended: int = 0


def label_scores(result: ChatResult, prompt: RankPrompt,
                 retrieval: Sequence[str]) -> dict[str, float] | None:
    """Score-mode scores from the first generated token's logprobs (None without any).
    Labels outside the top-k score ``FLOOR_GAP`` below the lowest logprob seen, minus a
    thousandth per retrieval position, so they stay below every present label, in retrieval
    order."""
    if not result.logprobs:
        return None
    first = result.logprobs[0]
    top = {**first.top, first.token: first.logprob}
    found: dict[str, list[float]] = {}
    for token, logprob in top.items():
        # "A" and " A" are different tokens for the same answer; their mass adds up.
        if prompt.item_of(token) is not None and math.isfinite(logprob):
            found.setdefault(token.strip(), []).append(logprob)
    present = {label: math.log(sum(math.exp(x) for x in lps)) for label, lps in found.items()}
    finite = [x for x in top.values() if math.isfinite(x)] + list(present.values())
    floor = (min(finite) if finite else 0.0) - FLOOR_GAP
    position = {item: k for k, item in enumerate(retrieval)}
    return {item: present[label] if label in present else floor - 1e-3 * position[item]
            for item, label in zip(prompt.items, prompt.labels)}


def listwise_scores(ranking: Sequence[str], prompt: RankPrompt, retrieval: Sequence[str],
                    aggregate: str) -> tuple[dict[str, float], int, int]:
    """Per-item scores from one listwise reply, plus (invalid, appended) counts. Position p
    (0-based) of n scores ``(n - p) / n`` (Borda) or ``1 / (p + 1)`` (mrr)."""
    order: list[str] = []
    invalid = 0
    for label in ranking:
        item = prompt.item_of(label)
        if item is None or item in order:
            invalid += 1
        else:
            order.append(item)
    missing = [i for i in retrieval if i in prompt.items and i not in order]
    order += missing
    n = len(order)
    if aggregate == "mrr":
        return {item: 1.0 / (p + 1) for p, item in enumerate(order)}, invalid, len(missing)
    return {item: (n - p) / n for p, item in enumerate(order)}, invalid, len(missing)


class Reranker:
    """Orders candidates with the LLM; see the module docstring."""

    def __init__(self, config: RerankConfig | None = None, *, llm: LLMBackend | None,
                 dataset: Dataset) -> None:
        self.config = config or RerankConfig(mode="score")
        if self.config.mode == "learned":
            raise ConfigError("the LLM re-ranker runs modes 'score', 'listwise' and 'none'; "
                              "mode 'learned' is the LearnedReranker's")
        self.llm = llm
        self.dataset = dataset

    def rerank(self, profile: InterestProfile | None, history: Sequence[HistoryEvent],
               candidates: Sequence[Candidate], constraints: Constraints | None = None,
               ) -> RerankResult:
        """Re-ranked ``candidates`` (retrieval order in, every candidate once out)."""
        return self.rerank_many([profile], [history], [candidates], [constraints])[0]

    def rerank_many(self, profiles: Sequence[InterestProfile | None],
                    histories: Sequence[Sequence[HistoryEvent]],
                    candidates: Sequence[Sequence[Candidate]],
                    constraints: Sequence[Constraints | None] | Constraints | None = None,
                    ) -> list[RerankResult]:
        """:meth:`rerank` for many users: all prompts go to the backend in one batch. The
        ranking prompt shows the history, not the profile (it is what the ranking adapter is
        trained on); ``profiles`` name the user for seeding the shuffles."""
        n = len(candidates)
        if not len(profiles) == len(histories) == n:
            raise ValueError("rerank_many needs one profile, history and candidate list per user")
        if constraints is None or isinstance(constraints, Constraints):
            constraints = [constraints] * n
        cfg = self.config
        pools = [list(dict.fromkeys(c.item for c in pool)) for pool in candidates]
        if cfg.mode == "none" or self.llm is None:
            reason = None if cfg.mode == "none" else "no LLM backend configured"
            return [self._keep(pool, cands, reason) for pool, cands in zip(pools, candidates)]
        jobs = [self._job(p, h, pool, c)
                for p, h, pool, c in zip(profiles, histories, pools, constraints)]
        try:
            if cfg.mode == "score":
                self._run_score(jobs)
            else:
                self._run_listwise(jobs)
        except LLMUnavailableError as exc:
            return [self._keep(pool, cands, f"LLM unavailable: {exc}")
                    for pool, cands in zip(pools, candidates)]
        return [self._finish(job, pool, cands)
                for job, pool, cands in zip(jobs, pools, candidates)]

    # -- building and sending -----------------------------------------------------------
    def _job(self, profile: InterestProfile | None, history: Sequence[HistoryEvent],
             pool: list[str], constraints: Constraints | None) -> _Job:
        cfg = self.config
        items = pool[: cfg.max_candidates]
        if not items:
            return _Job(items=[], prompts=[])
        orders = [items]
        rng = random.Random(f"{cfg.seed}:{profile.user if profile else ''}:{len(items)}")
        for _ in range(cfg.permutations - 1):
            shuffled = list(items)
            rng.shuffle(shuffled)
            orders.append(shuffled)
        pairs = history_pairs(history)
        wishes = constraints.queries if constraints else ()
        prompts = [rank_request(self.dataset, pairs, order, mode=cfg.mode,  # type: ignore[arg-type]
                                wishes=wishes, max_history=cfg.max_history,
                                compact=cfg.compact)
                   for order in orders]
        return _Job(items=items, prompts=prompts)

    def _request(self, prompt: RankPrompt, **update: object) -> ChatRequest:
        return prompt.request.model_copy(update={
            "adapter": self.config.adapter, "temperature": self.config.temperature, **update})

    def _run_score(self, jobs: list[_Job]) -> None:
        assert self.llm is not None
        flat = [(job, p) for job in jobs for p in job.prompts]
        requests = [self._request(p, max_tokens=1, logprobs=self.config.top_logprobs)
                    for _, p in flat]
        outcomes = self.llm.generate(requests, concurrency=self.config.concurrency)
        for (job, prompt), outcome in zip(flat, outcomes):
            if isinstance(outcome, ChatFailure):
                job.errors.append(f"{outcome.kind}: {outcome.message}")
                continue
            scores = label_scores(outcome, prompt, job.items)
            if scores is None:
                job.errors.append("the backend returned no logprobs")
            else:
                job.scores.append(scores)

    def _run_listwise(self, jobs: list[_Job]) -> None:
        assert self.llm is not None
        by_size: dict[tuple[str, ...], list[tuple[_Job, RankPrompt]]] = {}
        for job in jobs:
            for p in job.prompts:
                by_size.setdefault(tuple(p.labels), []).append((job, p))
        for labels, group in by_size.items():  # one schema per candidate count
            limit = self.config.max_tokens or 32 + 9 * len(labels)
            requests = [self._request(p, max_tokens=limit) for _, p in group]
            outcomes: list[ParseOutcome[ListwiseReply]] = self.llm.structured_many(
                requests, listwise_schema(labels), concurrency=self.config.concurrency)
            for (job, prompt), outcome in zip(group, outcomes):
                if outcome.value is None:
                    job.errors.append(f"reply unusable: {outcome.error}")
                    continue
                scores, invalid, appended = listwise_scores(
                    outcome.value.ranking, prompt, job.items, self.config.aggregate)
                job.scores.append(scores)
                job.invalid_ids += invalid
                job.appended += appended

    # -- results ------------------------------------------------------------------------
    @staticmethod
    def _keep(pool: list[str], candidates: Sequence[Candidate], reason: str | None,
              ) -> RerankResult:
        by_id = {c.item: c.score for c in candidates}
        return RerankResult(order=list(pool), scores={i: float(by_id[i]) for i in pool},
                            fallback=reason is not None, reason=reason)

    def _finish(self, job: _Job, pool: list[str], candidates: Sequence[Candidate],
                ) -> RerankResult:
        if not job.items:
            return RerankResult(order=[], scores={})
        if not job.scores:
            errors = "; ".join(dict.fromkeys(job.errors))
            result = self._keep(pool, candidates, errors or "no reply")
            result.invalid_ids, result.appended = job.invalid_ids, job.appended
            return result
        position = {item: k for k, item in enumerate(job.items)}
        mean = {i: sum(s[i] for s in job.scores) / len(job.scores) for i in job.items}
        head = sorted(job.items, key=lambda i: (-mean[i], position[i]))
        tail = pool[len(job.items):]
        low = min(mean.values()) if mean else 0.0
        scores = {i: round(mean[i], 6) for i in head}
        scores.update({i: round(low - 1.0 - 1e-3 * k, 6) for k, i in enumerate(tail)})
        return RerankResult(order=head + tail, scores=scores, invalid_ids=job.invalid_ids,
                            appended=job.appended)
