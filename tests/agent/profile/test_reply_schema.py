"""The per-user reply schema: evidence enums, bounds, the tighter retry, and what a guided
decoder would accept (checked with jsonschema, the same draft the servers implement)."""

import re

import pytest
from jsonschema import Draft202012Validator

from tastelens.agent.profile.reply_schema import profile_reply_schema
from tastelens.config.pipeline import ReplyLimits


def errors(schema, value) -> list[str]:
    return [e.message for e in Draft202012Validator(schema).iter_errors(value)]


def interest(label="Slow-burn heist thrillers", evidence=("h1",), granularity="topic"):
    return {"label": label, "granularity": granularity, "evidence": list(evidence)}


def test_evidence_is_an_enum_of_the_users_liked_and_low_rated_items():
    schema = profile_reply_schema(["h1", "h3"], ["h2"])
    good = {"likes": [interest(), interest("1990s Disney musicals", ["h3", "h1"])],
            "dislikes": [interest("Slapstick comedy", ["h2"])],
            "summary": "Enjoys careful crime stories.", "explore_next": ["Korean thrillers"]}
    assert errors(schema, good) == []
    # citing an item the user rated low as a like, or a liked one as a dislike, or one
    # never shown, is not a string the decoder can produce
    for bad in ({**good, "likes": [interest(evidence=["h2"]), interest()]},
                {**good, "dislikes": [interest(evidence=["h1"])]},
                {**good, "likes": [interest(evidence=["h9"]), interest()]}):
        assert any("is not one of" in e for e in errors(schema, bad))


def test_no_low_rated_item_shown_means_no_dislikes_list():
    schema = profile_reply_schema(["h1"], [])
    assert "dislikes" not in schema["properties"]
    assert schema["required"] == ["likes", "summary", "explore_next"]
    assert errors(schema, {"likes": [interest(), interest()], "summary": "x" * 20,
                           "explore_next": [], "dislikes": []})  # additionalProperties


def test_counts_and_lengths_are_bounded():
    limits = ReplyLimits()
    schema = profile_reply_schema(["h1", "h2", "h3", "h4"], ["h5"], limits)
    likes = schema["properties"]["likes"]
    assert (likes["minItems"], likes["maxItems"]) == (limits.min_likes, limits.max_likes)
    assert likes["items"]["properties"]["evidence"]["maxItems"] == limits.max_evidence
    assert schema["properties"]["summary"]["maxLength"] == limits.max_summary_chars
    label = re.compile(likes["items"]["properties"]["label"]["pattern"])
    assert label.match("1990s Disney musicals") and label.match("Rock & roll biopics")
    assert not label.match("Heat (1995)") and not label.match("Mummy, The")
    assert not label.match("x" * limits.max_label_chars + "y")
    # evidence never asks for more ids than the user has
    assert profile_reply_schema(["h1"], [])["properties"]["likes"]["items"][
        "properties"]["evidence"]["maxItems"] == 1


def test_the_retry_schema_is_tighter():
    loose, tight = ReplyLimits(), ReplyLimits().tighter()
    schema = profile_reply_schema(["h1", "h2"], ["h3"], tight)
    assert schema["properties"]["likes"]["maxItems"] == 2 < loose.max_likes + 1
    assert "explore_next" not in schema["properties"]
    assert schema["properties"]["summary"]["maxLength"] < loose.max_summary_chars
    assert errors(schema, {"likes": [interest()], "dislikes": [], "summary": "x" * 20}) == []


def test_a_user_without_liked_items_gets_no_schema():
    with pytest.raises(ValueError, match="at least one liked item"):
        profile_reply_schema([], ["h1"])
