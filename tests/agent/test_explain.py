"""Explanations: grounded in the user's history, validated, with a data template fallback."""

import json
from datetime import datetime, timezone

import pytest

from tastelens.agent.explain import Explainer
from tastelens.agent.recommendation import Candidate
from tastelens.llm.base import ChatFailure
from tastelens.llm.errors import LLMUnavailableError
from tastelens.llm.fake import FakeBackend
from tastelens.pipeline_config import ExplainConfig
from tastelens.schemas import CategoryPreference, Interest, InterestProfile

# tiny_dataset: item i has genre GENRES[(i - 1) % 6] = Action, Comedy, Drama, Horror,
# Animation, Romance; titles "<Genre> Movie <i> (<1979 + i>)".
HISTORY = [("1", 5.0), ("7", 4.0), ("13", 1.0), ("2", 4.5), ("3", None)]
DUMMY = datetime(2024, 1, 1, tzinfo=timezone.utc)


def profile(**extra):
    return InterestProfile(
        user="u", created_at=DUMMY, history_hash="x", n_items=5,
        interests=[Interest(label="loud car chases", granularity="topic", weight=0.9,
                            evidence=["7", "99"]),
                   Interest(label="gentle comedies", granularity="topic", weight=0.5,
                            evidence=["2"])],
        explore_next=["silent animation"], **extra)


def explainer(tiny_dataset, llm=None, **cfg):
    return Explainer(ExplainConfig(**cfg), llm=llm, dataset=tiny_dataset)


def shown(request) -> dict[str, str]:
    """Short id -> title, as the model sees them."""
    block = request.messages[-1].content.split("<history>\n")[1].split("\n</history>")[0]
    return {line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1].split(" genres ")[0])
            for line in block.splitlines()}


def test_config_round_trips_json():
    cfg = ExplainConfig(use_llm=True, adapter="why-lora", max_evidence=3)
    assert ExplainConfig.model_validate_json(cfg.model_dump_json()) == cfg
    with pytest.raises(ValueError):
        ExplainConfig(max_evidence=0)


def test_data_template_cites_interest_evidence_then_similar_liked_items(tiny_dataset):
    ex = explainer(tiny_dataset)
    action = Candidate(item="19", score=1.0, matched=["loud car chases", "behaviour"])
    (expl,), fallbacks = ex.explain(profile(), HISTORY, [action])
    assert fallbacks == 0 and expl.source == "data"
    assert expl.interests == ["loud car chases"]
    # Interest evidence first ("99" is not in the history: never cited), then similar items.
    assert expl.evidence == ["7", "1"]
    assert '"loud car chases"' in expl.text and '"Action Movie 7 (1986)"' in expl.text
    # "13" (Action) was rated 1: never "you liked this".
    horror = Candidate(item="10", score=1.0, matched=["behaviour"])
    (h,), _ = ex.explain(profile(), [("4", 4.0), ("16", 2.0)], [horror])
    assert h.evidence == ["4"] and h.text.startswith("Watched by people")


def test_data_template_for_explored_queries_and_no_history(tiny_dataset):
    ex = explainer(tiny_dataset)
    explored = Candidate(item="5", score=0.1, source="explored", matched=["silent animation"])
    query = Candidate(item="8", score=0.5, matched=["something funny"])
    out, fallbacks = ex.explain(profile(), HISTORY, [explored, query])
    assert out[0].text.startswith('Something new to explore: "silent animation"')
    assert out[0].interests == ["silent animation"]
    assert 'Fits your request "something funny"' in out[1].text
    assert out[1].evidence == ["2"]  # Comedy, like item 8
    (lonely,), _ = ex.explain(None, [], [Candidate(item="8", score=0.5)])
    assert lonely.evidence == [] and lonely.text == "A Comedy pick for you."
    assert ex.explain(profile(), HISTORY, []) == ([], 0)
    genre = Candidate(item="20", score=0.5, matched=["Comedy", "summary", "dislike:gore"])
    liked = profile(categories=[CategoryPreference(category="Comedy", weight=0.5, count=2)])
    (g,), _ = ex.explain(liked, HISTORY, [genre])
    assert g.text == 'One of your favourite genres, "Comedy", like "Comedy Movie 2 (1981)" ' \
                     "from your history."


def test_llm_explanation_maps_ids_and_drops_foreign_citations(tiny_dataset):
    llm = FakeBackend(['{"text": "Fast like h1, loud like h2.", "evidence": ["h2", "h9", "h2"]}'])
    ex = explainer(tiny_dataset, llm, use_llm=True, adapter="why-lora")
    rec = Candidate(item="19", score=1.0, matched=["loud car chases"])
    (expl,), fallbacks = ex.explain(profile(), HISTORY, [rec])
    (request,) = llm.received
    assert shown(request) == {"h1": "Action Movie 7 (1986)", "h2": "Action Movie 1 (1980)"}
    assert fallbacks == 0 and expl.source == "llm" and expl.evidence == ["1"]
    assert expl.text == 'Fast like "Action Movie 7 (1986)", loud like "Action Movie 1 (1980)".'
    assert expl.interests == ["loud car chases"]
    assert ex.stats.dropped_citations == 1
    schema = request.json_schema["properties"]["evidence"]
    assert schema["items"]["enum"] == ["h1", "h2"] and schema["maxItems"] == 2
    assert request.max_tokens == 64 and request.adapter == "why-lora"
    assert '"loud car chases"' in request.messages[-1].content
    assert 'Recommended: "Action Movie 19 (1998)"' in request.messages[-1].content


