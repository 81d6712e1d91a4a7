"""Profile-adapter examples for the grouped prompt: mined groups -> labels from descriptors.

The serving prompt (``ProfilerConfig.prompt = "groups"``, :mod:`tastelens.agent.profile.groups`)
shows the interest groups the miner found in a user's past; the model only names them and
writes the summary. So the targets teach naming, from data alone (no teacher model):

- split points and past/future are :mod:`.data_profile`'s (the user's TRAINING history);
- the prompt is exactly the serving one: :meth:`Profiler.prepare` on the past;
- each shown group's **label** is worded from its own descriptors — a keyword group: its
  descriptor, or two joined ("heist and bank robbery"); a topic: two descriptors and the
  group's category ("heist and vault crime films"); a sentiment contrast: the descriptor and
  its category ("twist ending thrillers"); one wording per group, seeded — and kept only when
  the profiler's own check passes (:func:`~tastelens.agent.profile.groups.check_label`: the
  label is supported by the group's descriptors, not a title, not a repeat); otherwise the
  group's data label is the target. So every granularity the data found is labelled, and the
  labels are as varied as the descriptors;
- the **summary** names the labels of the groups whose descriptors the user's next items
  (the future window) carry, strongest first (else the strongest groups), the first dislike
  and the rising genre (:class:`~tastelens.finetune.data_profile.ProfileExampleBuilder`'s
  templates); **explore_next**: genres of future items the past lacks.

Every target is then read back by the profiler (:meth:`Profiler.finish`): no fallback, every
label the model's (none replaced), summary kept; examples that fail are dropped and counted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from tastelens.agent.profile.grounding import GENERIC_LABELS
from tastelens.agent.profile.groups import Group, GroupsReply, check_label
from tastelens.agent.profile.profiler import Profiler
from tastelens.config.pipeline import ProfilerConfig
from tastelens.data.descriptors import descriptors as item_descriptors
from tastelens.data.titles import title_key_set
from tastelens.finetune.data_config import ProfileSection
from tastelens.finetune.data_profile import ProfileExampleBuilder, _within
from tastelens.finetune.data_source import TrainingData
from tastelens.finetune.jsonl import Example, PromptMessage
from tastelens.llm.fake import FakeBackend
from tastelens.prompts.renderer import PromptRenderer
from tastelens.schemas import Interest

_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ,'&/-]+")
"""What the reply schema lets a label hold (agent/profile/groups.py groups_schema)."""
TARGET_SOURCE = ("data: the serving prompt's mined groups, each labelled from its own "
                 "descriptors (checked like a model's label); summary over the groups the "
                 "user's next items carry; explore_next = genres of future items the past lacks")


def plural(word: str) -> str:
    """'thriller' -> 'thrillers', 'comedy' -> 'comedies' (a label's last word)."""
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word if word.endswith("s") else word + "s"


def worded(interest: Interest, rng: np.random.Generator) -> str:
    """A natural label made of the group's own descriptors and category (see the module)."""
    words = interest.descriptors
    if not words:
        return interest.label
    head, sep, _ = interest.label.partition(": ")
    category = head.casefold() if sep else ""
    if interest.granularity in ("keyword", "application"):
        if len(words) >= 2 and rng.random() < 0.4:
            return f"{words[0]} and {words[1]}"
        return words[0]
    if interest.granularity == "topic":
        pair = " and ".join(words[:2]) if len(words) >= 2 else words[0]
        if category and rng.random() < 0.6:
            return f"{pair} {category} films"
        return pair
    if category and category not in words[0]:
        return f"{words[0]} {plural(category)}"
    return words[0]


class GroupExampleBuilder(ProfileExampleBuilder):
    """:class:`ProfileExampleBuilder` for the grouped prompt (see the module docstring)."""

    def __init__(self, config: ProfileSection, data: TrainingData, renderer: PromptRenderer,
                 *, seed: int) -> None:
        super().__init__(config, data, renderer, seed=seed)
        self.profiler = Profiler(FakeBackend(), renderer, ProfilerConfig(prompt="groups"))
        self.profiler.use_signals(data.dataset, self._signals(data))
        self.replaced: int = 0

    @staticmethod
    def _signals(data: TrainingData):  # noqa: ANN205 - CatalogSignals, built from training
        from tastelens.agent.profile.signals import build_signals

        return build_signals(data.dataset, ProfilerConfig().facts.mining, data.split.train)

    def _example(self, user: str, past: Sequence, future: Sequence, t: int,
                 rng: np.random.Generator) -> Example | None:
        dataset = self.data.dataset
        prepared = self.profiler.prepare(dataset, user, past)
        if prepared.request is None or not prepared.groups:
            self.dropped["examples: no group mined from the past"] += 1
            return None
        facts = prepared.facts
        generic = GENERIC_LABELS | facts.catalog_categories_folded
        titles = title_key_set(facts.titles.values()) | prepared.catalog_titles
        labels: dict[str, str] = {}
        seen: set[str] = set()
        limit = self.profiler.config.reply.max_label_chars
        for group in prepared.groups:
            words = group.interest.descriptors
            options = [worded(group.interest, rng), " and ".join(words[:2]), *words[:3]]
            label = next((o for o in options if o and _LABEL.fullmatch(o) and check_label(
                o, group.interest, dataset, generic=generic, copied=set(), titles=titles,
                seen=seen, max_chars=limit) is None), None)
            if label is None:
                self.dropped["examples: a group has no usable label"] += 1
                return None
            self.replaced += label != options[0]
            labels[group.short] = label
            seen.add(label.casefold())
            self.granularities[group.interest.granularity] += 1
        ahead = self._ahead(prepared.groups, future)
        liked = [labels[g.short] for g in ahead if g.interest.polarity == "like"]
        if not liked:
            self.dropped["examples: no liked group mined from the past"] += 1
            return None
        disliked = [g for g in prepared.groups if g.interest.polarity == "dislike"]
        limits = self.profiler.config.reply
        summary = self._summary([_Named(x) for x in liked],
                                [_Named(labels[g.short]) for g in disliked], facts, rng)
        reply = GroupsReply(labels=labels, summary=_within(summary, limits.max_summary_chars),
                            explore_next=[i for i in self._explore(past, future, facts.explore)
                                          if len(i) <= limits.max_explore_chars]
                            [: limits.max_explore])
        checked = self._checked(prepared, reply, reply.model_dump(mode="json"))
        if checked is None:
            return None
        target, _, diag = checked
        problem = (diag.reason if diag.fallback else
                   "labels replaced " + ",".join(sorted(diag.drop_reasons))
                   if diag.drop_reasons else
                   "summary replaced" if diag.summary_replaced else None)
        if problem:
            self.dropped[f"examples: failed profiler validation ({problem})"] += 1
            return None
        covered = {d for g in ahead[:3] for d in g.interest.descriptors}
        self.coverage.append(np.mean([bool(covered & set(item_descriptors(
            dataset.item(e.item)))) for e in future]) if future else 0.0)
        return Example(
            id=f"profile-{user}-t{t}", task="profile",
            messages=[PromptMessage(**m) for m in prepared.prompt.messages], target=target,
            meta={"user": user, "position": t, "n_past": len(past), "prompt": "groups",
                  "shown": list(dict.fromkeys(e for g in prepared.groups
                                              for e in g.interest.evidence)),
                  "future": [e.item for e in future],
                  "groups": [{"id": g.short, "granularity": g.interest.granularity,
                              "descriptors": g.interest.descriptors,
                              "label": labels[g.short]} for g in prepared.groups],
                  "prompt_version": prepared.prompt.prompt_version,
                  "prompt_tokens": prepared.prompt.prompt_tokens,
                  "token_counter": prepared.prompt.token_counter})

    def _ahead(self, groups: Sequence[Group], future: Sequence) -> list[Group]:
        """Groups by how many future items carry one of their descriptors, then weight."""
        carried = [set(item_descriptors(self.data.dataset.item(e.item))) for e in future]
        score = {g.short: sum(bool(c & set(g.interest.descriptors)) for c in carried)
                 for g in groups}
        return sorted(groups, key=lambda g: (-score[g.short], -g.interest.weight))


class _Named:
    """The one attribute :meth:`ProfileExampleBuilder._summary` reads of a candidate."""

    def __init__(self, label: str) -> None:
        self.label = label
