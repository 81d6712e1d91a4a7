"""LoRA fine-tuning: a plain, resumable training loop on torch + peft + transformers.

:func:`train` reads the data set named by a :class:`TrainConfig`, tokenizes it with the
base model's chat template (loss on the assistant target only), trains a LoRA adapter with
AdamW and a warm-up/decay schedule, evaluates the eval loss every ``eval_every`` steps (early
stopping on it), checkpoints every ``checkpoint_every`` steps, and finally writes
``<output_dir>/adapter/`` — a standard peft folder both LLM backends load (the transformers
backend's ``adapters=`` and vLLM's ``--lora-modules``) — with ``train_config.json``,
``card.json``, ``metrics.json``, ``base_model.json`` and ``run.json`` beside the weights.

A killed run started again with ``resume=True`` continues from the newest checkpoint: the
weights, optimizer, scheduler, RNG and data position are restored, so it reaches the same
final step with one continuous loss record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tastelens.errors import ConfigError
from tastelens.finetune import checkpoints as ckpt
from tastelens.finetune.collate import ChatEncoder, DataOrder, collate, encode_examples
from tastelens.finetune.lora_model import (
    base_model_path,
    eval_loss,
    load_lora_model,
    resolve_device,
    target_loss,
    to_device,
)
from tastelens.finetune.train_config import TrainConfig, load_examples, read_card
from tastelens.finetune.train_outputs import peak_memory, write_adapter_dir
from tastelens.settings import Settings

ADAPTER_DIR = "adapter"


@dataclass(frozen=True)
class TrainProgress:
    """What the progress bar shows after each optimizer step (and once at start)."""

    step: int
    total_steps: int
    epoch: float
    loss: float | None
    lr: float
    tokens_per_s: float
    eval_loss: float | None = None
    message: str | None = None


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path
    metrics: dict[str, Any]


def _schedule(config: TrainConfig, total: int) -> Callable[[int], float]:
    import math

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / (config.warmup_steps + 1)
        if config.lr_schedule == "constant":
            return 1.0
        progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
        if config.lr_schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return max(0.0, 1.0 - progress)

    return factor


def _fresh_loop() -> dict[str, Any]:
    return {"step": 0, "micro_batch": 0, "train_loss": [], "eval_loss": [], "best_eval": None,
            "best_step": None, "bad_evals": 0, "tokens": 0, "target_tokens": 0,
            "train_seconds": 0.0, "wall_seconds": 0.0, "resumed_at": []}


def _resume_key(config: TrainConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")


def train(config: TrainConfig, settings: Settings, *, resume: bool = True,
          progress: Callable[[TrainProgress], None] | None = None,
          on_step: Callable[[int], None] | None = None) -> TrainResult:
    """Run (or resume) the configured training; return the adapter folder and metrics.

    ``on_step(step)`` runs after each optimizer step and its checkpoint; an exception raised
    there stops the run as a kill would (tests use it).
    """
    import torch
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    started = time.perf_counter()
    report = progress or (lambda _p: None)
    train_examples, eval_examples = load_examples(config)
    card = read_card(config.data_dir)
    device, dtype = resolve_device(config)
    if config.threads:
        torch.set_num_threads(config.threads)
    model_path = base_model_path(config, settings)
    model, tokenizer = load_lora_model(config, model_path, device, dtype)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None \
        else tokenizer.eos_token_id

    encoder = ChatEncoder(tokenizer)
    train_set, dropped = encode_examples(encoder, train_examples, config.max_seq_len)
    eval_set, eval_dropped = encode_examples(
        encoder, eval_examples[:config.eval_max_examples], config.max_seq_len)
    if not train_set:
        raise ConfigError(f"key 'max_seq_len': all {len(train_examples)} training examples "
                          f"are longer than {config.max_seq_len} tokens; raise max_seq_len")
    if config.eval_every and not eval_set:
        raise ConfigError(f"key 'max_seq_len': every eval example is longer than "
                          f"{config.max_seq_len} tokens; raise max_seq_len")
    total = config.total_steps(len(train_set))
    order = DataOrder(len(train_set), config.batch_size, config.seed)

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config, total))
    loop, best = _fresh_loop(), None
    latest = ckpt.latest_checkpoint(config.output_dir) if resume else None
    if not resume:
        ckpt.clear_checkpoints(config.output_dir)
    if latest is not None:
        loop, best = ckpt.load_checkpoint(latest, model=model, optimizer=optimizer,
                                          scheduler=scheduler, config=_resume_key(config))
        loop["resumed_at"].append(loop["step"])
    wall_before = loop["wall_seconds"]

    def snapshot() -> dict[str, Any]:
        return {k: v.detach().clone().cpu() for k, v in get_peft_model_state_dict(model).items()}

    def evaluate() -> None:
        nonlocal best
        loss = eval_loss(model, eval_set, config.eval_batch_size or config.batch_size, pad_id,
                         device)
        loop["eval_loss"].append([loop["step"], loss])
        if loop["best_eval"] is None or loss < loop["best_eval"] - config.early_stopping_min_delta:
            loop.update(best_eval=loss, best_step=loop["step"], bad_evals=0)
            best = snapshot()
        else:
            loop["bad_evals"] += 1

    def stopped() -> bool:
        return bool(config.early_stopping_patience
                    and loop["bad_evals"] >= config.early_stopping_patience)

    def tokens_per_s() -> float:
        return loop["tokens"] / loop["train_seconds"] if loop["train_seconds"] else 0.0

    def checkpoint() -> None:
        loop["wall_seconds"] = wall_before + time.perf_counter() - started
        ckpt.save_checkpoint(config.output_dir, model=model, optimizer=optimizer,
                             scheduler=scheduler, loop=loop, best=best,
                             config=_resume_key(config), keep=config.keep_checkpoints)

    report(TrainProgress(step=loop["step"], total_steps=total,
                         epoch=order.epoch_of(loop["micro_batch"]),
                         loss=loop["train_loss"][-1][1] if loop["train_loss"] else None,
                         lr=scheduler.get_last_lr()[0], tokens_per_s=tokens_per_s(),
                         message=f"resumed at step {loop['step']}" if latest else None))
    if config.eval_every and config.eval_at_start and not loop["eval_loss"]:
        evaluate()  # the base model's loss: the reference every later eval is judged against
        report(TrainProgress(step=0, total_steps=total, epoch=0.0, loss=None,
                             lr=scheduler.get_last_lr()[0], tokens_per_s=0.0,
                             eval_loss=loop["eval_loss"][-1][1]))
    model.train()
    while loop["step"] < total and not stopped():
        step_started = time.perf_counter()
        groups = [[train_set[i] for i in order.batch(loop["micro_batch"] + k)]
                  for k in range(config.grad_accum)]
        n_target = sum(e.n_target for group in groups for e in group)
        loss_sum = 0.0
        for group in groups:
            loss, _ = target_loss(model, to_device(collate(group, pad_id), device))
            (loss / n_target).backward()  # token-weighted mean over the whole step
            loss_sum += float(loss.detach())
        if config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loop["step"] += 1
        loop["micro_batch"] += config.grad_accum
        loop["tokens"] += sum(len(e.input_ids) for group in groups for e in group)
        loop["target_tokens"] += n_target
        loop["train_seconds"] += time.perf_counter() - step_started
        loop["train_loss"].append([loop["step"], loss_sum / n_target])
        evaluated = None
        if config.eval_every and (loop["step"] % config.eval_every == 0 or loop["step"] == total):
            evaluate()
            evaluated = loop["eval_loss"][-1][1]
        # The last step too: running a finished config again then only rewrites the outputs.
        if loop["step"] % config.checkpoint_every == 0 or loop["step"] == total or stopped():
            checkpoint()
        report(TrainProgress(step=loop["step"], total_steps=total,
                             epoch=order.epoch_of(loop["micro_batch"]),
                             loss=loop["train_loss"][-1][1], lr=lr,
                             tokens_per_s=tokens_per_s(), eval_loss=evaluated,
                             message="early stopping: no eval-loss improvement"
                             if stopped() else None))
        if on_step is not None:
            on_step(loop["step"])

    if config.final_adapter == "best" and best is not None:
        set_peft_model_state_dict(model, {k: v.to(device) for k, v in best.items()})
    wall = wall_before + time.perf_counter() - started
    metrics = {
        "steps": loop["step"], "total_steps": total, "stopped_early": stopped(),
        "epochs": round(order.epoch_of(loop["micro_batch"]), 3),
        "final_adapter": "best" if config.final_adapter == "best" and best is not None
        else "last",
        "best_step": loop["best_step"], "best_eval_loss": loop["best_eval"],
        "train_loss": loop["train_loss"], "eval_loss": loop["eval_loss"],
        "tokens": loop["tokens"], "target_tokens": loop["target_tokens"],
        "tokens_per_s": round(tokens_per_s(), 1),
        "train_seconds": round(loop["train_seconds"], 1), "wall_time_s": round(wall, 1),
        "peak_memory": peak_memory(device), "resumed_at": loop["resumed_at"],
        "n_train": len(train_set), "n_eval": len(eval_set),
        "dropped_too_long": {"train": len(dropped), "eval": len(eval_dropped)},
        "device": device, "dtype": str(dtype).removeprefix("torch."), "base_model": model_path,
    }
    adapter_dir = config.output_dir / ADAPTER_DIR
    write_adapter_dir(adapter_dir, model=model, config=config, metrics=metrics, card=card,
                      model_path=model_path)
    return TrainResult(adapter_dir=adapter_dir, metrics=metrics)
