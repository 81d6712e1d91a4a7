"""The explain stage: each recommended item gets reasons that are true of it and cites the
user's liked items most like it.

Per list, in rank order:

1. **reasons** (:mod:`~tastelens.agent.explain.claims`): interests, requests, exploration
   ideas and favourite categories that the item's own categories, year, tags or text support
   (:mod:`~tastelens.agent.explain.support`); unsupported retrieval labels are dropped and
   counted, never stated;
2. **evidence** (:mod:`~tastelens.agent.explain.evidence`): the item's pool — the liked
   history items most similar to it by text vector — in an order that prefers items the list
   has not cited yet gives each pick's first citation; its further ones are chosen for the
   list at once, as many not yet cited as possible;
3. **text**: the data template (:mod:`~tastelens.agent.explain.template`), or with
   ``use_llm`` the model's sentence from the same facts, shown only when it passes the
   checks of :mod:`~tastelens.agent.explain.writer` (else the template, counted).

Model requests, one short one per item, go out together for every list of a batch (a vLLM
server decodes them in parallel: 3x faster than one request for all items on the shared CPU).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from string import Template

from pydantic import BaseModel, Field

from tastelens.agent.explain.claims import ClaimMaker, Claims, claim_texts
from tastelens.agent.explain.evidence import EvidencePicker, Liked, liked_history
from tastelens.agent.explain.support import CategoryReader, SupportChecker
from tastelens.agent.explain.template import sentence, stated
from tastelens.agent.explain.vectors import ExplainVectors
from tastelens.agent.explain.writer import (
    UNSUPPORTED,
    ExplainReply,
    fill_ids,
    reply_schema,
    trim,
    unsupported,
)
from tastelens.agent.recommendation import Candidate, Explanation, HistoryEvent, history_pairs
from tastelens.config.pipeline import ExplainConfig
from tastelens.data.dataset import Dataset
from tastelens.data.titles import title_key
from tastelens.errors import ConfigError
from tastelens.llm.base import ChatMessage, ChatRequest, LLMBackend
from tastelens.llm.errors import LLMUnavailableError
from tastelens.prompts.renderer import TEMPLATES_DIR, item_text, json_data
from tastelens.schemas import InterestProfile
from tastelens.vectorstore.item_index import ItemIndex


class ExplainStats(BaseModel):
    """Counters over an Explainer's lifetime (benchmarks and logs read them)."""

    items: int = 0
    llm_requests: int = 0
    fallbacks: int = 0
    dropped_citations: int = Field(default=0, description="Cited ids outside the shown history.")
    rejected_texts: int = Field(default=0, description="Model texts not shown: an unknown id, "
                                                       "an unwatched title, too short, or an "
                                                       "unsupported claim.")
    unsupported_texts: int = Field(default=0, description="Of rejected_texts: a claim the item "
                                                          "does not support.")
    rejections: dict[str, int] = Field(
        default_factory=dict, description="rejected_texts by kind: 'short', 'id' (not shown), "
                                          "'title', 'quoted', 'genre', 'decade', 'year', "
                                          "'interest' (see explain.writer.unsupported).")
    dropped_claims: int = Field(default=0, description="Retrieval labels (interests, requests, "
                                                       "exploration ideas) not stated because "
                                                       "the item does not support them.")
    uncited: int = Field(default=0, description="Items citing no history item: none of the "
                                                "liked ones is similar enough.")


@dataclass
class _Plan:
    """One item to explain: its checked facts, its template and, when asked, its request."""

    candidate: Candidate
    claims: Claims
    shown: dict[str, str]
    template: Explanation
    request: ChatRequest | None = None


