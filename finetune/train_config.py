"""The LoRA training run config: one TOML file under ``finetune/configs/`` plus CLI overrides.

Every key is a field of a pydantic model with ``extra="forbid"``, so a misspelt key is an
error; :func:`load_train_config` turns every problem — bad TOML, a wrong value, a LoRA rank the
vLLM server would refuse, a missing or malformed data file — into one :class:`ConfigError`
that names the file and the key, before any model is loaded. The resolved config round-trips
through JSON and is written as ``train_config.json`` beside the adapter.

Example (see ``finetune/configs/rank-cpu.toml``)::

    data_dir = "/tmp/ft_data/rank"
    output_dir = "runs/rank-cpu"
    max_steps = 150
    batch_size = 4
    max_seq_len = 1024

    [lora]
    r = 8
    alpha = 16
    target_modules = ["q_proj", "k_proj", "v_proj", "o_proj"]

Relative paths are relative to the working directory (like the eval configs).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from tastelens.config.base import (
    ConfigSection,
    format_validation_error,
    read_json_object,
    read_toml,
)
from tastelens.errors import ConfigError, DataFormatError
from tastelens.finetune.jsonl import CARD_FILE, EVAL_FILE, TRAIN_FILE, Example, read_jsonl
from tastelens.llm.adapters import VLLM_LORA_TARGETS


class LoraSection(ConfigSection):
    """The adapter's shape. Saved as a plain peft LoRA (no DoRA, no bias) so vLLM serves it."""

    r: int = Field(default=8, ge=1, description="LoRA rank; at most llm.max_lora_rank.")
    alpha: int = Field(default=16, ge=1, description="LoRA alpha (scaling = alpha / r).")
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0, description="Dropout on LoRA inputs.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], min_length=1,
        description=f"Linear layers to adapt; any of {', '.join(VLLM_LORA_TARGETS)}.")
    top_layers: int | None = Field(
        default=None, ge=1, description="Adapt only the last N decoder layers (None: all). The "
                                        "backward pass then stops below them, so a step "
                                        "costs less.")

    @field_validator("target_modules")
    @classmethod
    def _servable(cls, modules: list[str]) -> list[str]:
        unknown = [m for m in modules if m not in VLLM_LORA_TARGETS]
        if unknown:
            raise ValueError(f"{unknown} cannot be served by vLLM; use any of "
                             f"{list(VLLM_LORA_TARGETS)}")
        if len(set(modules)) != len(modules):
            raise ValueError("lists a module twice")
        return modules


