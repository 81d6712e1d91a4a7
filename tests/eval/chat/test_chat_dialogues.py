"""Reading dialogues: ReDial's format and the generic JSONL, and errors that name the file,
the line and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tastelens.errors import DataFormatError
from tastelens.eval.chat.dialogues import load_dialogues

from .conftest import redial, sample_redial, write_jsonl


def test_redial_turns_are_typed_as_a_person_would(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", sample_redial())
    dialogues = load_dialogues(path, "redial")
    assert [d.id for d in dialogues] == ["c-mentions", "c-genre", "c-nothing",
                                         "c-recommender-first", "c-none"]
    first = dialogues[0]
    assert first.format == "redial" and first.line == 1
    assert [t.role for t in first.turns] == ["seeker", "seeker", "recommender", "recommender",
                                             "seeker", "recommender"]
    assert first.turns[1].text == "I loved The Matrix (1999) and Heat (1996)"
    assert first.turns[1].mentions == ("111", "222")
    assert first.turns[3].text == "Try Some Unknown Film (2017) or Ronin (1998)"
    assert first.titles["222"] == "Heat (1996)"


def test_an_unknown_at_id_stays_and_names_nothing(tmp_path: Path) -> None:
    row = redial("x", [("S", "like @999 and @111")], {"111": "The Matrix (1999)"})
    [dialogue] = load_dialogues(write_jsonl(tmp_path / "d.jsonl", [row]))
    assert dialogue.turns[0].text == "like @999 and The Matrix (1999)"
    assert dialogue.turns[0].mentions == ("111",)


def test_the_generic_format_and_auto_detection(tmp_path: Path) -> None:
    rows = [{"id": 7, "turns": [
        {"role": "seeker", "text": "I loved Heat", "items": ["2", "2"]},
        {"role": "recommender", "text": "Try Ronin", "items": ["Ronin (1998)"]},
        {"role": "seeker", "text": "thanks"}]},
        redial("r1", [("S", "hi")], {})]
    generic, red = load_dialogues(write_jsonl(tmp_path / "g.jsonl", ["", *rows]), "auto")
    assert generic.id == "7" and generic.format == "jsonl" and generic.line == 2
    assert generic.turns[0].mentions == ("2",)
    assert generic.turns[1].mentions == ("Ronin (1998)",)
    assert generic.turns[2].mentions == ()
    assert red.format == "redial"


@pytest.mark.parametrize(("line", "fmt", "where", "says"), [
    ("{not json", "auto", "line 2", "not valid JSON"),
    ("[1, 2]", "auto", "line 2", "expected a JSON object"),
    ('{"foo": 1}', "auto", "line 2", "neither ReDial"),
    (json.dumps({"id": "a", "turns": [{"role": "bot", "text": "x"}]}), "jsonl",
     "line 2, field 'turns[0].role'", "'bot' is not 'seeker' or 'recommender'"),
    (json.dumps({"id": "a", "turns": [{"role": "seeker"}]}), "jsonl",
     "line 2, field 'turns[0].text'", "missing"),
    (json.dumps({"id": "a", "turns": [{"role": "seeker", "text": "x", "items": "Heat"}]}),
     "jsonl", "line 2, field 'turns[0].items'", "expected a list"),
    (json.dumps({"id": "a", "turns": [{"role": "seeker", "text": "x", "items": [None]}]}),
     "jsonl", "line 2, field 'turns[0].items[0]'", "catalog id"),
    (json.dumps({"id": "a", "turns": [{"role": "seeker", "text": "x", "who": 1}]}),
     "jsonl", "line 2, field 'turns[0].who'", "unknown key"),
    (json.dumps({"id": "a", "turns": []}), "jsonl", "line 2, field 'turns'", "at least one"),
    (json.dumps({"id": " ", "turns": [{"role": "seeker", "text": "x"}]}), "jsonl",
     "line 2, field 'id'", "must not be empty"),
    (json.dumps(redial("b", [("S", "hi")], {}) | {"messages": [
        {"senderWorkerId": 3, "text": "hi"}]}), "redial",
     "line 2, field 'messages[0].senderWorkerId'", "neither the initiator"),
    (json.dumps(redial("b", [("S", "hi")], {}) | {"messages": [{"senderWorkerId": 1}]}),
     "redial", "line 2, field 'messages[0].text'", "missing"),
    (json.dumps(redial("b", [("S", "hi")], {"5": 7})), "redial",
     "line 2, field 'movieMentions.5'", "expected a title string"),
    (json.dumps({k: v for k, v in redial("b", [], {}).items() if k != "conversationId"}),
     "redial", "line 2, field 'conversationId'", "missing"),
    (json.dumps(redial("ok", [("S", "hi")], {})), "redial", "line 2, field 'conversationId'",
     "repeats the one on line 1"),
])
def test_bad_input_names_file_line_and_field(tmp_path: Path, line: str, fmt: str, where: str,
                                             says: str) -> None:
    good = json.dumps(redial("ok", [("S", "hi")], {})) if fmt != "jsonl" else json.dumps(
        {"id": "ok", "turns": [{"role": "seeker", "text": "hi"}]})
    path = write_jsonl(tmp_path / "bad.jsonl", [good, line])
    with pytest.raises(DataFormatError) as err:
        load_dialogues(path, fmt)  # type: ignore[arg-type]
    message = str(err.value)
    assert message.startswith(f"{path}, {where}: "), message
    assert says in message


def test_a_missing_or_empty_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="no such dialogues file"):
        load_dialogues(tmp_path / "nope.jsonl")
    with pytest.raises(DataFormatError, match="holds no conversation"):
        load_dialogues(write_jsonl(tmp_path / "empty.jsonl", ["", "  "]))
