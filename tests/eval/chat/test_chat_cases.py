"""Cases from dialogues (targets, kinds, what is skipped), what the replay sends, and the
fixed split."""

from __future__ import annotations

from pathlib import Path

import pytest

from tastelens.agent.chat.intent import RuleParser
from tastelens.eval.chat.cases import build_cases, in_split, split_of
from tastelens.eval.chat.dialogues import load_dialogues
from tastelens.eval.chat.matching import MentionMatcher
from tastelens.eval.chat.replay import TurnResult, replay

from .conftest import sample_redial, write_jsonl


def cases_of(catalog, tmp_path: Path, protocol: str):  # noqa: ANN001, ANN201
    dialogues = load_dialogues(write_jsonl(tmp_path / "d.jsonl", sample_redial()))
    matcher = MentionMatcher(catalog)
    return build_cases(dialogues, matcher, RuleParser(matcher.vocab), protocol)  # type: ignore[arg-type]


class Recorder:
    """A conversation that records what it is sent and returns scripted lists."""

    def __init__(self, lists: dict[str, list[str] | None] | None = None) -> None:
        self.lists = lists or {}
        self.sent: list[tuple[str, str]] = []

    def say(self, text: str) -> TurnResult:
        self.sent.append(("say", text))
        return TurnResult("seeker", 0.01, self.lists.get(text), "recommend", "rules")

    def observe(self, text: str) -> TurnResult:
        self.sent.append(("observe", text))
        return TurnResult("recommender", 0.001, None, "observed", "rules")

    def close(self) -> None:
        pass


def test_protocol_first_targets_kinds_and_skips(catalog, tmp_path: Path) -> None:  # noqa: ANN001
    cases = cases_of(catalog, tmp_path, "first")
    got = [(c.conversation, c.turn, c.target, c.target_title, c.kind) for c in cases.cases]
    assert got == [
        # "Try Some Unknown Film (2017) or Ronin (1998)": the first *catalog* film that is new
        ("c-mentions", 3, "7", "Ronin (1998)", "mentions a movie"),
        ("c-genre", 1, "13", "Aliens (1986)", "states genres or moods only"),
        ("c-nothing", 1, "4", "Se7en (1995)", "says nothing yet"),
    ]
    assert dict(cases.skipped) == {"no seeker message before": 1, "no new suggestion": 1}
    assert cases.n_conversations == 5 and list(cases.dialogues) == [
        "c-mentions", "c-genre", "c-nothing"]
    first = cases.cases[0]
    assert first.seeds == ("1", "2")          # Heat (1996) is Heat (1995), one year off
    assert first.excluded == ("1", "2")
    assert first.seeker_text == ("Hello", "I loved The Matrix (1999) and Heat (1996)")


def test_protocol_every_makes_a_case_of_each_new_suggestion(catalog, tmp_path: Path) -> None:  # noqa: ANN001
    cases = cases_of(catalog, tmp_path, "every")
    got = [(c.conversation, c.case, c.turn, c.target, c.excluded) for c in cases.cases]
    assert got == [
        ("c-mentions", 0, 3, "7", ("1", "2")),
        ("c-mentions", 1, 5, "13", ("1", "2", "7")),
        ("c-genre", 0, 1, "13", ()),
        ("c-genre", 1, 3, "6", ("13",)),
        ("c-nothing", 0, 1, "4", ()),
    ]
    assert cases.cases[1].seeker_text == ("Hello", "I loved The Matrix (1999) and Heat (1996)",
                                          "ok")
    assert dict(cases.skipped) == {"no seeker message before": 1, "no new suggestion": 1}
    assert len(cases.limited(3).cases) == 3 and list(cases.limited(3).dialogues) == [
        "c-mentions", "c-genre"]


