"""The in-process 'transformers' backend: no server, one request at a time.

Useful where vLLM is not installed, for debugging, and as the honest baseline in
``bench/llm_engines.py``. It has no guided decoding, so a request's ``json_schema`` is put in
the system prompt and the reply is parsed like any other: a small model's invalid replies are
retried once and counted by :meth:`LLMBackend.structured_many`, never hidden.

LoRA adapters from ``llm.adapters`` are attached with peft at load time; a request names one
in ``adapter`` (None = the base model, with adapters disabled).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tastelens.config.settings import LLMSettings, Settings
from tastelens.llm.adapters import check_adapter
from tastelens.llm.base import (
    ChatFailure,
    ChatMessage,
    ChatOutcome,
    ChatRequest,
    ChatResult,
    LLMBackend,
    TokenLogprob,
)
from tastelens.llm.errors import LLMRequestError, ModelNotPreparedError
from tastelens.llm.models import resolve_model_path
from tastelens.llm.registry import register_backend

SCHEMA_INSTRUCTION = ("Reply with only a JSON object (no prose, no code fence) that matches "
                      "this JSON schema:\n{schema}")


def with_schema_instruction(request: ChatRequest) -> list[dict[str, str]]:
    """The request's messages, with the JSON schema appended to the system prompt."""
    messages = [m.model_dump() for m in request.messages]
    if request.json_schema is None:
        return messages
    note = SCHEMA_INSTRUCTION.format(schema=json.dumps(request.json_schema, separators=(",", ":")))
    if messages[0]["role"] == "system":
        messages[0] = {"role": "system", "content": f"{messages[0]['content']}\n\n{note}"}
    else:
        messages.insert(0, ChatMessage(role="system", content=note).model_dump())
    return messages


@register_backend("transformers")
class TransformersBackend(LLMBackend):
    """``AutoModelForCausalLM.generate`` on a local checkpoint, loaded on first use."""

    def __init__(self, *, model_path: str, adapters: dict[str, Path] | None = None,
                 device: str | None = None, dtype: str | None = None,
                 max_lora_rank: int | None = None, **defaults: Any) -> None:
        """``device``, ``dtype``, ``max_lora_rank``: None = the :class:`LLMSettings` default
        (``llm.device``, ``llm.dtype``, ``llm.max_lora_rank``)."""
        super().__init__(**defaults)
        shared = LLMSettings()
        self.model_path = model_path
        self.max_lora_rank = shared.max_lora_rank if max_lora_rank is None else max_lora_rank
        self.adapters = dict(adapters or {})
        self.device = shared.device if device is None else device
        self.dtype = shared.dtype if dtype is None else dtype
        self._model: Any = None
        self._tokenizer: Any = None
        self._context: int | None = None
        self._run_lock = threading.Lock()  # one generate at a time, whoever calls

    @classmethod
    def from_settings(cls, settings: Settings) -> TransformersBackend:
        return cls(model_path=resolve_model_path(settings), adapters=settings.llm.adapters,
                   device=settings.llm.device, dtype=settings.llm.dtype,
                   max_lora_rank=settings.llm.max_lora_rank, **cls.defaults_from(settings))

    def load(self) -> TransformersBackend:
        """Load tokenizer, model and adapters (done on first use; call early to time it)."""
        if self._model is not None:
            return self
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.dtype == "auto":
            # float32 on CPU (no fast bfloat16 without AVX-512); the checkpoint's dtype on GPU.
            dtype: Any = torch.float32 if self.device == "cpu" else "auto"
        else:
            dtype = getattr(torch, self.dtype)
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model_path)
            model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=dtype)
        except OSError as exc:
            raise ModelNotPreparedError(
                f"cannot load the checkpoint {self.model_path!r}: {exc}") from exc
        if self.adapters:
            from peft import PeftModel

            for path in self.adapters.values():
                check_adapter(Path(path), self.model_path, self.max_lora_rank)

            (first, first_path), *rest = self.adapters.items()
            model = PeftModel.from_pretrained(model, str(first_path), adapter_name=first)
            for name, path in rest:
                model.load_adapter(str(path), adapter_name=name)
        self._model = model.to(self.device).eval()
        self._tokenizer = tokenizer
        self._context = getattr(model.config, "max_position_embeddings", None)
        return self

    def _generate(self, requests: Sequence[ChatRequest], concurrency: int) -> list[ChatOutcome]:
        self.load()
        with self._run_lock:
            return [self._one(r) for r in requests]

    def _one(self, request: ChatRequest) -> ChatOutcome:
        import torch

        started = time.perf_counter()
        tok, model = self._tokenizer, self._model
        inputs = tok.apply_chat_template(with_schema_instruction(request), tokenize=True,
                                         add_generation_prompt=True, return_dict=True,
                                         return_tensors="pt").to(self.device)
        prompt_len = int(inputs["input_ids"].shape[1])
        assert request.max_tokens is not None  # filled by LLMBackend.generate
        if self._context and prompt_len + request.max_tokens > self._context:
            return ChatFailure(kind="bad_request", message=(
                f"prompt ({prompt_len} tokens) + max_tokens ({request.max_tokens}) exceeds the "
                f"model's context of {self._context}"), latency_s=time.perf_counter() - started)
        kwargs: dict[str, Any] = {
            "max_new_tokens": request.max_tokens, "return_dict_in_generate": True,
            "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            "output_logits": request.logprobs is not None}
        if request.temperature:
            kwargs.update(do_sample=True, temperature=request.temperature, top_p=1.0, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if request.stop:
            kwargs.update(stop_strings=list(request.stop), tokenizer=tok)
        with torch.no_grad(), self._adapter(request.adapter):
            out = model.generate(**inputs, **kwargs)
        new = out.sequences[0, prompt_len:]
        ended = len(new) > 0 and int(new[-1]) in self._eos_ids()
        text = tok.decode(new, skip_special_tokens=True)
        for stop in request.stop:  # generate stops *after* the stop string; OpenAI drops it
            if stop in text:
                text, ended = text.split(stop, 1)[0], True
        return ChatResult(
            text=text, prompt_tokens=prompt_len, completion_tokens=len(new),
            latency_s=time.perf_counter() - started,
            logprobs=self._logprobs(out.logits, new, request.logprobs)
            if request.logprobs is not None else None,
            finish_reason="stop" if ended or len(new) < request.max_tokens else "length")

    def _eos_ids(self) -> set[int]:
        eos = self._model.generation_config.eos_token_id
        return set(eos if isinstance(eos, list) else [eos]) - {None}

    def _adapter(self, name: str | None) -> Any:
        import contextlib

        if name is None:
            return self._model.disable_adapter() if self.adapters else contextlib.nullcontext()
        if name not in self.adapters:
            raise LLMRequestError(f"unknown LoRA adapter {name!r}; configured adapters: "
                                  f"{sorted(self.adapters) or 'none'} (llm.adapters)")
        self._model.set_adapter(name)
        return contextlib.nullcontext()

    def _logprobs(self, logits: Sequence[Any], new: Any, top: int) -> list[TokenLogprob]:
        import torch

        result = []
        for step, token_id in zip(logits, new.tolist()):
            logp = torch.log_softmax(step[0].float(), dim=-1)
            alternatives = torch.topk(logp, top).indices.tolist() if top else []
            result.append(TokenLogprob(
                token=self._tokenizer.decode([token_id]), logprob=float(logp[token_id]),
                top={self._tokenizer.decode([i]): float(logp[i]) for i in alternatives}))
        return result

    def close(self) -> None:
        self._model = None
        self._tokenizer = None
