"""The explainer: supported reasons only, cited items among the most similar liked ones,
diversified across a list, and model sentences held to the same checks."""

import re

import numpy as np
import pandas as pd
import pytest

from tastelens.agent.explain import Explainer
from tastelens.agent.explain.vectors import ExplainVectors
from tastelens.agent.recommendation import Candidate
from tastelens.config.pipeline import ExplainConfig
from tastelens.data.dataset import Dataset
from tastelens.llm.fake import FakeBackend
from tastelens.schemas import Interest, Item

from .conftest import HISTORY

LIKED = {i for i, r in HISTORY if r >= 3.5}


def explainer(dataset, index=None, llm=None, **cfg) -> Explainer:
    return Explainer(ExplainConfig(**cfg), llm=llm, dataset=dataset, item_index=index)


def top_liked(dataset, index, item: str, n: int = 5) -> set[str]:
    """The n liked history items most similar to ``item`` that share a category with it —
    computed here from the stored vectors, not by the explainer."""
    cats = set(dataset.items[item].categories)
    ids = [i for i in LIKED if cats & set(dataset.items[i].categories)]
    sims = index.embeddings(ids) @ index.embeddings([item])[0]
    return {ids[k] for k in np.argsort(-sims, kind="stable")[:n]}


def test_config_round_trips_json():
    cfg = ExplainConfig(use_llm=True, adapter="why-lora", max_evidence=3, evidence_pool=7)
    assert ExplainConfig.model_validate_json(cfg.model_dump_json()) == cfg
    with pytest.raises(ValueError):
        ExplainConfig(max_evidence=0)


def test_nine_months_is_explained_by_what_it_is(movies, movie_index, movie_profile):
    """Regression (issue 16): retrieval found "Nine Months (1995)" (Comedy|Romance) for
    "1990s Drama" and "1990s Thriller"; the explanation names neither."""
    ex = explainer(movies, movie_index, evidence_min_similarity=0.0)
    rec = Candidate(item="1", score=1.0, matched=["1990s Drama", "1990s Thriller"])
    (expl,), fallbacks = ex.explain(movie_profile, HISTORY, [rec])
    assert fallbacks == 0 and expl.source == "data"
    assert "Drama" not in expl.text and "Thriller" not in expl.text
    assert expl.interests == ["1990s Comedy"]
    assert [(r.kind, r.label, r.support) for r in expl.reasons] == [
        ("interest", "1990s Comedy", "category Comedy; year 1995")]
    assert ex.stats.dropped_claims == 2
    # Cited: liked, sharing a genre, among the most similar — never Schindler's List.
    assert expl.evidence and set(expl.evidence) <= top_liked(movies, movie_index, "1")
    assert "3" not in expl.evidence and "6" not in expl.evidence
    titles = [movies.items[i].title for i in expl.evidence]
    assert expl.text == ('Matches your interest in "1990s Comedy", like '
                         + " and ".join(f'"{t}"' for t in titles) + " from your history.")


def test_k9_is_not_called_a_1990s_thriller(movies, movie_index, movie_profile):
    """Regression (issue 16): "K-9 (1989)" was explained as a "1990s Thriller"."""
    ex = explainer(movies, movie_index, evidence_min_similarity=0.0)
    rec = Candidate(item="2", score=1.0, matched=["1990s Thriller", "collaborative"])
    (expl,), _ = ex.explain(movie_profile, HISTORY, [rec])
    assert "1990s" not in expl.text and "Thriller" not in expl.text and expl.interests == []
    # None of the user's interests holds; one of their top genres does.
    assert expl.reasons[0].kind == "category" and expl.reasons[0].label == "Comedy"
    assert expl.text.startswith('One of your favourite genres, "Comedy"')
    assert "12" not in expl.evidence  # Die Hard was rated 2.0: never "you liked this"
    assert set(expl.evidence) <= top_liked(movies, movie_index, "2")