def test_first_sends_the_seekers_messages_only_and_scores_the_last_list(
        catalog, tmp_path: Path) -> None:  # noqa: ANN001
    cases = cases_of(catalog, tmp_path, "first")
    dialogue = cases.dialogues["c-mentions"]
    chat = Recorder({"Hello": None, "I loved The Matrix (1999) and Heat (1996)": ["7", "5"]})
    [outcome] = replay(chat, dialogue.turns, [3], observe=False)
    assert chat.sent == [("say", "Hello"), ("say", "I loved The Matrix (1999) and Heat (1996)")]
    assert outcome.items == ["7", "5"]
    assert [t.role for t in outcome.turns] == ["seeker", "seeker"]


def test_every_observes_the_recommender_and_keeps_the_most_recent_list(
        catalog, tmp_path: Path) -> None:  # noqa: ANN001
    cases = cases_of(catalog, tmp_path, "every")
    dialogue = cases.dialogues["c-mentions"]
    # "ok" makes no list: the case after it scores the list the earlier message made.
    chat = Recorder({"I loved The Matrix (1999) and Heat (1996)": ["7", "5"], "ok": None})
    first, second = replay(chat, dialogue.turns, [3, 5], observe=True)
    assert chat.sent == [
        ("say", "Hello"), ("say", "I loved The Matrix (1999) and Heat (1996)"),
        ("observe", "Did you like The Matrix (1999) ?"),
        ("observe", "Try Some Unknown Film (2017) or Ronin (1998)"), ("say", "ok")]
    assert first.items == ["7", "5"] and second.items == ["7", "5"]
    # each turn belongs to one case: the turns since the previous case
    assert [t.role for t in second.turns] == ["recommender", "seeker"]


def test_a_case_without_any_list_and_blank_messages(catalog, tmp_path: Path) -> None:  # noqa: ANN001
    from tastelens.eval.chat.dialogues import Turn

    chat = Recorder()
    [outcome] = replay(chat, [Turn("seeker", "  "), Turn("seeker", "hi"),
                              Turn("recommender", "x")], [2], observe=False)
    assert chat.sent == [("say", "hi")] and outcome.items is None


def test_the_split_is_a_stable_function_of_the_id() -> None:
    # Pinned: a change of the hash would silently move conversations between the parts.
    assert [split_of(str(i)) for i in range(8)] == [
        "tune", "check", "check", "tune", "tune", "check", "check", "tune"]
    ids = [str(20000 + i) for i in range(2000)]
    share = sum(split_of(i) == "tune" for i in ids) / len(ids)
    assert 0.67 < share < 0.73


def test_in_split_keeps_file_order(tmp_path: Path) -> None:
    dialogues = load_dialogues(write_jsonl(tmp_path / "d.jsonl", sample_redial()))
    tune, check = in_split(dialogues, "tune"), in_split(dialogues, "check")
    assert sorted(d.id for d in tune + check) == sorted(d.id for d in dialogues)
    assert in_split(dialogues, "all") == dialogues
    assert all(split_of(d.id) == "tune" for d in tune)


@pytest.mark.parametrize("protocol", ["first", "every"])
def test_generic_jsonl_cases_take_catalog_ids_and_titles(catalog, tmp_path: Path,
                                                         protocol: str) -> None:  # noqa: ANN001
    row = {"id": "g", "turns": [
        {"role": "seeker", "text": "I loved Heat", "items": ["2"]},
        {"role": "recommender", "text": "Try Ronin", "items": ["Ronin (1998)"]},
        {"role": "seeker", "text": "more"},
        {"role": "recommender", "text": "Up?", "items": ["6", "Nope (1990)"]}]}
    dialogues = load_dialogues(write_jsonl(tmp_path / "g.jsonl", [row]))
    matcher = MentionMatcher(catalog)
    cases = build_cases(dialogues, matcher, RuleParser(matcher.vocab), protocol)  # type: ignore[arg-type]
    expected = [("7", ("2",))] + ([("6", ("2",))] if protocol == "every" else [])
    assert [(c.target, c.seeds) for c in cases.cases] == expected
