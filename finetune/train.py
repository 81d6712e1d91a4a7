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

from tastelens.config.settings import Settings
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


@dataclass
class _Run:
    """One training run between its set-up and its adapter: the model, optimizer and data,
    and ``loop`` — the counters, loss curves and data position a checkpoint saves."""

    config: TrainConfig
    model: Any
    optimizer: Any
    scheduler: Any
    trainable: list[Any]
    train_set: list[Any]
    eval_set: list[Any]
    order: DataOrder
    pad_id: int
    device: str
    total: int
    loop: dict[str, Any]
    best: dict[str, Any] | None
    started: float
    wall_before: float

    # -- state -------------------------------------------------------------------------
    @property
    def step(self) -> int:
        return int(self.loop["step"])

    def stopped(self) -> bool:
        """Early stopping: ``early_stopping_patience`` evals in a row without improvement."""
        patience = self.config.early_stopping_patience
        return bool(patience and self.loop["bad_evals"] >= patience)

    def tokens_per_s(self) -> float:
        loop = self.loop
        return loop["tokens"] / loop["train_seconds"] if loop["train_seconds"] else 0.0

    def epoch(self) -> float:
        return self.order.epoch_of(self.loop["micro_batch"])

    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    # -- work --------------------------------------------------------------------------
    def evaluate(self) -> float:
        """The eval loss now; a new best (by min_delta) snapshots the adapter weights."""
        from peft import get_peft_model_state_dict

        config, loop = self.config, self.loop
        loss = eval_loss(self.model, self.eval_set, config.eval_batch_size or config.batch_size,
                         self.pad_id, self.device)
        loop["eval_loss"].append([loop["step"], loss])
        if loop["best_eval"] is None or loss < loop["best_eval"] - config.early_stopping_min_delta:
            loop.update(best_eval=loss, best_step=loop["step"], bad_evals=0)
            self.best = {k: v.detach().clone().cpu()
                         for k, v in get_peft_model_state_dict(self.model).items()}
        else:
            loop["bad_evals"] += 1
        return loss

    def checkpoint(self) -> None:
        self.loop["wall_seconds"] = self.wall_before + time.perf_counter() - self.started
        ckpt.save_checkpoint(self.config.output_dir, model=self.model, optimizer=self.optimizer,
                             scheduler=self.scheduler, loop=self.loop, best=self.best,
                             config=_resume_key(self.config), keep=self.config.keep_checkpoints)

    def train_step(self) -> TrainProgress:
        """One optimizer step over ``grad_accum`` micro-batches (token-weighted mean loss),
        then the eval and checkpoint it is due; returns what the progress bar shows."""
        import torch

        config, loop = self.config, self.loop
        step_started = time.perf_counter()
        groups = [[self.train_set[i] for i in self.order.batch(loop["micro_batch"] + k)]
                  for k in range(config.grad_accum)]
        n_target = sum(e.n_target for group in groups for e in group)
        loss_sum = 0.0
        for group in groups:
            loss, _ = target_loss(self.model, to_device(collate(group, self.pad_id), self.device))
            (loss / n_target).backward()  # token-weighted mean over the whole step
            loss_sum += float(loss.detach())
        if config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.trainable, config.max_grad_norm)
        lr = self.lr()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        loop["step"] += 1
        loop["micro_batch"] += config.grad_accum
        loop["tokens"] += sum(len(e.input_ids) for group in groups for e in group)
        loop["target_tokens"] += n_target
        loop["train_seconds"] += time.perf_counter() - step_started
        loop["train_loss"].append([loop["step"], loss_sum / n_target])
        evaluated = None
        if config.eval_every and (loop["step"] % config.eval_every == 0
                                  or loop["step"] == self.total):
            evaluated = self.evaluate()
        # The last step too: running a finished config again then only rewrites the outputs.
        if (loop["step"] % config.checkpoint_every == 0 or loop["step"] == self.total
                or self.stopped()):
            self.checkpoint()
        return TrainProgress(step=loop["step"], total_steps=self.total, epoch=self.epoch(),
                             loss=loop["train_loss"][-1][1], lr=lr,
                             tokens_per_s=self.tokens_per_s(), eval_loss=evaluated,
                             message="early stopping: no eval-loss improvement"
                             if self.stopped() else None)