def test_a_tag_interest_is_claimed_for_a_tagged_item_only(movies, movie_index, movie_profile):
    ex = explainer(movies, movie_index)
    heat, clueless = Candidate(item="5", score=1.0), Candidate(item="13", score=0.5)
    (h, o), _ = ex.explain(movie_profile, HISTORY, [heat, clueless])
    # Heat (1995) is a 1990s Thriller with the tag (not a Drama); Ocean's Eleven (2001) only
    # has the tag.
    assert h.interests == ["1990s Thriller", "heist"] and h.reasons[1].support == "tag 'heist'"
    assert o.interests == ["heist"]


def test_nothing_similar_enough_means_nothing_cited(movies, movie_index, movie_profile):
    ex = explainer(movies, movie_index, evidence_min_similarity=0.99)
    (expl,), _ = ex.explain(movie_profile, HISTORY, [Candidate(item="9", score=1.0)])
    assert expl.evidence == [] and "history" not in expl.text
    assert expl.text == 'Matches your interest in "1990s Comedy".'
    assert ex.stats.uncited == 1
    (bare,), _ = ex.explain(None, [], [Candidate(item="13", score=1.0)])
    assert bare.text == "A Crime, Thriller pick for you." and bare.reasons == []
    (heat,), _ = ex.explain(None, [], [Candidate(item="5", score=1.0)])
    assert heat.text == "An Action, Crime pick for you."


def test_explored_wish_and_seed_reasons_are_checked(movies, movie_index, movie_profile):
    ex = explainer(movies, movie_index, evidence_min_similarity=0.0)
    explored = [Candidate(item="9", score=0.1, source="explored", matched=["Musical"]),
                Candidate(item="9", score=0.1, source="explored", matched=["Romance"])]
    wish = [Candidate(item="5", score=0.5, matched=["something with a heist"]),
            Candidate(item="10", score=0.5, matched=["something with a heist"])]
    out, _ = ex.explain(None, HISTORY, explored + wish)
    assert out[0].text.startswith("Something new to explore,") and out[0].interests == []
    assert out[1].text.startswith('Something new to explore: "Romance"')
    assert out[2].text.startswith('Fits your request "something with a heist"')
    assert out[3].reasons == [] and "request" not in out[3].text  # no heist in it
    seed = Candidate(item="10", score=0.5, matched=["seed:14"])
    (s,), _ = explainer(movies, movie_index, evidence_min_similarity=0.3).explain(
        None, HISTORY, [seed])
    assert s.reasons[0].kind == "seed" and s.text.startswith(
        'Close to "Four Weddings and a Funeral (1994)", which you asked about')
    (none,), _ = explainer(movies, None).explain(None, HISTORY, [seed])  # no vectors
    assert not any(r.kind == "seed" for r in none.reasons)


