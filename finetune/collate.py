"""Turn fine-tuning examples into token ids with a loss mask, in a reproducible order.

An example is tokenized the way serving sees it: the prompt messages through the tokenizer's
chat template *with* the generation prompt (what the backends send), then the assistant turn
as the template renders it (for SmolLM2: the target followed by ``<|im_end|>``). Prompt
positions get the label ``-100`` so only the target — and, unless ``end_token_loss`` is off
(answers read from log-probabilities, like the ranking letter), the end-of-turn token that
teaches the model to stop — carries loss. The two parts are tokenized separately, exactly as at
serving time, where the prompt is tokenized alone and the reply generated after it.

The data order is a pure function of (seed, epoch), so the position in the data is just a
micro-batch counter and a resumed run reads the very batches the killed one would have.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tastelens.errors import ConfigError
from tastelens.finetune.jsonl import Example

IGNORE = -100  # the label torch's cross-entropy skips


@dataclass(frozen=True)
class Encoded:
    """One tokenized example: ``labels`` is ``-100`` on every prompt position."""

    id: str
    input_ids: list[int]
    labels: list[int]

    @property
    def n_target(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


class ChatEncoder:
    """Tokenizes examples with a tokenizer's chat template (prompt masked, target kept)."""

    def __init__(self, tokenizer: Any, *, end_token_loss: bool = True) -> None:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ConfigError("key 'base_model': the tokenizer has no chat template; "
                              "fine-tuning needs an instruct/chat checkpoint")
        self.tokenizer = tokenizer
        self.eos_id = tokenizer.eos_token_id
        self.end_token_loss = end_token_loss

    def _ids(self, text: str) -> list[int]:
        # The chat template already wrote any BOS; adding special tokens again would double it.
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def split(self, example: Example) -> tuple[str, str]:
        """(prompt text, assistant text) as the chat template renders them."""
        messages = example.chat()
        prompt = self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                    add_generation_prompt=True)
        full = self.tokenizer.apply_chat_template(
            [*messages, {"role": "assistant", "content": example.target}], tokenize=False)
        if full.startswith(prompt):
            return prompt, full[len(prompt):]
        # A template that rewrites earlier turns once an answer follows: fall back to the
        # target plus the end-of-sequence token, which is what generation stops on.
        return prompt, example.target + (self.tokenizer.eos_token or "")

    def encode(self, example: Example) -> Encoded:
        prompt, answer = self.split(example)
        prompt_ids, answer_ids = self._ids(prompt), self._ids(answer)
        if self.eos_id is not None and self.eos_id in answer_ids:
            # Whatever the template writes after the end-of-turn token is never generated.
            end = answer_ids.index(self.eos_id)
            # Without end_token_loss the end-of-turn token is left out altogether (a
            # single-letter answer read from log-probabilities never needs to stop).
            answer_ids = answer_ids[:end + 1] if self.end_token_loss else answer_ids[:end]
        return Encoded(id=example.id, input_ids=prompt_ids + answer_ids,
                       labels=[IGNORE] * len(prompt_ids) + answer_ids)


def encode_examples(encoder: ChatEncoder, examples: Sequence[Example],
                    max_seq_len: int) -> tuple[list[Encoded], list[str]]:
    """(kept, ids of dropped examples): longer than ``max_seq_len`` tokens is dropped, never
    truncated — a cut-off target would teach the model to stop mid-answer."""
    kept, dropped = [], []
    for example in examples:
        encoded = encoder.encode(example)
        if len(encoded.input_ids) > max_seq_len or encoded.n_target == 0:
            dropped.append(example.id)
        else:
            kept.append(encoded)
    return kept, dropped


class DataOrder:
    """Micro-batch ``m`` -> example indices; a fresh seeded shuffle every epoch."""

    def __init__(self, n_examples: int, batch_size: int, seed: int) -> None:
        self.n = n_examples
        self.batch_size = batch_size
        self.seed = seed
        self.per_epoch = math.ceil(n_examples / batch_size)
        self._cache: tuple[int, np.ndarray] | None = None

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._cache is None or self._cache[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._cache = (epoch, rng.permutation(self.n))
        return self._cache[1]

    def epoch_of(self, micro_batch: int) -> float:
        return micro_batch / self.per_epoch

    def batch(self, micro_batch: int) -> list[int]:
        epoch, index = divmod(micro_batch, self.per_epoch)
        start = index * self.batch_size
        return [int(i) for i in self._permutation(epoch)[start:start + self.batch_size]]


def collate(batch: Sequence[Encoded], pad_id: int) -> dict[str, Any]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` tensors."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def eval_batches(examples: Sequence[Encoded], batch_size: int) -> list[list[Encoded]]:
    """Eval examples grouped by length (less padding; the loss does not depend on order)."""
    ordered = sorted(examples, key=lambda e: len(e.input_ids))
    return [ordered[i:i + batch_size] for i in range(0, len(ordered), batch_size)]
