"""Merged checkpoints served by name (``llm.merged``): requests naming one go to its own
server, the others to the base server; config mistakes are named. The last test starts a
REAL vLLM server for a merged checkpoint and checks it answers as the adapter it came from."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tastelens.config.settings import Settings
from tastelens.errors import ConfigError
from tastelens.llm import ChatResult, user
from tastelens.llm.base import ChatRequest
from tastelens.llm.openai_compat import OpenAICompatBackend
from tastelens.llm.vllm_server import VLLMBackend, merged_settings


class Recording(VLLMBackend):
    """A merged model's backend that answers with its own name (no server)."""

    def __init__(self, name: str) -> None:
        super().__init__(base_url="http://127.0.0.1:1/v1", model=name)
        self.seen: list[ChatRequest] = []

    def _generate(self, requests, concurrency):  # noqa: ANN001, ANN202
        self.seen += requests
        return [ChatResult(text=self.model) for _ in requests]


def test_requests_naming_a_merged_model_go_to_its_server(monkeypatch) -> None:
    merged = {"rank-merged": Recording("rank-merged"), "other": Recording("other")}
    backend = VLLMBackend(base_url="http://127.0.0.1:1/v1", model="base", merged=merged)
    backend._ready = True  # the base server is "up"
    monkeypatch.setattr(OpenAICompatBackend, "_generate",
                        lambda self, reqs, c: [ChatResult(text=f"base:{r.adapter}") for r in reqs])
    requests = [ChatRequest(messages=user("a").messages, adapter=name)
                for name in ("rank-merged", None, "lora", "other", "rank-merged")]
    out = backend.generate(requests)
    assert [r.text for r in out] == ["rank-merged", "base:None", "base:lora", "other",
                                     "rank-merged"]  # in order, whatever the route
    assert len(merged["rank-merged"].seen) == 2 and len(merged["other"].seen) == 1


def test_merged_settings_name_mistakes(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"llm.merged.m: .* no config.json"):
        merged_settings(settings, "m", tmp_path / "nowhere", 1)
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "config.json").write_text("{}")
    own = merged_settings(settings, "m", tmp_path / "ck", 2)
    assert own.llm.port == settings.llm.port + 2 and own.llm.served_model_name == "m"
    assert own.llm.model == str((tmp_path / "ck").resolve()) and not own.llm.adapters
    clash = settings.model_copy(update={"llm": settings.llm.model_copy(update={
        "merged": {"x": tmp_path / "ck"}, "adapters": {"x": tmp_path}})})
    with pytest.raises(ConfigError, match=r"both name \['x'\]"):
        VLLMBackend.from_settings(clash)


@pytest.mark.integration
@pytest.mark.slow  # minutes: `make test-all` runs it, CI's `make test` does not
def test_a_merged_checkpoint_serves_like_its_adapter(vllm_managed: VLLMBackend,
                                                     prepared_model: Path,
                                                     tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tastelens.finetune.merge import merge_adapter
    from tastelens.llm.vllm_server import free_port

    # An adapter that changes the model (random B, unlike a fresh LoRA's zeros).
    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(prepared_model, dtype=torch.float32)
    lora = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"],
                      init_lora_weights=False)
    get_peft_model(base, lora).save_pretrained(tmp_path / "adapter")
    folder = merge_adapter(tmp_path / "adapter", str(prepared_model), tmp_path / "merged")

    # The session's base server, plus the merged model's own server on a free port.
    settings = vllm_managed.server.settings if vllm_managed.server else None
    assert settings is not None
    own = merged_settings(settings, "rank-merged", folder, free_port() - settings.llm.port)
    # Like with like: the reference below is float32, so the merged server is too ('auto'
    # is bfloat16 on CPUs that compute it natively, and a random adapter scaled by
    # lora_alpha=64 moves bfloat16 log-probabilities by more than the tolerance).
    own = own.model_copy(update={"llm": own.llm.model_copy(update={"dtype": "float32"})})
    merged = VLLMBackend.from_settings(own)
    backend = VLLMBackend(base_url=vllm_managed.base_url, model=vllm_managed.model,
                          merged={"rank-merged": merged})
    try:
        request = user("Name a famous movie.", max_tokens=1, logprobs=5, temperature=0.0)
        plain, folded = backend.generate([request, request.model_copy(
            update={"adapter": "rank-merged"})])
    finally:
        backend.close()
    assert isinstance(plain, ChatResult) and isinstance(folded, ChatResult)
    assert merged.server is not None and not merged.server.running  # closed with the backend

    # The merged server's first-token log-probabilities are the adapter's (peft, float32).
    tok = AutoTokenizer.from_pretrained(prepared_model)
    ids = tok.apply_chat_template([{"role": "user", "content": "Name a famous movie."}],
                                  add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)["input_ids"]
    adapted = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    with torch.no_grad():
        expected = torch.log_softmax(adapted(input_ids=ids).logits[0, -1], -1)
    first = folded.logprobs[0]
    assert first.token == tok.decode([int(expected.argmax())])
    for token, logprob in first.top.items():
        token_ids = tok(token, add_special_tokens=False)["input_ids"]
        if len(token_ids) == 1 and math.isfinite(logprob):
            assert logprob == pytest.approx(float(expected[token_ids[0]]), abs=0.15)
    assert plain.logprobs[0].top != first.top  # the base server answered the other one
