"""Profile-adapter examples: the profiler's prompt of a user's past -> a ProfileReply target.

There is no teacher model on this machine, so targets are computed from data. For each
user, ``positions_per_user`` split points t are sampled (seeded) from their TRAINING history
(:mod:`tastelens.finetune.data_source`); the **past** (events before t) is the prompt, the
**future** (the next ``future_items`` training events) is what the target must anticipate:

- the prompt is exactly the serving one: :meth:`Profiler.prepare` on the past, so the short
  ids h1..hN of the evidence are the prompt's own;
- **interests** are features of the liked past items shown in the prompt (rated at or above
  the user's mean and not low enough to contradict a like): usable tags, genre pairs with
  and without a decade, decade × genre. Each needs ``min_evidence`` shown liked items and
  must cover ``min_coverage`` future items; they are ranked by future coverage (within one
  genre pair the decade variant wins when it covers at least half as much) with caps per
  kind so tags, sub-genres and eras mix. Labels are worded by
  :mod:`tastelens.finetune.profile_labels` ("1990s crime thrillers", "atmospheric
  thrillers", "Pixar animation", "feel-good family films"); evidence = the newest (up to 3)
  shown items that carry the feature;
- at most ``max_dislikes`` **dislike** interests: a feature shared by ≥ 2 shown items rated
  at or below the user's dislike threshold (and by fewer liked ones);
- the **summary** is a template over the chosen labels, the dislike and the rising genre;
- **explore_next**: genres of future items that are (nearly) absent from the past.

Every target is checked by the profiler itself: ``ProfileReply.model_validate`` and
:meth:`Profiler.finish` (no fallback, no dropped interest or evidence, summary and explore
ideas kept). Candidate interests the profiler would drop (a tag that is a shown title...)
are skipped before that and counted; examples that still fail are dropped and counted.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from jsonschema import Draft202012Validator

from tastelens.agent.profile.profiler import Profiler, evidence_ids
from tastelens.config.pipeline import ProfilerConfig
from tastelens.finetune import profile_labels as words
from tastelens.finetune.data_config import ProfileSection
from tastelens.finetune.data_source import TrainingData, user_rng
from tastelens.finetune.jsonl import Example, PromptMessage
from tastelens.llm.base import ParseOutcome
from tastelens.llm.fake import FakeBackend
from tastelens.prompts.renderer import PromptRenderer, RendererConfig
from tastelens.schemas import Item, ProfileReply, ProfileReplyInterest

TARGET_SOURCE = ("data: interests are tag / genre-pair / decade features of the liked past "
                 "items shown in the prompt that cover the user's next training items, "
                 "ranked by that coverage; dislikes from low-rated past items; template "
                 "summary; explore_next = genres of future items the past lacks")
_MAX_PAIR_INTERESTS = 3  # genre-pair interests (with or without a decade) per target
_MAX_DECADE_GENRE = 2
_SPECIFICITY = {"tag": 3, "series": 3, "dpair": 3, "classic": 2, "pair": 2, "dcat": 1}
# Future coverage is multiplied by these when ranking, so a tag or a series that covers two
# future items outranks a genre pair that covers three: the targets should teach specifics.
_RANK_WEIGHT = {"tag": 2.0, "series": 2.0, "dpair": 1.5, "classic": 1.2, "pair": 1.0,
                "dcat": 1.0}
Feature = tuple
"""("tag", key) | ("series", name) | ("classic",) | ("pair", a, b) | ("dpair", decade, a, b)
| ("dcat", decade, genre)"""


def item_features(item: Item, genres_folded: frozenset[str], max_tags: int | None,
                  series: str | None = None) -> set:
    """Every feature an item carries (tags: the first ``max_tags``, all when None)."""
    out: set = {("tag", words.tag_key(t)) for t in item.tags[:max_tags]
                if words.usable_tag(t, genres_folded)}
    if series:
        out.add(("series", series))
    genres = sorted(c for c in dict.fromkeys(item.categories) if c in words.GENRE_NOUN)
    decade = item.year // 10 * 10 if item.year else None
    if item.year and item.year < words.CLASSIC_BEFORE:
        out.add(("classic",))
    for a, b in combinations(genres, 2):
        out.add(("pair", a, b))
        if decade:
            out.add(("dpair", decade, a, b))
    if decade:
        out.update(("dcat", decade, c) for c in genres if c not in words.BROAD_GENRES)
    return out


def _group(feature: Feature) -> tuple:
    """Features worded alike compete: one interest per genre pair and per decade-genre."""
    kind = feature[0]
    if kind in ("pair", "dpair"):
        return ("pair", *feature[-2:])
    if kind == "dcat":
        return ("dcat", feature[2])
    return feature


def _within(summary: str, max_chars: int) -> str:
    """The summary's leading sentences that fit ``max_chars`` (all of it when it fits)."""
    if len(summary) <= max_chars:
        return summary
    kept = ""
    for sentence in (s.strip() + "." for s in summary.split(".") if s.strip()):
        if len(kept) + len(sentence) + 1 > max_chars:
            break
        kept = f"{kept} {sentence}".strip()
    return kept or summary[:max_chars]


