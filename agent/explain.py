"""Explain each recommended item with the user's own history: which profile interests it
matches and which items they watched it is like.

For every item the explainer first ranks *evidence candidates* from the history: the evidence
items of the profile interests that retrieved it (``Candidate.matched``), then history items
sharing its categories (Jaccard overlap; items the user rated below 3 are never used as "you
liked this" evidence), higher-rated and more recent first.

- **data template** (``source="data"``): the matched interest labels and the first
  ``max_evidence`` evidence candidates, in a fixed sentence. Deterministic and instant.
- **LLM** (``use_llm``): one short request per item, all sent concurrently (a vLLM server
  batches them): the item, its interests and up to ``shown_history`` evidence candidates as
  short ids ``h1..hN``; guided JSON ``{"text", "evidence"}`` with the ids as an enum. The reply
  is validated: ids are mapped back to the history (anything else is dropped and counted), ids
  the text mentions become titles, a text quoting a catalog title the user never watched is
  rejected. Without valid evidence, or on any failure, the data template stands in (counted
  as a fallback). One request per item beat one request for all items by 3x on the shared
  CPU server: the per-item replies decode in parallel, the single reply token by token.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from string import Template

from pydantic import BaseModel, Field, create_model

from tastelens.agent.recommendation import Candidate, Explanation, HistoryEvent, history_pairs
from tastelens.data.dataset import Dataset
from tastelens.data.titles import title_key
from tastelens.errors import ConfigError
from tastelens.llm.base import ChatMessage, ChatRequest, LLMBackend
from tastelens.llm.errors import LLMUnavailableError
from tastelens.pipeline_config import ExplainConfig
from tastelens.prompts.renderer import TEMPLATES_DIR, item_text, json_data
from tastelens.schemas import InterestProfile

LIKED = 3.0  # ratings below this are never "you liked this" evidence
_SHORT_ID = re.compile(r"\bh([1-9][0-9]?)\b")
_QUOTED = re.compile(r'"([^"]{2,120})"')
_SENTENCE_END = re.compile(r"[.!?](?=\s)")


class ExplainStats(BaseModel):
    """Counters over an Explainer's lifetime (benchmarks and logs read them)."""

    items: int = 0
    llm_requests: int = 0
    fallbacks: int = 0
    dropped_citations: int = Field(default=0, description="Cited ids outside the shown history.")
    rejected_texts: int = Field(default=0, description="Texts naming an unwatched title or an "
                                                       "unknown id, or too short.")


class ExplainReply(BaseModel):
    """The model's reply; the schema sent for guided decoding narrows ``evidence``."""

    text: str
    evidence: list[str] = Field(default_factory=list, max_length=10)


@lru_cache(maxsize=64)
def reply_schema(n_shown: int, max_evidence: int, max_chars: int) -> type[ExplainReply]:
    ids = [f"h{k}" for k in range(1, n_shown + 1)]
    return create_model(
        f"ExplainReply{n_shown}", __base__=ExplainReply,
        text=(str, Field(json_schema_extra={"maxLength": max_chars, "minLength": 10})),
        evidence=(list[str], Field(json_schema_extra={
            "items": {"type": "string", "enum": ids}, "minItems": 1,
            "maxItems": min(max_evidence, n_shown)})))


@dataclass
class _Plan:
    """One item to explain: its data template and, when the model is asked, its request."""

    candidate: Candidate
    interests: list[str]
    id_map: dict[str, str]
    template: Explanation
    history: frozenset[str]
    request: ChatRequest | None = None