class Explainer:
    """Explains recommendations; see the module docstring.

    ``item_index`` (the Chroma item index the retriever uses) gives the text vectors for
    history similarity and text support (``vectors`` instead: ones held already); without
    either only categories, years, tags and descriptions count.
    """

    def __init__(self, config: ExplainConfig | None = None, *, llm: LLMBackend | None,
                 dataset: Dataset, item_index: ItemIndex | None = None,
                 vectors: ExplainVectors | None = None,
                 templates_dir: Path | None = None) -> None:
        self.config = config or ExplainConfig()
        self.llm = llm
        self.dataset = dataset
        self.stats = ExplainStats()
        self._lock = threading.Lock()
        folder = Path(templates_dir) if templates_dir else TEMPLATES_DIR
        self._templates: dict[str, str] = {}
        for name in ("explain_system.md", "explain_user.md"):
            path = folder / name
            if not path.is_file():
                raise ConfigError(f"prompt template {path} is missing")
            self._templates[name] = path.read_text(encoding="utf-8").strip()
        self.categories = CategoryReader(c for it in dataset.items.values()
                                         for c in it.categories)
        self.checker = SupportChecker(self.categories, self.config.interest_min_similarity)
        self.vectors = vectors if vectors is not None else ExplainVectors(item_index)
        self.claims = ClaimMaker(self.config, dataset, self.checker, self.vectors)
        self.evidence = EvidencePicker(self.config, dataset, self.vectors)
        self._titles: dict[str, set[str]] | None = None

    # -- public -------------------------------------------------------------------------
    def explain(self, profile: InterestProfile | None, history: Sequence[HistoryEvent],
                recs: Sequence[Candidate]) -> tuple[list[Explanation], int]:
        """One explanation per item of ``recs`` (in order) and how many fell back."""
        return self.explain_many([profile], [history], [recs])[0]

    def explain_many(self, profiles: Sequence[InterestProfile | None],
                     histories: Sequence[Sequence[HistoryEvent]],
                     recs: Sequence[Sequence[Candidate]],
                     ) -> list[tuple[list[Explanation], int]]:
        """:meth:`explain` for many users; every model request goes out in one batch."""
        if not len(profiles) == len(histories) == len(recs):
            raise ValueError("explain_many needs one profile and one history per list")
        if not self.config.enabled:
            return [([], 0) for _ in recs]
        likes = [liked_history(history_pairs(h), self.config.liked_rating) for h in histories]
        self._prefetch(profiles, likes, recs)
        asking = self.config.use_llm and self.llm is not None
        plans = [self._plan_list(p, liked, items, asking)
                 for p, liked, items in zip(profiles, likes, recs)]
        flat = [plan for user in plans for plan in user if plan.request is not None]
        outcomes = self._ask(flat)
        results: list[tuple[list[Explanation], int]] = []
        for profile, user in zip(profiles, plans):
            explanations, fallbacks = [], 0
            for plan in user:
                made = self._read(plan, outcomes.get(id(plan)), profile) if plan.request \
                    else None
                fallbacks += plan.request is not None and made is None
                explanations.append(made or plan.template)
            results.append((explanations, fallbacks))
        self._count(items=sum(len(u) for u in plans), llm_requests=len(flat),
                    fallbacks=sum(f for _, f in results))
        return results

    # -- facts and the data template ------------------------------------------------------
    def _prefetch(self, profiles: Sequence[InterestProfile | None], likes: Sequence[Liked],
                  recs: Sequence[Sequence[Candidate]]) -> None:
        """Every vector this batch needs, in one index read and one encoder call."""
        items: list[str] = []
        texts: list[str] = []
        for profile, liked, candidates in zip(profiles, likes, recs):
            if not candidates:
                continue
            items += liked.items
            for c in candidates:
                items.append(c.item)
                items += [m[5:] for m in c.matched if m.startswith("seed:")]
                texts += claim_texts(profile, c, self.checker)
        self.vectors.load([i for i in items if i in self.dataset.items], texts)

    def _plan_list(self, profile: InterestProfile | None, liked: Liked,
                   candidates: Sequence[Candidate], asking: bool) -> list[_Plan]:
        cited: Counter[str] = Counter()
        pools, orders = [], []
        for candidate in candidates:
            pool = self.evidence.pool(candidate.item, liked)
            order = self.evidence.pick(pool, cited)
            cited.update(order[:1])
            pools.append([item for item, _ in pool])
            orders.append(order)
        chosen = self.evidence.spread([o[0] if o else None for o in orders], pools)
        return [self._plan(profile, liked, candidate, evidence, order, asking)
                for candidate, evidence, order in zip(candidates, chosen, orders)]

    def _plan(self, profile: InterestProfile | None, liked: Liked, candidate: Candidate,
              evidence: list[str], order: list[str], asking: bool) -> _Plan:
        claims = self.claims.reasons(profile, candidate)
        explored = candidate.source == "explored"
        reasons = stated(claims.reasons, explored)
        item = self.dataset.item(candidate.item)
        text = sentence(item, reasons, [self.dataset.item(i).title for i in evidence], explored)
        template = Explanation(text=text, interests=[r.label for r in reasons
                                                     if r.kind in ("interest", "explore")],
                               reasons=reasons, evidence=evidence, source="data")
        self._count(dropped_claims=len(claims.dropped), uncited=not evidence)
        # The model sees the template's citations first, then the rest of the pool.
        shown_ids = list(dict.fromkeys(evidence + order))[: self.config.shown_history]
        shown = {f"h{k}": i for k, i in enumerate(shown_ids, 1)}
        plan = _Plan(candidate, Claims(reasons, template.interests, claims.dropped), shown,
                     template)
        if asking and shown:
            plan.request = self._request(liked, candidate, plan)
        return plan

    # -- the model ------------------------------------------------------------------------
    @cached_property
    def _system(self) -> str:
        """The system message: the catalog's own rating scale, the same for every request
        (so the server's prefix cache serves it)."""
        scale = self.dataset.rating_range
        return Template(self._templates["explain_system.md"]).safe_substitute(
            rating_scale="no ratings" if scale is None else
            f"their rating from {scale[0]:g} to {scale[1]:g} when known")

    def _request(self, liked: Liked, candidate: Candidate, plan: _Plan) -> ChatRequest:
        rating = dict(zip(liked.items, liked.ratings))
        facts = [r.label for r in plan.claims.reasons if r.label]
        lines = [f"{short} {item_text(self.dataset.item(i))}"
                 + (f" rating {rating[i]:g}" if rating.get(i) is not None else "")
                 for short, i in plan.shown.items()]
        user = Template(self._templates["explain_user.md"]).substitute(
            facts=", ".join(json_data(x) for x in facts) or "(none checked)",
            history="\n".join(lines), item=item_text(self.dataset.item(candidate.item)))
        cfg = self.config
        return ChatRequest(
            messages=(ChatMessage(role="system", content=self._system),
                      ChatMessage(role="user", content=user)),
            max_tokens=cfg.max_tokens, temperature=cfg.temperature, adapter=cfg.adapter)

    def _ask(self, plans: list[_Plan]) -> dict[int, ExplainReply | None]:
        if not plans or self.llm is None:
            return {}
        cfg = self.config
        groups: dict[int, list[_Plan]] = {}
        for plan in plans:
            groups.setdefault(len(plan.shown), []).append(plan)
        replies: dict[int, ExplainReply | None] = {}
        try:
            for n_shown, group in groups.items():
                schema = reply_schema(n_shown, cfg.max_evidence, cfg.max_text_chars)
                outcomes = self.llm.structured_many([p.request for p in group], schema,
                                                    concurrency=cfg.concurrency)
                replies.update({id(p): o.value for p, o in zip(group, outcomes)})
        except LLMUnavailableError:
            return {}  # every item keeps its data template (counted as fallbacks)
        return replies

    def _read(self, plan: _Plan, reply: ExplainReply | None,
              profile: InterestProfile | None) -> Explanation | None:
        """The model's explanation if it survives the checks, else None."""
        if reply is None:
            return None
        cited = list(dict.fromkeys(reply.evidence))
        evidence = [plan.shown[x] for x in cited if x in plan.shown]
        self._count(dropped_citations=len(cited) - len(evidence))
        evidence = evidence[: self.config.max_evidence]
        text = trim(reply.text, self.config.max_text_chars)
        shown = {short: self.dataset.item(i) for short, i in plan.shown.items()}
        why = ("short", "too short") if sum(ch.isalpha() for ch in text) < 10 else unsupported(
            text, item=self.dataset.item(plan.candidate.item), shown=shown,
            labels=[r.label for r in plan.claims.reasons if r.label], profile=profile,
            categories=self.categories, title_owners=self._title_index())
        if why is not None:
            self._count(rejected_texts=1, unsupported_texts=why[0] in UNSUPPORTED)
            with self._lock:
                self.stats.rejections[why[0]] = self.stats.rejections.get(why[0], 0) + 1
            return None
        if not evidence:
            return None
        return Explanation(text=fill_ids(text, shown), interests=plan.template.interests,
                           reasons=plan.claims.reasons, evidence=evidence, source="llm")

    def _title_index(self) -> dict[str, set[str]]:
        if self._titles is None:  # once per explainer: the dataset is immutable
            index: dict[str, set[str]] = {}
            for item_id, item in self.dataset.items.items():
                index.setdefault(title_key(item.title), set()).add(item_id)
            self._titles = index
        return self._titles

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for key, delta in deltas.items():
                setattr(self.stats, key, getattr(self.stats, key) + int(delta))