@pytest.mark.parametrize("reply", [
    '{"text": "You loved Horror Movie 4 (1983) so this fits.", "evidence": ["h7"]}',  # no id
    '{"text": "Just like \\"Drama Movie 9 (1988)\\" you saw.", "evidence": ["h1"]}',  # unseen
    '{"text": "Same as h5 for you, trust me.", "evidence": ["h1"]}',  # id it was not shown
    '{"text": "ok", "evidence": ["h1"]}',  # too short
])
def test_invalid_llm_explanations_fall_back_to_the_template(tiny_dataset, reply):
    llm = FakeBackend([reply])
    ex = explainer(tiny_dataset, llm, use_llm=True)
    rec = Candidate(item="19", score=1.0, matched=["loud car chases"])
    (expl,), fallbacks = ex.explain(profile(), HISTORY, [rec])
    assert fallbacks == 1 and expl.source == "data" and expl.evidence == ["7", "1"]
    assert set(expl.evidence) <= {i for i, _ in HISTORY}


def test_a_sentence_cut_by_the_length_limit_is_trimmed(tiny_dataset):
    llm = FakeBackend(['{"text": "Loud and fast like h1. It also has a long and", '
                       '"evidence": ["h1"]}'])
    ex = explainer(tiny_dataset, llm, use_llm=True)
    (expl,), _ = ex.explain(profile(), HISTORY, [Candidate(item="19", score=1.0)])
    assert expl.source == "llm" and expl.text == 'Loud and fast like "Action Movie 1 (1980)".'


def test_quoting_a_watched_title_is_fine(tiny_dataset):
    llm = FakeBackend(['{"text": "You liked \\"Comedy Movie 2 (1981)\\" a lot.", '
                       '"evidence": ["h1"]}'])
    ex = explainer(tiny_dataset, llm, use_llm=True)
    (expl,), fallbacks = ex.explain(profile(), HISTORY, [Candidate(item="8", score=1.0)])
    assert fallbacks == 0 and expl.source == "llm" and expl.evidence == ["2"]


def test_failures_and_unparseable_replies_fall_back_and_count(tiny_dataset):
    # First tries in request order, then the one retry of the unparseable reply.
    llm = FakeBackend([ChatFailure(kind="timeout", message="slow"), "no json",
                       '{"text": "Another action film like h1.", "evidence": ["h1"]}',
                       "still none"])
    ex = explainer(tiny_dataset, llm, use_llm=True, concurrency=1)
    recs = [Candidate(item=i, score=1.0) for i in ("19", "25", "31")]
    out, fallbacks = ex.explain(profile(), HISTORY, recs)
    assert fallbacks == 2 and [e.source for e in out] == ["data", "data", "llm"]
    assert ex.stats.fallbacks == 2 and ex.stats.llm_requests == 3


def test_llm_down_keeps_templates_and_no_history_needs_no_request(tiny_dataset):
    llm = FakeBackend([LLMUnavailableError("refused")])
    ex = explainer(tiny_dataset, llm, use_llm=True)
    recs = [Candidate(item="19", score=1.0), Candidate(item="25", score=1.0)]
    out, fallbacks = ex.explain(profile(), HISTORY, recs)
    assert fallbacks == 2 and all(e.source == "data" and e.evidence for e in out)
    quiet = FakeBackend()
    out, fallbacks = explainer(tiny_dataset, quiet, use_llm=True).explain(None, [], recs[:1])
    assert quiet.received == [] and fallbacks == 0 and out[0].source == "data"


def test_explain_many_batches_and_disabled(tiny_dataset):
    llm = FakeBackend(responder=lambda r: '{"text": "Much like h1 for you.", "evidence": ["h1"]}')
    ex = explainer(tiny_dataset, llm, use_llm=True)
    rec = [Candidate(item="19", score=1.0)]
    horror = [Candidate(item="22", score=1.0)] * 2
    out = ex.explain_many([profile(), None], [HISTORY, [("4", 5.0)]], [rec, horror])
    assert [len(e) for e, _ in out] == [1, 2] and len(llm.received) == 3
    assert out[1][0][0].evidence == ["4"]
    assert out[1][0][0].text == 'Much like "Horror Movie 4 (1983)" for you.'
    off = explainer(tiny_dataset, llm, enabled=False)
    assert off.explain(profile(), HISTORY, rec) == ([], 0)
    with pytest.raises(ValueError):
        ex.explain_many([None], [], [rec])


@pytest.mark.integration
def test_real_vllm_explanations_cite_only_the_history(tiny_dataset, vllm_managed):
    """The model writes the sentences (guided JSON through the session's vLLM server); every
    explanation, the model's or the template it fell back to, cites only watched items."""
    ex = explainer(tiny_dataset, llm=vllm_managed, use_llm=True)
    recs = [Candidate(item="19", score=1.0, matched=["loud car chases"]),
            Candidate(item="20", score=0.9, matched=["gentle comedies"]),
            Candidate(item="25", score=0.8, matched=["behaviour"])]
    asked = vllm_managed.stats.requests
    explanations, fallbacks = ex.explain(profile(), HISTORY, recs)
    assert vllm_managed.stats.requests >= asked + 3  # one request per item (+ retries)
    assert len(explanations) == 3 and 0 <= fallbacks <= 3
    assert sum(e.source == "llm" for e in explanations) == 3 - fallbacks
    watched = {item for item, _ in HISTORY}
    for expl in explanations:
        assert expl.text and set(expl.evidence) <= watched