def test_a_list_cites_many_history_items_each_among_the_most_similar():
    """Two history items are (nearly) the most similar to all ten picks; each pick also has
    one own item 0.03 less similar, and the other items are far less similar. A pick's first
    citation is its own item when the shared ones were cited already (within the margin);
    the second ones go to items not cited yet. Every citation stays in the pick's pool."""
    items = {f"r{k}": Item(id=f"r{k}", title=f"Pick {k}", categories=("Sci-Fi",))
             for k in range(10)}
    items |= {f"h{k}": Item(id=f"h{k}", title=f"Seen {k}", categories=("Sci-Fi",))
              for k in range(12)}
    dataset = Dataset(name="picks", items=items, interactions=None)

    def unit(*pairs: tuple[int, float]) -> np.ndarray:
        v = np.zeros(40)
        for dim, x in pairs:
            v[dim] = x
        return v / np.linalg.norm(v)

    vectors = {f"r{k}": unit((0, 1), (k + 1, 1)) for k in range(10)}
    vectors |= {"h0": unit((0, 1)), "h1": unit((0, 1), (39, 0.1))}
    vectors |= {f"h{k + 2}": unit((0, 1), (k + 1, 1), (20 + k, 1.525)) for k in range(10)}
    history = [(f"h{k}", 4.5) for k in range(12)]
    recs = [Candidate(item=f"r{k}", score=1.0) for k in range(10)]

    def run(margin: float) -> list:
        ex = Explainer(ExplainConfig(evidence_margin=margin, evidence_min_similarity=0.0),
                       llm=None, dataset=dataset, vectors=ExplainVectors.fixed(vectors))
        return ex.explain(None, history, recs)[0]

    plain = run(0.0)  # no margin: every pick's first citation is its most similar item
    assert [e.evidence[0] for e in plain] == ["h0"] * 10
    assert len({i for e in plain for i in e.evidence}) >= 6
    out = run(0.05)
    # Pick 1: h0 was cited (counts 0.05 less), h1 was not; from pick 2 on both were, and
    # the pick's own item, 0.03 less similar, goes first.
    assert [e.evidence[0] for e in out] == ["h0", "h1"] + [f"h{k + 2}" for k in range(2, 10)]
    assert out[0].evidence == ["h0", "h2"] and out[1].evidence == ["h1", "h3"]
    assert len({i for e in out for i in e.evidence}) == 12
    for rec, expl in zip(recs, out):
        sims = {h: float(vectors[h] @ vectors[rec.item]) for h, _ in history}
        assert len(expl.evidence) == 2
        for h in expl.evidence:  # among the five most similar liked items
            assert sum(s > sims[h] + 1e-6 for s in sims.values()) < 5


def _catalog() -> tuple[Dataset, list[tuple[str, float]]]:
    """Items with tags only (no categories): liked history h*, recommendations r*."""
    import pandas as pd

    words = ["robots", "aliens", "mars", "moon", "comets"]
    items = {f"h{k}": Item(id=f"h{k}", title=f"Space {w.title()} ({1990 + k})",
                           tags=("space", w)) for k, w in enumerate(words)}
    items |= {f"r{k}": Item(id=f"r{k}", title=f"Space Saga {k}", tags=("space", words[k],
                                                                     words[k + 1]))
              for k in range(3)}
    history = [(f"h{k}", 4.5) for k in range(len(words))]
    frame = pd.DataFrame([("u", i, r, t) for t, (i, r) in enumerate(history)],
                         columns=["user", "item", "rating", "timestamp"]).astype(
        {"rating": "float64", "timestamp": "int64"})
    return Dataset(name="generic", items=items, interactions=frame), history


def test_catalog_without_categories_explains_from_tags():
    generic, history = _catalog()
    ex = explainer(generic)  # no index either: tag overlap ranks the history
    wish = Candidate(item="r0", score=1.0, matched=["robots in space"])
    (expl,), _ = ex.explain(None, history, [wish])
    assert expl.reasons[0].support == "tag 'robots', 'space'"
    # The two liked items sharing two of its three tags; equally similar: the newer first.
    assert expl.evidence == ["h1", "h0"]
    (other,), _ = ex.explain(None, history, [wish.model_copy(update={"item": "r2"})])
    assert other.reasons == [] and ex.stats.dropped_claims == 1


# -- model-written sentences ----------------------------------------------------------
def shown(request) -> dict[str, str]:
    """Short id -> title, as the model sees them."""
    block = request.messages[-1].content.split("<history>\n")[1].split("\n</history>")[0]
    return {line.split(" ", 1)[0]: re.match(r'"((?:[^"\\]|\\.)*)"', line.split(" ", 1)[1])[1]
            for line in block.splitlines()}


NINE = Candidate(item="1", score=1.0, matched=["1990s Drama"])


