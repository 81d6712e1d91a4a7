"""The model side of LoRA training: load base + tokenizer, wrap with peft, compute the loss.

The loss is taken only on target tokens, and only there are logits computed: the decoder's
hidden states are gathered at the target positions before the LM head. A ranking target is
two tokens after a prompt of several hundred, so this skips almost all of the
``tokens x vocab`` logits matrix (49k columns for SmolLM2) that a plain ``model(labels=...)``
call would build — on the CPU that is most of the memory and a good share of the time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tastelens.config.settings import Settings
from tastelens.errors import ConfigError
from tastelens.finetune.collate import IGNORE, Encoded, collate, eval_batches
from tastelens.finetune.train_config import TrainConfig
from tastelens.llm.models import resolve_model_path

# Models whose logits are post-processed after the LM head (soft-capping, scaling): the fast
# path would skip that, so they get the ordinary full forward.
_LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def base_model_path(config: TrainConfig, settings: Settings) -> str:
    """The checkpoint to train on, resolved like the backends resolve ``llm.model``."""
    llm = settings.llm.model_copy(update={"model": config.base_model})
    return resolve_model_path(settings.model_copy(update={"llm": llm}))


def resolve_device(config: TrainConfig) -> tuple[str, Any]:
    """(device, torch dtype): 'auto' picks cuda when present, and bfloat16 on GPUs that
    support it and on CPUs that compute it natively (AVX512_BF16/AMX), else float32."""
    import torch

    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"key 'device': {device!r} but no CUDA device is available")
    if config.dtype == "auto":
        if device.startswith("cuda"):
            bf16 = torch.cuda.is_bf16_supported()
        else:  # bench/results/finetune-throughput.md
            from tastelens.llm.vllm_server import cpu_has_fast_bf16

            bf16 = device == "cpu" and cpu_has_fast_bf16()
        return device, torch.bfloat16 if bf16 else torch.float32
    if config.dtype == "float16" and device == "cpu":
        raise ConfigError("key 'dtype': float16 is not supported for training on the CPU")
    return device, getattr(torch, config.dtype)


def load_lora_model(config: TrainConfig, model_path: str, device: str,
                    dtype: Any) -> tuple[Any, Any]:
    """(peft model on ``device`` with fresh LoRA weights seeded by ``config.seed``, tokenizer)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = Path(model_path).is_dir()
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=not local)
        base = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype,
                                                    local_files_only=not local)
    except OSError as exc:
        raise ConfigError(f"key 'base_model': cannot load {model_path!r} (a local checkpoint "
                          f"folder or a Hugging Face id in the local cache): {exc}") from None
    names = {name.rsplit(".", 1)[-1] for name, _ in base.named_modules()}
    missing = [m for m in config.lora.target_modules if m not in names]
    if missing:
        raise ConfigError(f"key 'lora.target_modules': {missing} not found in {model_path}")
    base.config.use_cache = False  # no KV cache while training
    torch.manual_seed(config.seed)  # the LoRA A matrices are drawn here
    layers = None
    if config.lora.top_layers is not None:
        n_layers = int(base.config.num_hidden_layers)
        if config.lora.top_layers > n_layers:
            raise ConfigError(f"key 'lora.top_layers': {config.lora.top_layers}, but "
                              f"{model_path} has {n_layers} decoder layers")
        layers = list(range(n_layers - config.lora.top_layers, n_layers))
    lora = LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha,
                      lora_dropout=config.lora.dropout, bias="none", task_type="CAUSAL_LM",
                      target_modules=list(config.lora.target_modules),
                      layers_to_transform=layers)
    model = get_peft_model(base, lora).to(device)
    return model, tokenizer


def target_loss(model: Any, batch: dict[str, Any]) -> tuple[Any, int]:
    """(summed cross-entropy over the batch's target tokens, number of target tokens)."""
    import torch.nn.functional as F

    labels = batch["labels"][:, 1:]  # position t predicts token t+1
    keep = labels != IGNORE
    n = int(keep.sum())
    base = model.get_base_model()
    if any(getattr(base.config, key, None) for key in _LOGIT_POSTPROCESSING):
        logits = model(input_ids=batch["input_ids"],
                       attention_mask=batch["attention_mask"]).logits[:, :-1]
        picked = logits[keep]
    else:
        decoder = getattr(base, base.base_model_prefix)
        hidden = decoder(input_ids=batch["input_ids"],
                         attention_mask=batch["attention_mask"]).last_hidden_state
        picked = base.get_output_embeddings()(hidden[:, :-1][keep])
    loss = F.cross_entropy(picked.float(), labels[keep], reduction="sum")
    return loss, n


def to_device(batch: dict[str, Any], device: str) -> dict[str, Any]:
    return {key: value.to(device) for key, value in batch.items()}


def eval_loss(model: Any, examples: Sequence[Encoded], batch_size: int, pad_id: int,
              device: str) -> float:
    """Mean cross-entropy per target token over ``examples`` (dropout off)."""
    import torch

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for group in eval_batches(examples, batch_size):
            loss, n = target_loss(model, to_device(collate(group, pad_id), device))
            total += float(loss)
            count += n
    if was_training:
        model.train()
    return total / max(count, 1)