class Explainer:
    """Explains recommendations; see the module docstring."""

    def __init__(self, config: ExplainConfig | None = None, *, llm: LLMBackend | None,
                 dataset: Dataset, templates_dir: Path | None = None) -> None:
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
        asking = self.config.use_llm and self.llm is not None
        plans = [[self._plan(p, history_pairs(h), c, asking) for c in items]
                 for p, h, items in zip(profiles, histories, recs)]
        flat = [plan for user in plans for plan in user if plan.request is not None]
        outcomes = self._ask(flat)
        results: list[tuple[list[Explanation], int]] = []
        for user in plans:
            explanations, fallbacks = [], 0
            for plan in user:
                made = self._read(plan, outcomes.get(id(plan))) if plan.request else None
                fallbacks += plan.request is not None and made is None
                explanations.append(made or plan.template)
            results.append((explanations, fallbacks))
        self._count(items=sum(len(u) for u in plans), llm_requests=len(flat),
                    fallbacks=sum(f for _, f in results))
        return results

    # -- evidence and the data template ---------------------------------------------------
    def evidence_candidates(self, profile: InterestProfile | None,
                            history: list[tuple[str, float | None]],
                            candidate: Candidate) -> tuple[list[str], list[str]]:
        """(matched interest labels, ranked history item ids to cite for ``candidate``)."""
        rating = {i: r for i, r in history}
        order = {i: k for k, i in enumerate(rating)}
        interests: list[str] = []
        cited: list[str] = []
        matched = set(candidate.matched)
        if profile is not None:
            for interest in sorted(profile.interests, key=lambda x: -x.weight):
                if interest.label in matched:
                    interests.append(interest.label)
                    cited += [i for i in interest.evidence if i in rating]
            interests += [x for x in profile.explore_next if x in matched and x not in interests]
        cited += [m[5:] for m in candidate.matched if m.startswith("seed:") and m[5:] in rating]
        cats = set(self.dataset.item(candidate.item).categories)

        def similarity(item: str) -> tuple[float, float, int]:
            other = set(self.dataset.item(item).categories)
            overlap = len(cats & other) / len(cats | other) if cats | other else 0.0
            return (-overlap, -(rating[item] or LIKED), -order[item])

        similar = sorted((i for i in rating if cats & set(self.dataset.item(i).categories)),
                         key=similarity)
        liked = [i for i in dict.fromkeys(cited + similar)
                 if rating[i] is None or rating[i] >= LIKED]
        return interests, liked

    def template(self, candidate: Candidate, interests: list[str], evidence: list[str],
                 profile: InterestProfile | None = None) -> Explanation:
        """The deterministic explanation from retrieval matches and history evidence."""
        item = self.dataset.item(candidate.item)
        quoted = [json_data(x) for x in interests[:2]]
        titles = [json_data(self.dataset.item(i).title) for i in evidence]
        genres = {c.category for c in profile.categories} if profile else set()
        # What retrieval matched besides interests: the profile's genres, or a free-text wish
        # (the rest — summary, dislike:, seed:, behaviour — are no reason to show).
        other = [m for m in candidate.matched if m not in interests and m not in
                 ("behaviour", "summary") and not m.startswith(("seed:", "dislike:"))]
        liked_genres = [m for m in other if m in genres]
        wishes = [m for m in other if m not in genres]
        parts = []
        if candidate.source == "explored":
            label = (quoted or [json_data(x) for x in other])[:1]
            parts.append("Something new to explore" + (f": {label[0]}" if label else ""))
        elif quoted:
            parts.append("Matches your interest in " + " and ".join(quoted))
        elif wishes:
            parts.append(f"Fits your request {json_data(wishes[0])}")
        elif liked_genres:
            parts.append(f"One of your favourite genres, {json_data(liked_genres[0])}")
        elif "behaviour" in candidate.matched:
            parts.append("Watched by people whose history is like yours")
        if titles:
            parts.append("like " + " and ".join(titles) + " from your history")
        elif not parts:
            parts.append(f"A {', '.join(item.categories[:2]) or 'new'} pick for you")
        text = ", ".join(parts)
        return Explanation(text=text[0].upper() + text[1:] + ".", interests=interests,
                           evidence=evidence, source="data")

    def _plan(self, profile: InterestProfile | None, history: list[tuple[str, float | None]],
              candidate: Candidate, asking: bool) -> _Plan:
        interests, ranked = self.evidence_candidates(profile, history, candidate)
        cfg = self.config
        template = self.template(candidate, interests, ranked[: cfg.max_evidence], profile)
        shown = ranked[: cfg.shown_history]
        id_map = {f"h{k}": item for k, item in enumerate(shown, 1)}
        plan = _Plan(candidate, interests, id_map, template, frozenset(i for i, _ in history))
        if asking and shown:
            plan.request = self._request(profile, history, candidate, interests, id_map)
        return plan

    # -- the model ------------------------------------------------------------------------
    def _request(self, profile: InterestProfile | None, history: list[tuple[str, float | None]],
                 candidate: Candidate, interests: list[str], id_map: dict[str, str],
                 ) -> ChatRequest:
        rating = dict(history)
        named = interests or ([x.label for x in profile.interests[:3]] if profile else [])
        lines = [f"{short} {item_text(self.dataset.item(i))}"
                 + (f" rating {rating[i]:g}" if rating.get(i) is not None else "")
                 for short, i in id_map.items()]
        user = Template(self._templates["explain_user.md"]).substitute(
            interests=", ".join(json_data(x) for x in named) or "(none known)",
            history="\n".join(lines), item=item_text(self.dataset.item(candidate.item)))
        cfg = self.config
        return ChatRequest(
            messages=(ChatMessage(role="system", content=self._templates["explain_system.md"]),
                      ChatMessage(role="user", content=user)),
            max_tokens=cfg.max_tokens, temperature=cfg.temperature, adapter=cfg.adapter)

    def _ask(self, plans: list[_Plan]) -> dict[int, ExplainReply | None]:
        if not plans or self.llm is None:
            return {}
        cfg = self.config
        groups: dict[int, list[_Plan]] = {}
        for plan in plans:
            groups.setdefault(len(plan.id_map), []).append(plan)
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

    def _read(self, plan: _Plan, reply: ExplainReply | None) -> Explanation | None:
        """The model's explanation if it survives validation, else None."""
        if reply is None:
            return None
        cited = list(dict.fromkeys(reply.evidence))
        evidence = [plan.id_map[x] for x in cited if x in plan.id_map]
        self._count(dropped_citations=len(cited) - len(evidence))
        evidence = evidence[: self.config.max_evidence]
        text = self._clean(reply.text, plan)
        if text is None:
            self._count(rejected_texts=1)
            return None
        if not evidence:
            return None
        return Explanation(text=text, interests=plan.interests, evidence=evidence, source="llm")

    def _clean(self, text: str, plan: _Plan) -> str | None:
        text = " ".join(text.split())[: self.config.max_text_chars]
        ends = [m.end() for m in _SENTENCE_END.finditer(text)]
        if ends and not text.endswith((".", "!", "?")):
            text = text[: ends[-1]]  # the length limit cut the last sentence: drop its stub
        if sum(ch.isalpha() for ch in text) < 10:
            return None
        if any(f"h{m}" not in plan.id_map for m in _SHORT_ID.findall(text)):
            return None
        allowed = plan.history | {plan.candidate.item}
        for quoted in _QUOTED.findall(text):
            owners = self._title_index().get(title_key(quoted), set())
            if owners and not owners & allowed:
                return None  # names a catalog item the user never had: not evidence
        return _SHORT_ID.sub(
            lambda m: json_data(self.dataset.item(plan.id_map[m.group(0)]).title), text)

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