@dataclass
class _Candidate:
    feature: Feature
    evidence: list[str]  # short ids, prompt order
    coverage: int = 0
    label: str = ""
    granularity: str = "topic"
    extra: dict = field(default_factory=dict)


class ProfileExampleBuilder:
    """Builds a user's profile examples from their training history."""

    def __init__(self, config: ProfileSection, data: TrainingData, renderer: PromptRenderer,
                 *, seed: int) -> None:
        self.config = config
        self.data = data
        self.seed = seed
        # The backend is never asked: prepare() renders, finish() validates a given reply.
        self.profiler = Profiler(FakeBackend(), renderer, ProfilerConfig(prompt="history"))
        self.tags_shown = renderer.config.tags_per_item
        self.genres_folded = frozenset(
            c.casefold() for it in data.dataset.items.values() for c in it.categories)
        self.series = words.franchises({i: it.title for i, it in data.dataset.items.items()})
        self.dropped: Counter[str] = Counter()
        self.skipped_interests: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.granularities: Counter[str] = Counter()
        self.coverage: list[float] = []

    def examples_for(self, user: str) -> list[Example]:
        cfg = self.config
        events = self.data.histories.get(user, [])
        valid = list(range(cfg.min_past, len(events) - cfg.min_future + 1))
        if not valid:
            self.dropped["users: training history shorter than min_past + min_future"] += 1
            return []
        rng = user_rng(self.seed, user, "profile")
        chosen = sorted(rng.choice(valid, size=min(cfg.positions_per_user, len(valid)),
                                   replace=False).tolist())
        out = []
        for t in chosen:
            example = self._example(user, events[:t], events[t:t + cfg.future_items], t, rng)
            if example is not None:
                out.append(example)
        return out

    # -- one example --------------------------------------------------------------------
    def _example(self, user: str, past: Sequence, future: Sequence, t: int,
                 rng: np.random.Generator) -> Example | None:
        dataset = self.data.dataset
        prepared = self.profiler.prepare(dataset, user, past)
        facts, id_map = prepared.facts, prepared.prompt.id_map
        liked, low = (list(ids) for ids in evidence_ids(prepared.prompt, facts))
        features = {s: item_features(dataset.item(id_map[s]), self.genres_folded,
                                     self.tags_shown, self.series.get(id_map[s]))
                    for s in liked + low}
        future_features = [item_features(dataset.item(e.item), self.genres_folded, None,
                                         self.series.get(e.item)) for e in future]
        likes = self._likes(liked, features, future_features, prepared, rng)
        if not likes:
            self.dropped["examples: no past interest covers the future"] += 1
            return None
        dislikes = self._dislikes(low, liked, features, prepared,
                                  {c.label.casefold() for c in likes})
        limits = self.profiler.config.reply
        likes, dislikes = likes[: limits.max_likes], dislikes[: limits.max_dislikes]
        reply = ProfileReply.model_validate({
            "likes": [self._stated(c) for c in likes],
            "dislikes": [self._stated(c) for c in dislikes],
            "summary": _within(self._summary(likes, dislikes, facts, rng),
                               limits.max_summary_chars),
            "explore_next": [idea for idea in self._explore(past, future, facts.explore)
                             if len(idea) <= limits.max_explore_chars][: limits.max_explore]})
        if prepared.request is None:
            self.dropped["examples: nothing shown can back a like"] += 1
            return None
        value = reply.model_dump(mode="json")
        if not value["dislikes"] and "dislikes" not in prepared.request.json_schema["properties"]:
            del value["dislikes"]  # the schema leaves the list out when nothing is low-rated
        checked = self._checked(prepared, reply, value)
        if checked is None:
            return None
        target, profile, diag = checked
        problem = (diag.reason if diag.fallback else
                   "dropped " + ",".join(sorted(diag.drop_reasons)) if diag.drop_reasons else
                   "summary replaced" if diag.summary_replaced else
                   "explore ideas dropped" if profile.explore_next != reply.explore_next
                   and reply.explore_next else None)
        if problem:
            self.dropped[f"examples: failed profiler validation ({problem})"] += 1
            return None
        for c in likes + dislikes:
            self.kinds[c.feature[0]] += 1
            self.granularities[c.granularity] += 1
        self.coverage.append(len({i for i, ff in enumerate(future_features)
                                  if any(c.feature in ff for c in likes)}) / len(future))
        return Example(
            id=f"profile-{user}-t{t}", task="profile",
            messages=[PromptMessage(**m) for m in prepared.prompt.messages], target=target,
            meta={"user": user, "position": t, "n_past": len(past),
                  "shown": list(id_map.values()), "future": [e.item for e in future],
                  "interests": [{"label": c.label, "kind": c.feature[0],
                                 "coverage": c.coverage} for c in likes + dislikes],
                  "prompt_version": prepared.prompt.prompt_version,
                  "prompt_tokens": prepared.prompt.prompt_tokens,
                  "token_counter": prepared.prompt.token_counter})

    def _checked(self, prepared, reply, value: dict):  # noqa: ANN001, ANN202
        """``reply`` (dumped as ``value``) through what a served reply goes through: the
        user's guided-JSON schema (outside it: dropped and counted, None) and the profiler's
        own validation. Returns (the target JSON, the profile, its diagnostics)."""
        error = next(iter(Draft202012Validator(prepared.request.json_schema)
                          .iter_errors(value)), None)
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path) or "<root>"
            self.dropped[f"examples: outside the user's reply schema ({where}: "
                         f"{error.validator})"] += 1
            return None
        target = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        profile, diag = self.profiler.finish(prepared, ParseOutcome(value=reply, attempts=1,
                                                                    raw=[target]))
        return target, profile, diag

    def _likes(self, liked: list[str], features: dict[str, set], future: list[set],
               prepared, rng: np.random.Generator) -> list[_Candidate]:
        cfg = self.config
        found: dict[Feature, _Candidate] = {}
        for short in liked:  # prompt order, so evidence[-3:] is the newest
            for f in features[short]:
                found.setdefault(f, _Candidate(f, [])).evidence.append(short)
        best: dict[tuple, _Candidate] = {}
        for c in found.values():
            c.coverage = sum(c.feature in ff for ff in future)
            if len(c.evidence) < cfg.min_evidence or c.coverage < cfg.min_coverage:
                continue
            group = _group(c.feature)
            old = best.get(group)
            if old is None or _better(c, old):
                best[group] = c
        ranked = sorted(best.values(), key=lambda c: (
            -c.coverage * _RANK_WEIGHT[c.feature[0]], -_SPECIFICITY[c.feature[0]],
            -len(c.evidence), str(c.feature)))
        chosen: list[_Candidate] = []
        per_kind: Counter[str] = Counter()
        for c in ranked:
            kind = "pair" if c.feature[0] in ("pair", "dpair") else c.feature[0]
            cap = {"pair": _MAX_PAIR_INTERESTS, "dcat": _MAX_DECADE_GENRE}.get(kind)
            if cap is not None and per_kind[kind] >= cap:
                continue
            if any(_overlap(c.feature, o.feature) for o in chosen):
                continue
            self._word(c, prepared, rng)
            if any(c.label.casefold() == o.label.casefold() for o in chosen):
                continue
            if not self._accepted(c, "like", prepared):
                continue
            per_kind[kind] += 1
            chosen.append(c)
            if len(chosen) == cfg.max_interests:
                break
        return chosen

    def _dislikes(self, low: list[str], liked: list[str], features: dict[str, set],
                  prepared, like_labels: set[str]) -> list[_Candidate]:
        if self.config.max_dislikes == 0 or len(low) < 2:
            return []
        liked_count = Counter(f for s in liked for f in features[s])
        found: dict[Feature, _Candidate] = {}
        for short in low:
            for f in features[short]:
                found.setdefault(f, _Candidate(f, [])).evidence.append(short)
        ranked = sorted((c for c in found.values() if len(c.evidence) >= 2
                         and len(c.evidence) > liked_count[c.feature]),
                        key=lambda c: (-len(c.evidence), -_SPECIFICITY[c.feature[0]],
                                       str(c.feature)))
        out: list[_Candidate] = []
        for c in ranked:
            self._word(c, prepared, None)
            if c.label.casefold() not in like_labels and self._accepted(c, "dislike", prepared):
                out.append(c)
                if len(out) == self.config.max_dislikes:
                    break
        return out

    def _word(self, c: _Candidate, prepared, rng: np.random.Generator | None) -> None:
        kind = c.feature[0]
        if kind == "tag":
            items = [self.data.dataset.item(prepared.prompt.id_map[s]) for s in c.evidence]
            variants = Counter(t for it in items for t in it.tags
                               if words.tag_key(t) == c.feature[1])
            tag = min(variants, key=lambda t: (-variants[t], t))
            c.label, c.granularity = words.tag_label(tag, [it.categories for it in items])
        elif kind == "series":
            c.label, c.granularity = words.franchise_label(c.feature[1]), "keyword"
        elif kind == "classic":
            c.label, c.granularity = words.CLASSIC_LABEL, "topic"
        elif kind == "pair":
            variants = words.PAIR_VARIANTS.get(frozenset(c.feature[1:]))
            if variants and rng is not None and rng.random() < 0.5:
                c.label, c.granularity = variants[int(rng.integers(len(variants)))]
            else:
                c.label, c.granularity = words.pair_label(*c.feature[1:]), "topic"
        else:
            c.label = words.decade_label(c.feature[1], list(c.feature[2:]))
            c.granularity = "topic"

    def _accepted(self, c: _Candidate, polarity: str, prepared) -> bool:
        """The profiler keeps this interest on its own (label and evidence rules)."""
        interest = ProfileReplyInterest(**self._stated(c))
        alone = {"likes": [interest], "dislikes": []} if polarity == "like" else {
            "likes": [], "dislikes": [interest]}
        # model_construct: a reply of one dislike is not a valid reply, but it is a fine probe
        probe = ProfileReply.model_construct(**alone, summary="x" * 20, explore_next=[])
        validated = self.profiler._validate(probe, prepared)
        for reason, n in validated.drops.items():
            self.skipped_interests[reason] += n
        return not validated.drops

    def _stated(self, c: _Candidate) -> dict[str, object]:
        """The candidate as the reply states it (its newest evidence, as many as allowed)."""
        keep = self.profiler.config.reply.max_evidence
        return {"label": c.label, "granularity": c.granularity, "evidence": c.evidence[-keep:]}

    # -- summary and exploration --------------------------------------------------------
    def _summary(self, likes: list[_Candidate], dislikes: list[_Candidate], facts,
                 rng: np.random.Generator) -> str:
        labels = [c.label for c in likes]
        rising = [d.category for d in facts.drift if d.direction == "rising"
                  and d.category in words.GENRE_NOUN][:1]
        tail = ""
        if dislikes:
            tail += (" Rates {} low." if rng.random() < 0.5 else " Not a fan of {}.").format(
                dislikes[0].label)
        if rising:
            tail += f" Lately watching more {words.GENRE_NOUN[rising[0]]}."
        for n in (3, 2, 1):
            head = _head(labels[:n], int(rng.integers(3)))
            text = (head + tail).strip()
            if len(text) <= 300:
                break
        return text[:300] if len(text) >= 20 else (text + " A varied viewer.")[:300]

    def _explore(self, past: Sequence, future: Sequence,
                 fallback: Sequence[str]) -> list[str]:
        """Genres of future items the past (nearly) lacks, worded as nouns with the
        dominant decade; when there are none, the profiler's own co-occurrence ideas
        (``facts.explore``), so targets do not teach an empty list."""
        cfg = self.config
        dataset = self.data.dataset
        past_counts = Counter(c for e in past for c in set(dataset.item(e.item).categories))
        decades: dict[str, Counter[int]] = defaultdict(Counter)
        for e in future:
            item = dataset.item(e.item)
            for c in set(item.categories):
                if c in words.GENRE_NOUN and past_counts[c] / len(past) <= cfg.explore_max_share:
                    decades[c][item.year // 10 * 10 if item.year else 0] += 1
        ranked = sorted(decades, key=lambda c: (-sum(decades[c].values()),
                                                words.HEAD_ORDER.index(c)))
        ideas = []
        for c in ranked[: cfg.max_explore]:
            decade, n = decades[c].most_common(1)[0]
            ideas.append(words.decade_label(decade, [c]) if decade and n >= 2
                         else words.GENRE_NOUN[c])
        if not ideas:
            ideas = [words.GENRE_NOUN[c] for c in fallback if c in words.GENRE_NOUN]
        return ideas[: cfg.max_explore]


def _better(new: _Candidate, old: _Candidate) -> bool:
    """Within one group, prefer the more specific wording unless it covers under half."""
    if _SPECIFICITY[new.feature[0]] > _SPECIFICITY[old.feature[0]]:
        return 2 * new.coverage >= old.coverage
    if _SPECIFICITY[new.feature[0]] < _SPECIFICITY[old.feature[0]]:
        return 2 * old.coverage < new.coverage
    return (new.coverage, len(new.evidence)) > (old.coverage, len(old.evidence))


def _overlap(a: Feature, b: Feature) -> bool:
    """Two era features say the same thing: one decade, a shared genre ("1990s horror
    thrillers" and "1990s horror films")."""
    if a[0] in ("dpair", "dcat") and b[0] in ("dpair", "dcat") and a[1] == b[1]:
        return bool(set(a[2:]) & set(b[2:]))
    return False


def _join(labels: Sequence[str]) -> str:
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def _head(labels: Sequence[str], style: int) -> str:
    if style == 1 and len(labels) >= 3:
        return f"Drawn to {labels[0]} and {labels[1]}, with a soft spot for {labels[2]}."
    if style == 2 and len(labels) >= 2:
        return f"Mostly watches {labels[0]}; also likes {_join(labels[1:])}."
    return f"Enjoys {_join(labels)}."


def renderer_config(config: ProfileSection) -> RendererConfig | None:
    """The renderer budget the config asks for; None keeps the profiler's default."""
    updates = {k: v for k, v in (("max_prompt_tokens", config.max_prompt_tokens),
                                 ("max_items", config.max_items)) if v is not None}
    return RendererConfig(**updates) if updates else None