def test_model_sentence_from_checked_facts_is_shown(movies, movie_index, movie_profile):
    llm = FakeBackend(['{"text": "A warm romance like h1 and h2.", "evidence": ["h2", "h9"]}'])
    ex = explainer(movies, movie_index, llm, use_llm=True, adapter="why-lora",
                   evidence_min_similarity=0.0)
    (expl,), fallbacks = ex.explain(movie_profile, HISTORY, [NINE])
    (request,) = llm.received
    seen = shown(request)
    assert len(seen) == 4 and {movies.items[i].title for i in top_liked(
        movies, movie_index, "1")} >= set(seen.values())
    assert fallbacks == 0 and expl.source == "llm" and ex.stats.dropped_citations == 1
    assert expl.text == f'A warm romance like "{seen["h1"]}" and "{seen["h2"]}".'
    assert [movies.items[i].title for i in expl.evidence] == [seen["h2"]]
    assert expl.interests == ["1990s Comedy"]
    content = request.messages[-1].content
    assert 'Facts: "1990s Comedy"' in content and "1990s Drama" not in content
    lo, hi = movies.rating_range  # the catalog's own scale, no movie-site constant
    assert f"their rating from {lo:g} to {hi:g} when known" in request.messages[0].content
    assert "$" not in request.messages[0].content
    schema = request.json_schema["properties"]["evidence"]
    assert schema["items"]["enum"] == ["h1", "h2", "h3", "h4"] and schema["maxItems"] == 2
    assert request.max_tokens == 64 and request.adapter == "why-lora"


@pytest.mark.parametrize(("reply", "kind"), [
    ('{"text": "Another 1990s drama you will love, like h1.", "evidence": ["h1"]}', "genre"),
    ('{"text": "A tense thriller in the spirit of h1.", "evidence": ["h1"]}', "genre"),
    ('{"text": "Made in 1993, just like h1 was.", "evidence": ["h1"]}', "year"),
    ('{"text": "From the 80s, like h1 that you liked.", "evidence": ["h1"]}', "decade"),
    ('{"text": "It matches your interest in heist, like h1.", "evidence": ["h1"]}', "interest"),
    ('{"text": "Just like \\"Schindler\'s List (1993)\\" for you.", "evidence": ["h1"]}',
     "title"),
    ('{"text": "Just like \\"Heat (1995)\\", trust me.", "evidence": ["h1"]}', "title"),
    ('{"text": "Your \\"1990s Thriller\\" side will enjoy h1.", "evidence": ["h1"]}',
     "quoted"),
    ('{"text": "Same as h7 for you, trust me.", "evidence": ["h1"]}', "id"),
    ('{"text": "ok", "evidence": ["h1"]}', "short"),
])
def test_model_sentences_claiming_more_fall_back(movies, movie_index, movie_profile, reply,
                                                 kind):
    llm = FakeBackend([reply])
    ex = explainer(movies, movie_index, llm, use_llm=True, evidence_min_similarity=0.0)
    (expl,), fallbacks = ex.explain(movie_profile, HISTORY, [NINE])
    assert fallbacks == 1 and expl.source == "data" and ex.stats.fallbacks == 1
    assert expl.text.startswith('Matches your interest in "1990s Comedy"')
    assert ex.stats.rejected_texts == 1 and ex.stats.rejections == {kind: 1}
    assert ex.stats.unsupported_texts == int(kind not in ("id", "short"))


def test_model_may_name_the_titles_it_was_shown(movies, movie_index, movie_profile):
    """A shown title written out, year and all, is no claim about the pick's year."""
    def reply(request) -> str:
        title = shown(request)["h1"]
        return '{"text": "As warm as %s, and funny.", "evidence": ["h1"]}' % title

    ex = explainer(movies, movie_index, FakeBackend(responder=reply), use_llm=True,
                   evidence_min_similarity=0.0)
    (expl,), fallbacks = ex.explain(movie_profile, HISTORY, [NINE])
    assert fallbacks == 0 and expl.source == "llm" and "(199" in expl.text


