"""One contract for every LLM backend; each subclass supplies only the ``backend`` fixture.

The fake runs as a unit test; the transformers backend (in-process, real SmolLM2), the vLLM
backend and the generic OpenAI-compatible backend (both against one REAL vLLM server) are
integration tests. Checks rely on what any model must do (token counts, order, limits,
logprob arithmetic), never on a 135M model's wording.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from tastelens.llm import ChatResult, LLMBackend, LLMRequestError, user
from tastelens.llm.fake import FakeBackend
from tastelens.llm.openai_compat import OpenAICompatBackend
from tastelens.llm.vllm_server import VLLMBackend, VLLMServer

ADAPTER = "test-lora"
PROMPTS = ["Hi.", "Say hello to my friend Anna, please.",
           "Write one short sentence about the sea, the sky and the sand on a sunny beach."]


class Genre(BaseModel):
    genre: str


class BackendContract:
    """Behaviour every backend must show. Subclasses provide ``backend`` (which knows a LoRA
    adapter named 'test-lora')."""

    def test_one_result_per_request_in_order(self, backend: LLMBackend) -> None:
        results = backend.generate([user(p, max_tokens=6) for p in PROMPTS])
        assert len(results) == 3 and all(isinstance(r, ChatResult) for r in results)
        # Longer prompts have more prompt tokens: results are in request order.
        prompt_tokens = [r.prompt_tokens for r in results]
        assert prompt_tokens == sorted(prompt_tokens) and len(set(prompt_tokens)) == 3
        for r in results:
            assert 1 <= r.completion_tokens <= 6 and isinstance(r.text, str)
            assert r.finish_reason in ("stop", "length") and r.latency_s >= 0

    def test_max_tokens_is_a_hard_limit(self, backend: LLMBackend) -> None:
        result = backend.chat(user("Tell me a long story about a dragon.", max_tokens=3))
        assert isinstance(result, ChatResult)
        assert result.completion_tokens <= 3 and result.finish_reason == "length"

    def test_stats_add_up(self, backend: LLMBackend) -> None:
        backend.reset_stats()
        results = backend.generate([user(p, max_tokens=4) for p in PROMPTS[:2]])
        stats = backend.stats
        assert stats.requests == 2 and stats.errors == 0 and stats.seconds > 0
        assert stats.prompt_tokens == sum(r.prompt_tokens for r in results)
        assert stats.completion_tokens == sum(r.completion_tokens for r in results)

    def test_structured_is_valid_or_counted_never_raised(self, backend: LLMBackend) -> None:
        backend.reset_stats()
        outcome = backend.structured(
            user("Name one movie genre. Answer as JSON with the key genre.", max_tokens=40),
            Genre)
        stats = backend.stats
        assert stats.structured_calls == 1
        assert stats.invalid_first == outcome.attempts - 1
        if outcome.ok:
            assert isinstance(outcome.value, Genre) and stats.invalid_after_retry == 0
        else:
            assert outcome.error and stats.invalid_after_retry == 1
        if backend.guided_json:  # the server constrains decoding: first reply must be valid
            assert outcome.ok and outcome.attempts == 1

    def test_logprobs_are_returned_and_consistent(self, backend: LLMBackend) -> None:
        result = backend.chat(user("Hi!", max_tokens=4, logprobs=2, temperature=0.0))
        assert isinstance(result, ChatResult) and result.logprobs
        assert len(result.logprobs) == result.completion_tokens
        for token in result.logprobs:
            assert token.logprob <= 1e-4 and 1 <= len(token.top) <= 2
            # Greedy decoding picks the most likely token.
            assert token.logprob == pytest.approx(max(token.top.values()), abs=1e-3)
        assert backend.chat(user("Hi!", max_tokens=2)).logprobs is None

    def test_eight_concurrent_requests(self, backend: LLMBackend) -> None:
        results = backend.generate([user(f"Count to {i}.", max_tokens=4) for i in range(8)],
                                   concurrency=8)
        assert len(results) == 8 and all(isinstance(r, ChatResult) for r in results)

    def test_adapter_by_name_and_unknown_adapter(self, backend: LLMBackend) -> None:
        assert isinstance(backend.chat(user("Hi!", max_tokens=3, adapter=ADAPTER)), ChatResult)
        with pytest.raises(LLMRequestError, match="no-such-adapter"):
            backend.chat(user("Hi!", max_tokens=3, adapter="no-such-adapter"))

    def test_empty_batch(self, backend: LLMBackend) -> None:
        assert backend.generate([]) == []


def _fake_reply(request) -> str:
    if request.json_schema is not None:
        return '{"genre": "Drama"}'
    return " ".join(["word"] * 10)


class TestFakeBackend(BackendContract):
    @pytest.fixture
    def backend(self) -> FakeBackend:
        return FakeBackend(responder=_fake_reply, adapters={ADAPTER})


@pytest.mark.integration
class TestTransformersBackend(BackendContract):
    @pytest.fixture(scope="class")
    def backend(self, prepared_model: Path, lora_adapter: Path) -> Iterator[LLMBackend]:
        from tastelens.llm.transformers_local import TransformersBackend

        with TransformersBackend(model_path=str(prepared_model),
                                 adapters={ADAPTER: lora_adapter}).load() as llm:
            yield llm


@pytest.mark.integration
class TestVLLMBackend(BackendContract):
    @pytest.fixture(scope="class")
    def backend(self, vllm_server: VLLMServer) -> Iterator[LLMBackend]:
        with VLLMBackend(base_url=vllm_server.base_url, model=vllm_server.served_name) as llm:
            yield llm


@pytest.mark.integration
class TestOpenAICompatBackendOnVLLM(BackendContract):
    """The generic client (standard response_format) against the same server."""

    @pytest.fixture(scope="class")
    def backend(self, vllm_server: VLLMServer) -> Iterator[LLMBackend]:
        with OpenAICompatBackend(base_url=vllm_server.base_url,
                                 model=vllm_server.served_name) as llm:
            yield llm


@pytest.mark.integration
class TestReplicaBackendOnVLLM(BackendContract):
    """Two replicas, both the same real server under two host names."""

    @pytest.fixture(scope="class")
    def backend(self, vllm_server: VLLMServer) -> Iterator[LLMBackend]:
        from tastelens.llm.replicas import ReplicaBackend

        urls = [vllm_server.base_url, vllm_server.base_url.replace("127.0.0.1", "localhost")]
        with ReplicaBackend.for_urls(urls, model=vllm_server.served_name) as llm:
            yield llm