class TrainConfig(ConfigSection):
    """One LoRA fine-tuning run."""

    base_model: str = Field(
        default="smollm2-135m-instruct",
        description="'smollm2-135m-instruct' is the prepared default checkpoint; any other "
                    "value is a local checkpoint folder or a Hugging Face id in the local cache.")
    data_dir: Path = Field(description=f"Folder with {TRAIN_FILE}, {EVAL_FILE} and {CARD_FILE}.")
    output_dir: Path = Field(description="Run folder: the adapter, checkpoints/, metrics.")
    tasks: list[Literal["rank", "profile"]] | None = Field(
        default=None, description="Train only on examples of these tasks (default: all).")
    lora: LoraSection = Field(default_factory=LoraSection)

    lr: float = Field(default=2e-4, gt=0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_steps: int = Field(default=0, ge=0, description="Linear warm-up optimizer steps.")
    lr_schedule: Literal["linear", "cosine", "constant"] = Field(
        default="linear", description="Decay after warm-up (to 0 at the last step).")
    max_grad_norm: float = Field(default=1.0, ge=0, description="Gradient clip; 0 = off.")

    epochs: float = Field(default=1.0, gt=0, description="Passes over train.jsonl, unless "
                                                         "max_steps is set.")
    max_steps: int | None = Field(default=None, ge=1, description="Optimizer steps; wins over "
                                                                   "epochs.")
    batch_size: int = Field(default=4, ge=1, description="Examples per forward pass.")
    grad_accum: int = Field(default=1, ge=1, description="Forward passes per optimizer step.")
    end_token_loss: bool = Field(
        default=True, description="Also train the end-of-turn token after each target "
                                  "(teaches stopping); false: the loss is on the target "
                                  "tokens only (the ranking letter, read from "
                                  "log-probabilities).")
    max_seq_len: int = Field(default=1024, ge=16, description="Longer examples are dropped "
                                                              "(and counted), never cut.")

    eval_every: int = Field(default=50, ge=0, description="Eval loss every N steps (and at "
                                                          "the end); 0 = no eval.")
    eval_at_start: bool = Field(default=True, description="Also evaluate the untrained "
                                "model (step 0), so the curve shows the improvement.")
    eval_max_examples: int | None = Field(default=None, ge=1, description="Evaluate on the "
                                          "first N examples of eval.jsonl (default: all).")
    eval_batch_size: int | None = Field(default=None, ge=1, description="Default batch_size.")
    early_stopping_patience: int = Field(
        default=0, ge=0, description="Stop after N evals without improvement; 0 = off.")
    early_stopping_min_delta: float = Field(default=0.0, ge=0,
                                            description="Smaller improvements do not count.")
    final_adapter: Literal["best", "last"] = Field(
        default="best", description="'best': the weights with the lowest eval loss.")

    checkpoint_every: int = Field(default=50, ge=1, description="Checkpoint every N steps.")
    keep_checkpoints: int = Field(default=1, ge=1, description="Newest checkpoints kept.")

    seed: int = Field(default=42, description="Adapter init, data order and dropout.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="'auto': bfloat16 on GPUs that support it and on CPUs that "
                                 "compute it natively (AVX512_BF16/AMX), else float32.")
    device: str = Field(default="auto", description="'auto' (cuda when present), 'cpu', "
                                                    "'cuda', 'cuda:1'...")
    threads: int | None = Field(default=None, ge=1, description="torch CPU threads.")

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.early_stopping_patience and not self.eval_every:
            raise ValueError("early_stopping_patience: needs eval_every (early stopping "
                             "watches the eval loss)")
        if self.device.startswith("cpu") and self.dtype == "float16":
            raise ValueError("dtype: float16 is not supported for training on the CPU; use "
                             "'auto' or 'float32'")
        return self

    @property
    def examples_per_step(self) -> int:
        return self.batch_size * self.grad_accum

    def total_steps(self, n_train: int) -> int:
        """Optimizer steps of the whole run for ``n_train`` usable examples."""
        if self.max_steps is not None:
            return self.max_steps
        return max(1, math.ceil(self.epochs * n_train / self.examples_per_step))

    def with_overrides(self, *, source: Path | None = None, max_lora_rank: int | None = None,
                       **overrides: Any) -> TrainConfig:
        """The config with CLI overrides (None = keep) applied and validated again."""
        raw = self.model_dump()
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return validate_train_config(raw, source, max_lora_rank=max_lora_rank)


def validate_train_config(raw: dict[str, Any], source: Path | None = None, *,
                          max_lora_rank: int | None = None) -> TrainConfig:
    """Validate a raw mapping; ``max_lora_rank`` (settings llm.max_lora_rank) bounds lora.r."""
    try:
        config = TrainConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "training config", source)) from None
    if max_lora_rank is not None and config.lora.r > max_lora_rank:
        raise ConfigError(
            f"{source or '<train config>'}: key 'lora.r': rank {config.lora.r} is above "
            f"llm.max_lora_rank={max_lora_rank}, so the vLLM server would refuse the adapter; "
            "lower lora.r or raise llm.max_lora_rank")
    return config


def load_train_config(path: Path, *, max_lora_rank: int | None = None,
                      check_data: bool = True, **overrides: Any) -> TrainConfig:
    """Read, override and validate a training TOML; check the data files exist and parse."""
    path = Path(path)
    raw = read_toml(path, "training config")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    config = validate_train_config(raw, path, max_lora_rank=max_lora_rank)
    if check_data:
        load_examples(config, source=path)
    return config


def read_card(data_dir: Path, where: object = "<train config>") -> dict[str, Any] | None:
    """The data set's ``card.json`` (copied beside the adapter), or None when there is none."""
    path = Path(data_dir) / CARD_FILE
    if not path.is_file():
        return None
    return read_json_object(path, f"{where}: key 'data_dir'")


def load_examples(config: TrainConfig, *,
                  source: Path | None = None) -> tuple[list[Example], list[Example]]:
    """(train, eval) examples of the configured tasks; every problem is a ConfigError."""
    where = source or "<train config>"
    data_dir = config.data_dir
    if not data_dir.is_dir():
        raise ConfigError(f"{where}: key 'data_dir': {data_dir} is not a folder (build one "
                          "with `tastelens finetune data`)")
    wanted = set(config.tasks) if config.tasks else None

    def read(name: str) -> list[Example]:
        try:
            examples = read_jsonl(data_dir / name)
        except DataFormatError as exc:
            raise ConfigError(f"{where}: key 'data_dir': {exc}") from None
        return [e for e in examples if wanted is None or e.task in wanted]

    read_card(data_dir, where)
    train = read(TRAIN_FILE)
    if not train:
        raise ConfigError(f"{where}: key 'data_dir': {data_dir / TRAIN_FILE} holds no "
                          f"examples{' of tasks ' + str(config.tasks) if wanted else ''}")
    needs_eval = config.eval_every > 0
    if not (data_dir / EVAL_FILE).is_file() and not needs_eval:
        return train, []
    evaluation = read(EVAL_FILE)
    if needs_eval and not evaluation:
        raise ConfigError(f"{where}: key 'eval_every': {data_dir / EVAL_FILE} holds no "
                          "examples to evaluate on; set eval_every = 0 or add eval data")
    return train, evaluation