def _start(config: TrainConfig, settings: Settings, resume: bool,
           ) -> tuple[_Run, dict[str, Any]]:
    """Load data, model and optimizer, resume from the newest checkpoint when asked; the
    run and what the final metrics report about the set-up."""
    import torch

    started = time.perf_counter()
    train_examples, eval_examples = load_examples(config)
    device, dtype = resolve_device(config)
    if config.threads:
        torch.set_num_threads(config.threads)
    model_path = base_model_path(config, settings)
    model, tokenizer = load_lora_model(config, model_path, device, dtype)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None \
        else tokenizer.eos_token_id

    encoder = ChatEncoder(tokenizer, end_token_loss=config.end_token_loss)
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
    run = _Run(config=config, model=model, optimizer=optimizer, scheduler=scheduler,
               trainable=trainable, train_set=train_set, eval_set=eval_set,
               order=DataOrder(len(train_set), config.batch_size, config.seed), pad_id=pad_id,
               device=device, total=total, loop=loop, best=best, started=started,
               wall_before=loop["wall_seconds"])
    setup = {"resumed": latest is not None, "model_path": model_path, "dtype": dtype,
             "dropped": {"train": len(dropped), "eval": len(eval_dropped)}}
    return run, setup


def _finish(run: _Run, setup: dict[str, Any], card: dict[str, Any] | None) -> TrainResult:
    """Load the best weights when asked, and write the adapter folder with its metrics."""
    from peft import set_peft_model_state_dict

    config, loop = run.config, run.loop
    if config.final_adapter == "best" and run.best is not None:
        set_peft_model_state_dict(run.model, {k: v.to(run.device) for k, v in run.best.items()})
    wall = run.wall_before + time.perf_counter() - run.started
    metrics = {
        "steps": loop["step"], "total_steps": run.total, "stopped_early": run.stopped(),
        "epochs": round(run.epoch(), 3),
        "final_adapter": "best" if config.final_adapter == "best" and run.best is not None
        else "last",
        "best_step": loop["best_step"], "best_eval_loss": loop["best_eval"],
        "train_loss": loop["train_loss"], "eval_loss": loop["eval_loss"],
        "tokens": loop["tokens"], "target_tokens": loop["target_tokens"],
        "tokens_per_s": round(run.tokens_per_s(), 1),
        "train_seconds": round(loop["train_seconds"], 1), "wall_time_s": round(wall, 1),
        "peak_memory": peak_memory(run.device), "resumed_at": loop["resumed_at"],
        "n_train": len(run.train_set), "n_eval": len(run.eval_set),
        "dropped_too_long": setup["dropped"],
        "device": run.device, "dtype": str(setup["dtype"]).removeprefix("torch."),
        "base_model": setup["model_path"],
    }
    adapter_dir = config.output_dir / ADAPTER_DIR
    write_adapter_dir(adapter_dir, model=run.model, config=config, metrics=metrics, card=card,
                      model_path=setup["model_path"])
    return TrainResult(adapter_dir=adapter_dir, metrics=metrics)


def train(config: TrainConfig, settings: Settings, *, resume: bool = True,
          progress: Callable[[TrainProgress], None] | None = None,
          on_step: Callable[[int], None] | None = None) -> TrainResult:
    """Run (or resume) the configured training; return the adapter folder and metrics.

    ``on_step(step)`` runs after each optimizer step and its checkpoint; an exception raised
    there stops the run as a kill would (tests use it).
    """
    report = progress or (lambda _p: None)
    run, setup = _start(config, settings, resume)
    card = read_card(config.data_dir)
    loop = run.loop
    report(TrainProgress(step=run.step, total_steps=run.total, epoch=run.epoch(),
                         loss=loop["train_loss"][-1][1] if loop["train_loss"] else None,
                         lr=run.lr(), tokens_per_s=run.tokens_per_s(),
                         message=f"resumed at step {run.step}" if setup["resumed"] else None))
    if config.eval_every and config.eval_at_start and not loop["eval_loss"]:
        # The base model's loss: the reference every later eval is judged against.
        report(TrainProgress(step=0, total_steps=run.total, epoch=0.0, loss=None, lr=run.lr(),
                             tokens_per_s=0.0, eval_loss=run.evaluate()))
    run.model.train()
    while run.step < run.total and not run.stopped():
        report(run.train_step())
        if on_step is not None:
            on_step(run.step)
    return _finish(run, setup, card)