def test_model_may_name_what_the_item_is(movies, movie_index, movie_profile):
    llm = FakeBackend(['{"text": "A 1990s comedy and romance from 1995, like h1.", '
                       '"evidence": ["h1"]}'])
    ex = explainer(movies, movie_index, llm, use_llm=True, evidence_min_similarity=0.0)
    (expl,), fallbacks = ex.explain(movie_profile, HISTORY, [NINE])
    assert fallbacks == 0 and expl.source == "llm"


def test_failures_down_and_no_pool(movies, movie_index, movie_profile):
    from tastelens.llm.base import ChatFailure
    from tastelens.llm.errors import LLMUnavailableError

    llm = FakeBackend([ChatFailure(kind="timeout", message="slow"), "no json",
                       '{"text": "Another romance like h1.", "evidence": ["h1"]}', "still none"])
    ex = explainer(movies, movie_index, llm, use_llm=True, concurrency=1,
                   evidence_min_similarity=0.0)
    recs = [Candidate(item=i, score=1.0) for i in ("1", "9", "10")]
    recs[2] = Candidate(item="15", score=1.0)
    out, fallbacks = ex.explain(movie_profile, HISTORY, recs)
    assert fallbacks == 2 and [e.source for e in out] == ["data", "data", "llm"]
    assert ex.stats.llm_requests == 3
    down = FakeBackend([LLMUnavailableError("refused")])
    out, fallbacks = explainer(movies, movie_index, down, use_llm=True,
                               evidence_min_similarity=0.0).explain(movie_profile, HISTORY,
                                                                    recs[:2])
    assert fallbacks == 2 and all(e.source == "data" and e.evidence for e in out)
    quiet = FakeBackend()  # nothing to cite: no request at all
    out, fallbacks = explainer(movies, movie_index, quiet, use_llm=True).explain(
        None, [], recs[:1])
    assert quiet.received == [] and fallbacks == 0 and out[0].source == "data"


def test_explain_many_batches_and_disabled(movies, movie_index, movie_profile):
    llm = FakeBackend(responder=lambda r: '{"text": "Much like h1 for you.", "evidence": ["h1"]}')
    ex = explainer(movies, movie_index, llm, use_llm=True, evidence_min_similarity=0.0)
    out = ex.explain_many([movie_profile, None], [HISTORY, [("11", 5.0)]],
                          [[NINE], [Candidate(item="2", score=1.0)] * 2])
    assert [len(e) for e, _ in out] == [1, 2] and len(llm.received) == 3
    assert out[1][0][0].evidence == ["11"]
    assert out[1][0][0].text == 'Much like "Lethal Weapon (1987)" for you.'
    off = explainer(movies, movie_index, llm, enabled=False)
    assert off.explain(movie_profile, HISTORY, [NINE]) == ([], 0)
    with pytest.raises(ValueError):
        ex.explain_many([None], [], [[NINE]])


@pytest.mark.integration
def test_real_vllm_explanations_pass_the_checks(movies, movie_index, movie_profile,
                                                vllm_managed):
    """The model writes the sentences (guided JSON through the session's vLLM server); every
    explanation shown, the model's or the template it fell back to, cites only liked items
    among the most similar and claims only what the item supports."""
    ex = explainer(movies, movie_index, vllm_managed, use_llm=True, evidence_min_similarity=0.0)
    recs = [NINE, Candidate(item="2", score=0.9, matched=["1990s Thriller"]),
            Candidate(item="5", score=0.8, matched=["heist"])]
    asked = vllm_managed.stats.requests
    explanations, fallbacks = ex.explain(movie_profile, HISTORY, recs)
    assert vllm_managed.stats.requests >= asked + 3  # one request per item (+ retries)
    assert len(explanations) == 3 and 0 <= fallbacks <= 3
    assert sum(e.source == "llm" for e in explanations) == 3 - fallbacks
    for rec, expl in zip(recs, explanations):
        assert set(expl.evidence) <= top_liked(movies, movie_index, rec.item)
        for reason in expl.reasons:
            assert ex.checker.check(reason.label, movies.items[rec.item]).ok or \
                reason.kind in ("category", "seed", "collaborative", "cooccurrence")
    assert "Thriller" not in explanations[1].text and "Drama" not in explanations[0].text


