"""Ranking-adapter examples from the serving distribution: a history, the candidates the
pipeline's retriever returns for it, and the letter of the next item.

Cut points are cross-fitted like the learned ranker's (:mod:`tastelens.finetune.ranker_examples`):
each user's TRAINING events (:mod:`tastelens.finetune.data_source`) lose their newest
``skip_newest`` events, which are left to the learned ranker's own cross-fitting (so the
adapter's score of a ranker training case is never one it memorised); the newest ``cuts`` of
the rest are the targets, each with every event before it as history. The collaborative
models are fitted on every user's events before their cuts — they never saw a target — and
the serving path's :class:`~tastelens.agent.retrieve.retriever.Retriever` (data-facts
profile, the same fusion as serving) returns the candidates for each history. The first
``candidates`` of them are what the served re-ranker shows the LLM; the target is put in
place of the last one when the retriever missed it (``absent = "insert"``) or the case is
skipped (``"skip"``); the candidates are then shuffled with the user's seeded generator, so
the letter carries no position.

Prompt and target come from the serving code (:func:`rank_request` in ``"score"`` mode with
titles only, :func:`rank_target`): a trained adapter sees the prompt it is served with. A
prompt over ``max_prompt_tokens`` shows fewer history items (oldest dropped first).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np

from tastelens.agent.rank.prompt import RankPrompt, rank_request, rank_target
from tastelens.finetune.data_config import RankSection
from tastelens.finetune.data_source import TrainingData, user_rng
from tastelens.finetune.jsonl import Example, PromptMessage
from tastelens.finetune.ranker import TrainingSetup, case_retriever
from tastelens.finetune.ranker_examples import Case, CaseProfiles, cut_cases, user_logs
from tastelens.vectorstore.collaborative import CollaborativeModels, models_dir

CountTokens = Callable[[list[dict[str, str]]], int]


class RankExampleBuilder:
    """Builds a user's ranking examples (see the module docstring). The constructor fits (or
    loads) the cross-fitted collaborative models and publishes them for the retriever."""

    def __init__(self, config: RankSection, data: TrainingData, setup: TrainingSetup, *,
                 seed: int, count_tokens: CountTokens | None = None) -> None:
        self.config = config
        self.data = data
        self.seed = seed
        self.count_tokens = count_tokens
        self.dropped: Counter[str] = Counter()
        self.sources: Counter[str] = Counter()
        self.history_cut = 0
        dataset = data.dataset
        logs = [log.without_newest(config.skip_newest)
                for log in user_logs(data.split.train, dataset)]
        early, cases = cut_cases(logs, config.cuts, config.min_history)
        self.cases: dict[str, list[Case]] = {}
        for case in cases:
            self.cases.setdefault(case.log.user, []).append(case)
        pipe = setup.pipeline
        self.models = CollaborativeModels(pipe.collaborative, dataset,
                                          work_dir=models_dir(setup.settings, dataset.name))
        self.models.fit_sequences([log.items for log in early])
        self.retriever = case_retriever(setup, self.models)
        self.profiles = CaseProfiles(dataset, pipe.profiler.facts)
        self.n_retrieve = max(pipe.retriever.n_candidates, config.candidates)

    def examples_for(self, user: str) -> list[Example]:
        cases = self.cases.get(user, [])
        if not cases:
            self.dropped["users: training history too short for min_history + a cut"] += 1
            return []
        ids = self.data.dataset.item_ids
        profiles = [self.profiles(c) for c in cases]
        pools = self.retriever.retrieve_many(profiles, [[ids[i] for i in c.history]
                                                        for c in cases], n=self.n_retrieve)
        rng = user_rng(self.seed, user, "rank")
        out = []
        # The user's validation and test items are never shown, not even as a negative.
        held = self.data.held_out.get(user, frozenset())
        for case, pool in zip(cases, pools):
            example = self._example(
                case, [c.item for c in pool if c.source != "explored" and c.item not in held],
                rng)
            if example is not None:
                out.append(example)
        return out

    def _example(self, case: Case, retrieved: list[str],
                 rng: np.random.Generator) -> Example | None:
        cfg = self.config
        ids = self.data.dataset.item_ids
        positive = ids[case.target]
        shown = retrieved[: cfg.candidates]
        if len(shown) < cfg.candidates:
            self.dropped["examples: the retriever returned fewer than `candidates` items"] += 1
            return None
        rank = shown.index(positive) if positive in shown else None
        if rank is None:
            if cfg.absent == "skip":
                self.dropped["examples: target not among the retrieved candidates"] += 1
                return None
            shown = [*shown[:-1], positive]
        self.sources["retrieved" if rank is not None else "inserted"] += 1
        candidates = [shown[i] for i in rng.permutation(len(shown))]
        log = case.log
        history = [(ids[i], None if np.isnan(r) else float(r))
                   for i, r in zip(log.items[: case.stop].tolist(),
                                   log.ratings[: case.stop].tolist())]
        prompt = self._fitting_prompt(history, candidates)
        target = rank_target(prompt, positive)
        return Example(
            id=f"rank-{log.user}-t{case.stop}", task="rank",
            messages=[PromptMessage(role=m.role, content=m.content)
                      for m in prompt.request.messages],
            target=target,
            meta={"user": log.user, "position": case.stop, "history_len": case.stop,
                  "history_shown": prompt.history_shown, "positive": positive,
                  "label": target, "candidates": candidates, "retrieved_rank": rank,
                  "labels": prompt.labels, "prompt_version": prompt.prompt_version})

    def _fitting_prompt(self, history: list[tuple[str, float | None]],
                        candidates: list[str]) -> RankPrompt:
        """The score-mode prompt, with fewer history items while it is over budget."""
        cfg = self.config
        assert cfg.max_history is not None  # build_data fills it from the settings
        shown = cfg.max_history
        while True:
            prompt = rank_request(self.data.dataset, history, candidates, mode="score",
                                  max_history=shown, compact=True)
            if (self.count_tokens is None or shown <= cfg.min_shown_history
                    or self.count_tokens([{"role": m.role, "content": m.content}
                                          for m in prompt.request.messages])
                    <= cfg.max_prompt_tokens):
                if shown < cfg.max_history:
                    self.history_cut += 1
                return prompt
            shown -= 1
