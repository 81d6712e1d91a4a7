"""Build a user's fine-grained interest profile: deterministic facts plus one LLM call.

Two prompts (``ProfilerConfig.prompt``). The default, **groups**, shows the model the
interests mined from the data (keyword, topic, sentiment, application groups with their
descriptors and a few titles) and asks only for one short label per group and a summary;
labels are checked against their group's descriptors and the data label stands in for one
that fails (:mod:`tastelens.agent.profile.groups`). The earlier **history** prompt, described
below, shows the rated items and lets the model state interests itself.

For each user the profiler (1) computes the data facts (categories, drift, dislikes, mined
interests, a history hash), (2) renders the compact prompt within its token budget (the
instructions are one system message shared by every user, so the server's prefix cache
serves them), (3) asks
the backend for a :class:`~tastelens.schemas.ProfileReply` under the user's own guided-JSON
schema (:mod:`agent.profile.reply_schema`: evidence is an enum of the user's liked or
low-rated shown items, so ungrounded evidence cannot be generated), and (4) validates the
reply against the history before anything of it enters the profile:

- evidence ids are the prompt's short ids (h3); they are mapped back to real item ids, and
  ids that were not shown, or that contradict the user's rating (a "like" backed by an item
  the user rated as a dislike, or the reverse), are dropped and counted (a backend without
  guided decoding can still send them);
- interests with empty, over-long, duplicate or generic labels (a bare category name such
  as "Drama", or "movies"), labels copied from the instructions' examples, and labels that
  are just one of the shown titles are dropped and counted, as are interests left without
  evidence; a summary that is too short or only a title is replaced by the data summary
  (``summary_source = "data"``);
- an interest's weight is computed, never asked for (small models are poor at numbers):
  ``weight = ½·(1 − rank/n) + ½·min(1, |evidence|/3)`` with rank its position in the reply.

A reply that does not parse (cut off at ``max_tokens``) is repaired: closed after its last
complete value and read if that is enough. Only a reply that cannot be repaired is asked
again, once, under a tighter schema (fewer, shorter fields) that fits ``retry_max_tokens``;
repairs and retries are counted. If the reply is still unusable, or no interest survives, the
profile is built from the data facts alone (template summary, tag and decade interests)
and flagged: ``diagnostics.fallback`` and ``provenance.llm_used = False``.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from tastelens.agent.history import CategoryCooccurrence, load_entries
from tastelens.agent.profile.facts import ProfileFacts, compute_facts
from tastelens.agent.profile.grounding import GENERIC_LABELS
from tastelens.agent.profile.groups import (
    Group,
    GroupsReply,
    check_label,
    group_line,
    groups_schema,
    select_groups,
)
from tastelens.agent.profile.reply_schema import profile_reply_schema
from tastelens.agent.profile.signals import CatalogSignals
from tastelens.config.pipeline import ProfilerConfig
from tastelens.config.settings import Settings
from tastelens.data.dataset import Dataset
from tastelens.data.titles import has_year, is_title, title_key, title_key_set
from tastelens.llm.base import ChatMessage, ChatRequest, LLMBackend, ParseOutcome
from tastelens.llm.errors import ModelNotPreparedError
from tastelens.llm.models import resolve_model_path
from tastelens.prompts.renderer import (
    PromptRenderer,
    RenderedPrompt,
    RendererConfig,
    json_data,
)
from tastelens.schemas import (
    Interaction,
    Interest,
    InterestProfile,
    ProfileProvenance,
    ProfileReply,
)

_SHORT_ID = re.compile(r"\bh([1-9][0-9]{0,2})\b")
_SENTENCE = re.compile(r"[^.!?]+[.!?]+")
_QUOTED = re.compile(r'"([^"]{2,100})"')
MIN_SUMMARY_CHARS = 20


class ProfileDiagnostics(BaseModel):
    """How one profile was made: budget use, validation drops, fallback and its reason."""

    model_config = ConfigDict(extra="forbid")

    user: str
    fallback: bool
    reason: str | None = Field(default=None, description="Why the fallback was used.")
    attempts: int = 0
    repaired: bool = Field(default=False, description="The reply was cut off and read up to "
                                                      "its last complete value.")
    prompt_tokens: int
    token_counter: str
    n_history: int
    n_shown: int
    interests_in_reply: int = 0
    dropped_interests: int = 0
    dropped_evidence: int = 0
    drop_reasons: dict[str, int] = Field(default_factory=dict)
    summary_replaced: bool = Field(
        default=False, description="The model's summary was unusable (too short, or just a "
                                   "title) and the data summary stands in.")
    labels_checked: int = Field(default=0, description="'groups' prompt: labels asked for.")
    labels_from_model: int = Field(
        default=0, description="'groups' prompt: model labels that passed every check (the "
                               "others were replaced by the group's data label).")
    raw_reply: str | None = Field(
        default=None, description="First 2,000 chars of the last reply received.")
    seconds: float = 0.0


@dataclass(frozen=True)
class PreparedProfile:
    """Everything computed before the LLM call, so a batch can be sent at once."""

    user: str
    dataset: str
    facts: ProfileFacts
    prompt: RenderedPrompt
    request: ChatRequest | None
    """None when no shown item can back a liked interest (no LLM call: data facts)."""
    like_ids: tuple[str, ...]
    dislike_ids: tuple[str, ...]
    started: float
    catalog_titles: frozenset[str] = frozenset()
    """Title keys of the whole catalog: a label that names any item is not an interest."""
    groups: tuple[Group, ...] = ()
    """'groups' prompt: the mined interests shown, by short id (g1, g2 …)."""
    dataset_ref: Dataset | None = None


@dataclass
class _Validated:
    likes: list[Interest]
    dislikes: list[Interest]
    explore: list[str]
    summary: str | None
    drops: Counter[str]
    dropped_interests: int
    dropped_evidence: int
    labels_checked: int = 0
    labels_from_model: int = 0


def _reply_size(reply: ProfileReply | GroupsReply | None) -> int:
    if isinstance(reply, GroupsReply):
        return len(reply.labels)
    return len(reply.likes) + len(reply.dislikes) if reply is not None else 0


def _letters(text: str) -> str:
    """Only the letters, casefolded: the key of "copied from the instructions"."""
    return "".join(ch for ch in text.casefold() if ch.isalpha())


def evidence_ids(prompt: RenderedPrompt, facts: ProfileFacts,
                 ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The shown items' short ids that may back a liked interest (rated at or above the user's
    mean; every item when nothing is rated) and a dislike (rated at or below the dislike
    threshold): the enums of the user's reply schema."""
    likes: list[str] = []
    dislikes: list[str] = []
    for short, item in prompt.id_map.items():
        rating = facts.ratings.get(item)
        if rating is None or facts.mean_rating is None:
            if facts.mean_rating is None:
                likes.append(short)
            continue
        if rating >= facts.mean_rating:
            likes.append(short)
        elif facts.dislike_threshold is not None and rating <= facts.dislike_threshold:
            dislikes.append(short)
    return tuple(likes), tuple(dislikes)