def test_first_citations_give_way_only_below_the_list_minimum(movies):
    """One citation per pick: both picks' most similar item is "a"; the second pick has
    nothing else. Below list_min_distinct the first pick cites "b" so the list cites two."""
    from tastelens.agent.explain.evidence import EvidencePicker

    def spread(**cfg) -> list[list[str]]:
        picker = EvidencePicker(ExplainConfig(max_evidence=1, **cfg), movies,
                                ExplainVectors.fixed({}))
        return picker.spread(["a", "a"], [["a", "b"], ["a"]])

    assert spread() == [["b"], ["a"]]
    assert spread(list_min_distinct=1) == [["a"], ["a"]]
    two = EvidencePicker(ExplainConfig(), movies, ExplainVectors.fixed({}))
    assert two.spread(["a", "a", None], [["a", "b", "c"], ["a", "b"], []]) == [
        ["a", "c"], ["a", "b"], []]


def test_the_models_that_found_an_item_are_said_last(movies, movie_index):
    ex = explainer(movies, movie_index, evidence_min_similarity=0.99)  # nothing to cite
    recs = [Candidate(item="13", score=1.0, matched=["collaborative", "cooccurrence"]),
            Candidate(item="13", score=1.0, matched=["cooccurrence"])]
    (seq, item_item), _ = ex.explain(None, HISTORY, recs)
    assert seq.text == "Watched by people whose history is like yours."
    assert seq.reasons[0].kind == "collaborative" and seq.reasons[0].label == ""
    assert item_item.text == "Often watched with films you have seen."


def test_keyword_and_topic_reasons_rest_on_the_items_own_descriptors(movie_index,
                                                                     movie_profile):
    """Side-information keywords support claims like tags do; a topic the item carries only
    in part is stated as that part ("Crime: heist"), never as the whole label."""
    from tastelens.data.descriptors import descriptors

    items = {i: Item(id=i, title=t, year=y, categories=tuple(g.split("|")), tags=(),
                     keywords=kw)
             for i, t, y, g, kw in [
                 ("5", "Heat (1995)", 1995, "Action|Crime|Thriller", ("heist", "los angeles")),
                 ("13", "Ocean's Eleven (2001)", 2001, "Crime|Thriller", ("casino",)),
                 ("16", "Reservoir Dogs (1992)", 1992, "Crime|Mystery|Thriller", ("heist",)),
                 ("7", "Pulp Fiction (1994)", 1994, "Comedy|Crime|Drama|Thriller", ())]}
    dataset = Dataset(name="kw", items=items, interactions=pd.DataFrame(
        [("u", "16", 5.0, 1), ("u", "7", 5.0, 2)],
        columns=["user", "item", "rating", "timestamp"]))
    profile = movie_profile.model_copy(update={"interests": [
        Interest(label="Crime: heist, bank robbery", granularity="topic", weight=1.0,
                 evidence=["16"], descriptors=["heist", "bank robbery"], source="data"),
        Interest(label="los angeles", granularity="keyword", weight=0.5, evidence=["7"],
                 descriptors=["los angeles"], source="data")]})
    ex = explainer(dataset)
    (heat, ocean), _ = ex.explain(profile, [("16", 5.0), ("7", 5.0)],
                                  [Candidate(item="5", score=1.0),
                                   Candidate(item="13", score=0.5)])
    assert heat.interests == ["Crime: heist", "los angeles"]
    assert heat.reasons[0].support == "category Crime; keyword 'heist'"
    assert heat.reasons[1].support == "keyword 'los angeles'"
    assert "bank robbery" not in heat.text
    assert ocean.interests == []  # a casino film carries none of those descriptors
    for reason in heat.reasons:  # every stated descriptor is one of the item's own
        words = reason.label.split(": ")[-1].split(", ")
        assert set(words) <= set(descriptors(items["5"]))