def renderer_for_settings(settings: Settings,
                          config: RendererConfig | None = None) -> PromptRenderer:
    """A renderer that counts with the configured model's own tokenizer when its checkpoint
    folder is on disk, else with the named estimate (each prompt records which was used)."""
    try:
        path: Path | None = Path(resolve_model_path(settings))
    except ModelNotPreparedError:
        path = None
    return PromptRenderer(config, tokenizer_path=path if path and path.is_dir() else None)


class Profiler:
    """Makes :class:`InterestProfile` s with one backend, one renderer and one config."""

    def __init__(self, backend: LLMBackend, renderer: PromptRenderer | None = None,
                 config: ProfilerConfig | None = None, *,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.backend = backend
        self.renderer = renderer or PromptRenderer()
        self.config = config or ProfilerConfig()
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._cooc: tuple[Dataset, CategoryCooccurrence] | None = None
        self._titles: tuple[Dataset, frozenset[str]] | None = None
        self._signals: tuple[Dataset, CatalogSignals] | None = None

    def use_signals(self, dataset: Dataset, signals: CatalogSignals) -> None:
        """Mine ``dataset``'s histories with these catalog signals (e.g. an evaluation's,
        whose background rates come from its training events) instead of the dataset's."""
        self._signals = (dataset, signals)

    def _cooccurrence(self, dataset: Dataset) -> CategoryCooccurrence:
        # One catalog pass per dataset, not per user (the dataset is immutable).
        if self._cooc is None or self._cooc[0] is not dataset:
            self._cooc = (dataset, CategoryCooccurrence.from_dataset(dataset, self.config.facts))
        return self._cooc[1]

    def _catalog_titles(self, dataset: Dataset) -> frozenset[str]:
        if self._titles is None or self._titles[0] is not dataset:
            # "Dumb & Dumber (Dumb and Dumber) (1994)" is also "Dumb & Dumber"
            titles = [t for item in dataset.items.values()
                      for t in (item.title, item.title.split(" (", 1)[0])]
            self._titles = (dataset, frozenset(title_key_set(titles)))
        return self._titles[1]

    # -- one user ---------------------------------------------------------------------
    def prepare(self, dataset: Dataset, user: str,
                history: Sequence[Interaction] | None = None) -> PreparedProfile:
        """Facts, prompt and request for one user (no LLM call). ``history`` overrides the
        dataset's events, e.g. an evaluation's training part."""
        started = time.perf_counter()
        entries = load_entries(dataset, user, history)
        signals = self._signals[1] if self._signals and self._signals[0] is dataset else None
        facts = compute_facts(dataset, entries, self.config.facts, self._cooccurrence(dataset),
                              signals)
        if self.config.prompt == "groups":
            return self._prepare_groups(dataset, user, facts, started, len(entries))
        prompt = self.renderer.render_profile(entries, facts.prompt_context())
        like_ids, dislike_ids = evidence_ids(prompt, facts)
        request = None
        if like_ids:
            request = ChatRequest(
                messages=tuple(ChatMessage(**m) for m in prompt.messages),
                max_tokens=self.config.max_tokens, temperature=self.config.temperature,
                adapter=self.config.adapter,
                json_schema=profile_reply_schema(like_ids, dislike_ids, self.config.reply))
        return PreparedProfile(user=user, dataset=dataset.name, facts=facts, prompt=prompt,
                               request=request, like_ids=like_ids, dislike_ids=dislike_ids,
                               started=started, catalog_titles=self._catalog_titles(dataset))

    def _prepare_groups(self, dataset: Dataset, user: str, facts: ProfileFacts,
                        started: float, n_total: int) -> PreparedProfile:
        cfg = self.config
        groups = select_groups(facts.data_interests, facts.dislikes, cfg.max_groups,
                               cfg.max_dislike_groups)
        lines = {g.short: group_line(g, dataset, cfg.group_titles, json_data) for g in groups}
        liked = [lines[g.short] for g in groups if g.interest.polarity == "like"]
        disliked = [lines[g.short] for g in groups if g.interest.polarity == "dislike"]
        context = {**facts.prompt_context(), "n_total": str(n_total)}
        prompt = self.renderer.render_groups(liked, disliked, context)
        shown = [g for g in groups if lines[g.short] in prompt.messages[1]["content"]]
        request = None
        if shown:
            request = ChatRequest(
                messages=tuple(ChatMessage(**m) for m in prompt.messages),
                max_tokens=cfg.max_tokens, temperature=cfg.temperature, adapter=cfg.adapter,
                json_schema=groups_schema([g.short for g in shown], cfg.reply))
        return PreparedProfile(user=user, dataset=dataset.name, facts=facts, prompt=prompt,
                               request=request, like_ids=(), dislike_ids=(), started=started,
                               catalog_titles=self._catalog_titles(dataset),
                               groups=tuple(shown), dataset_ref=dataset)

    def ask(self, prepared: Sequence[PreparedProfile], *, concurrency: int | None = None,
            ) -> list[ParseOutcome[ProfileReply]]:
        """The backend's replies to ``prepared`` (one batch, ``concurrency`` in flight): a reply
        cut off is repaired, one that cannot be is asked again once under the tighter schema.
        Users without a request get a failed outcome (no call)."""
        asking = [p for p in prepared if p.request is not None]
        by_request = {id(p.request): p for p in asking}

        grouped = self.config.prompt == "groups"

        def tighter(request: ChatRequest, _reply: str, _error: str) -> ChatRequest:
            p = by_request[id(request)]
            limits = self.config.reply.tighter()
            schema = (groups_schema([g.short for g in p.groups], limits) if grouped else
                      profile_reply_schema(p.like_ids, p.dislike_ids, limits))
            return request.model_copy(update={"max_tokens": self.config.retry_max_tokens,
                                              "json_schema": schema})

        replies = iter(self.backend.structured_many(
            [p.request for p in asking if p.request is not None],
            GroupsReply if grouped else ProfileReply,
            concurrency=concurrency, repair=True, retry=tighter) if asking else [])
        return [next(replies) if p.request is not None else ParseOutcome[ProfileReply](
            error="no shown item can back a liked interest") for p in prepared]

    def profile(self, dataset: Dataset, user: str, history: Sequence[Interaction] | None = None,
                ) -> tuple[InterestProfile, ProfileDiagnostics]:
        prepared = self.prepare(dataset, user, history)
        return self.finish(prepared, self.ask([prepared])[0])

    # -- many users -------------------------------------------------------------------
    def iter_profiles(self, dataset: Dataset, users: Iterable[str],
                      histories: dict[str, Sequence[Interaction]] | None = None,
                      ) -> Iterator[tuple[InterestProfile, ProfileDiagnostics]]:
        """Profiles batch by batch, in the order of ``users``. All prompts are built first (an
        unknown user fails before any LLM call); each batch of ``batch_size`` goes to the
        backend at once with ``concurrency`` requests in flight, so a vLLM server can batch
        them, and its profiles are yielded as soon as it is done (a job can store them)."""
        prepared = [self.prepare(dataset, u, (histories or {}).get(u)) for u in users]
        in_flight = self.config.concurrency or self.backend.default_concurrency
        size = self.config.batch_size or max(2 * in_flight, 8)
        for start in range(0, len(prepared), size):
            batch = prepared[start:start + size]
            for p, outcome in zip(batch, self.ask(batch, concurrency=in_flight)):
                yield self.finish(p, outcome)

    def profile_many(self, dataset: Dataset, users: Iterable[str],
                     histories: dict[str, Sequence[Interaction]] | None = None,
                     ) -> list[tuple[InterestProfile, ProfileDiagnostics]]:
        """All of :meth:`iter_profiles` as a list, in the order of ``users``."""
        return list(self.iter_profiles(dataset, users, histories))

    # -- reading the reply --------------------------------------------------------------
    def finish(self, prepared: PreparedProfile, outcome: ParseOutcome,
               ) -> tuple[InterestProfile, ProfileDiagnostics]:
        """Validate the backend's outcome and assemble profile + diagnostics."""
        facts, prompt = prepared.facts, prepared.prompt
        grouped = isinstance(outcome.value, GroupsReply) or bool(prepared.groups)
        validate = self._validate_groups if grouped else self._validate
        validated = (validate(outcome.value, prepared)
                     if outcome.ok and outcome.value is not None else None)
        reason = None
        if validated is None:
            reason = f"reply unusable: {outcome.error or 'no value'}"
        elif not validated.likes and not validated.dislikes:
            reason = "no interest survived validation"
        fallback = reason is not None
        if fallback:
            likes, dislikes = list(facts.data_interests), list(facts.dislikes)
            summary, explore, explore_source = facts.summary, list(facts.explore), "data"
        else:
            likes = validated.likes
            dislikes = validated.dislikes if grouped else validated.dislikes + list(facts.dislikes)
            summary = validated.summary or facts.summary
            explore, explore_source = (validated.explore, "llm") if validated.explore else (
                list(facts.explore), "data")
        dropped_interests = validated.dropped_interests if validated else 0
        dropped_evidence = validated.dropped_evidence if validated else 0
        profile = InterestProfile(
            user=prepared.user, dataset=prepared.dataset, created_at=self._clock(),
            history_hash=facts.history_hash, n_items=facts.n_items, interests=likes,
            dislikes=dislikes, categories=list(facts.categories),
            long_term=dict(facts.long_term), recent=dict(facts.recent),
            drift=list(facts.drift), summary=summary, explore_next=explore,
            summary_source="llm" if not fallback and validated.summary else "data",
            explore_source=explore_source,
            provenance=ProfileProvenance(
                model=self.model_name, adapter=self.config.adapter,
                prompt_version=prompt.prompt_version, llm_used=not fallback,
                dropped_interests=dropped_interests, dropped_evidence=dropped_evidence))
        raw = outcome.raw[-1] if outcome.raw else None
        diagnostics = ProfileDiagnostics(
            user=prepared.user, fallback=fallback, reason=reason,
            attempts=outcome.attempts, repaired=outcome.repaired,
            prompt_tokens=prompt.prompt_tokens, token_counter=prompt.token_counter,
            n_history=prompt.n_history, n_shown=prompt.n_shown,
            interests_in_reply=_reply_size(outcome.value) if validated else 0,
            dropped_interests=dropped_interests, dropped_evidence=dropped_evidence,
            drop_reasons=dict(validated.drops) if validated else {},
            summary_replaced=validated is not None and validated.summary is None,
            labels_checked=validated.labels_checked if validated else 0,
            labels_from_model=validated.labels_from_model if validated else 0,
            raw_reply=raw[:2000] if raw is not None else None,
            seconds=round(time.perf_counter() - prepared.started, 4))
        return profile, diagnostics

    @property
    def model_name(self) -> str:
        """The served model name, else the checkpoint folder's name, else the backend name."""
        served = getattr(self.backend, "model", None)
        if isinstance(served, str) and served:
            return served
        path = getattr(self.backend, "model_path", None)
        if isinstance(path, (str, Path)) and str(path):
            return Path(path).name
        return self.backend.name

    def _validate(self, reply: ProfileReply, prepared: PreparedProfile) -> _Validated:
        facts, id_map = prepared.facts, prepared.prompt.id_map
        generic = GENERIC_LABELS | facts.catalog_categories_folded
        # A small model copies the instructions' examples and the titles it was shown;
        # neither is an interest of this user.
        copied = {_letters(q) for q in _QUOTED.findall(prepared.prompt.messages[0]["content"])}
        titles = title_key_set(facts.titles.values()) | prepared.catalog_titles
        drops: Counter[str] = Counter()
        likes: list[Interest] = []
        dislikes: list[Interest] = []
        seen: set[str] = set()
        proposals = reply.interests()
        n = len(proposals)
        for rank, (polarity, proposed) in enumerate(proposals):
            label = " ".join(proposed.label.split())
            folded = label.casefold().strip(" .,:;!-\"'")
            if not folded:
                drops["empty_label"] += 1
                continue
            if len(label) > self.config.max_label_chars:
                drops["label_too_long"] += 1
                continue
            if (folded in generic or sum(ch.isalpha() for ch in folded) < 3
                    or _SHORT_ID.fullmatch(folded)):  # "Drama", "movies", "1995", "h3"
                drops["generic_label"] += 1
                continue
            if _letters(folded) in copied:  # "1980s Disney musicals" for "1990s Disney …"
                drops["copied_from_instructions"] += 1
                continue
            if is_title(folded, titles) or has_year(folded):
                # "Heat (1995)" names one film, shown, in the catalog or invented, not an
                # interest; so do "Mummy, The", "The Mummy" and "The Mummy: Tomb of …" for
                # "Mummy, The (1999)".
                drops["label_is_a_title"] += 1
                continue
            if folded in seen:
                drops["duplicate_label"] += 1
                continue
            evidence: list[str] = []
            for short in dict.fromkeys(proposed.evidence):
                real = id_map.get(short)
                if real is None:
                    drops["evidence_not_in_history"] += 1
                elif facts.contradicts(real, polarity):
                    drops["evidence_contradicts_rating"] += 1
                else:
                    evidence.append(real)
            if self.config.require_evidence and not evidence:
                drops["no_valid_evidence"] += 1
                continue
            seen.add(folded)
            weight = 0.5 * (1 - rank / n) + 0.5 * min(1.0, len(evidence) / 3)
            interest = Interest(label=label, granularity=proposed.granularity,
                                weight=round(weight, 4), polarity=polarity,
                                evidence=evidence, source="llm")
            (likes if polarity == "like" else dislikes).append(interest)
        evidence_drops = ("evidence_not_in_history", "evidence_contradicts_rating")
        dropped_evidence = sum(drops[k] for k in evidence_drops)
        return _Validated(
            likes=likes, dislikes=dislikes,
            explore=self._clean_explore(reply, facts, [i.label for i in likes + dislikes]),
            summary=self._clean_summary(reply.summary, prepared, titles), drops=drops,
            dropped_interests=sum(drops.values()) - dropped_evidence,
            dropped_evidence=dropped_evidence)

    def _validate_groups(self, reply: GroupsReply, prepared: PreparedProfile) -> _Validated:
        """Each shown group keeps the model's label when it passes :func:`check_label`, else
        its data label; the groups not shown keep theirs. Nothing is dropped."""
        facts = prepared.facts
        dataset = prepared.dataset_ref
        assert dataset is not None
        generic = GENERIC_LABELS | facts.catalog_categories_folded
        copied = {_letters(q) for q in _QUOTED.findall(prepared.prompt.messages[0]["content"])}
        titles = title_key_set(facts.titles.values()) | prepared.catalog_titles
        drops: Counter[str] = Counter()
        relabelled: dict[int, Interest] = {}
        seen: set[str] = set()
        kept = 0
        for group in prepared.groups:
            label = reply.labels.get(group.short)
            why = check_label(label, group.interest, dataset, generic=generic, copied=copied,
                              titles=titles, seen=seen, max_chars=self.config.max_label_chars)
            if why is None and label is not None:
                text = " ".join(label.split())
                kept += 1
                seen.add(text.casefold())
                relabelled[id(group.interest)] = group.interest.model_copy(
                    update={"label": text, "source": "llm"})
            else:
                drops[why or "label_missing"] += 1
                seen.add(group.interest.label.casefold())
        likes = [relabelled.get(id(i), i) for i in facts.data_interests]
        dislikes = [relabelled.get(id(i), i) for i in facts.dislikes]
        labels = [i.label for i in likes + dislikes]
        return _Validated(
            likes=likes, dislikes=dislikes,
            explore=self._clean_explore(reply, facts, labels),
            summary=self._clean_summary(reply.summary, prepared, titles), drops=drops,
            dropped_interests=0, dropped_evidence=0,
            labels_checked=len(prepared.groups), labels_from_model=kept)

    def _clean_explore(self, reply: ProfileReply | GroupsReply, facts: ProfileFacts,
                       interests: Sequence[str] = ()) -> list[str]:
        # Drop ideas the user already has in abundance (their top categories, the interests
        # of this very reply), repeats, titles, and fragments without words ("1990").
        skip = ({c.category.casefold() for c in facts.categories[:3]} | GENERIC_LABELS
                | {label.casefold() for label in interests})
        titles = title_key_set(facts.titles.values())
        out: list[str] = []
        for idea in reply.explore_next:
            idea = " ".join(idea.split())
            letters = sum(ch.isalpha() for ch in idea)
            if (letters >= 3 and idea.casefold() not in skip and not is_title(idea, titles)
                    and not has_year(idea)):
                skip.add(idea.casefold())
                out.append(idea)
        return out[: self.config.max_explore]

    @staticmethod
    def _clean_summary(summary: str, prepared: PreparedProfile,
                       titles: set[str]) -> str | None:
        """Collapse whitespace, drop repeated and cut-off sentences (small models loop until
        the length limit) and replace short ids the model quoted with the real titles; None
        when what is left is too short or only a title (the data summary stands in)."""
        text = " ".join(summary.split())
        sentences = [m.group(0).strip() for m in _SENTENCE.finditer(text)]
        if sentences:  # else: one unterminated sentence, kept as it is
            text = " ".join(dict.fromkeys(sentences))
        if len(text) < MIN_SUMMARY_CHARS or title_key(text) in titles:
            return None
        by_id = prepared.facts.titles

        def title(match: re.Match[str]) -> str:
            real = prepared.prompt.id_map.get(match.group(0))
            return f'"{by_id[real]}"' if real in by_id else match.group(0)

        return _SHORT_ID.sub(title, text)
