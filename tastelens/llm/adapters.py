"""Check a LoRA adapter folder against the model it is about to be served on.

vLLM and peft load an adapter trained on another base without complaint as long as the tensor
shapes happen to fit (or fail deep inside the engine when they do not), so the backends call
:func:`check_adapter` first: it reads ``adapter_config.json`` and refuses, with a message that
names the adapter folder, an adapter whose base model is not the served one or whose rank is
above ``llm.max_lora_rank``.

"The same base" means: the same resolved folder, or — when the paths differ, e.g. an adapter
trained on another machine — the same architecture and shapes in the base's ``config.json``.
The trainer stores that fingerprint as ``base_model.json`` inside every adapter it writes, so
the check works even where the training machine's path does not exist.

Light on purpose (no torch, no peft): both LLM backends import it, and the trainer reads
the layers vLLM serves and writes the fingerprint with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tastelens.config.base import read_json_object
from tastelens.errors import ConfigError

ADAPTER_CONFIG = "adapter_config.json"
BASE_FINGERPRINT = "base_model.json"

# config.json keys that must agree for LoRA weights to mean the same thing on another copy.
FINGERPRINT_KEYS = ("architectures", "model_type", "hidden_size", "vocab_size",
                    "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                    "intermediate_size", "head_dim")

# Linear layers vLLM can serve LoRA on (it packs q/k/v and gate/up itself). Embeddings and
# lm_head are refused by current vLLM, so we never train them.
VLLM_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                     "down_proj")


def read_adapter_config(adapter_dir: Path) -> dict[str, Any]:
    """The parsed ``adapter_config.json`` of a peft adapter folder (ConfigError if absent)."""
    path = Path(adapter_dir) / ADAPTER_CONFIG
    if not path.is_file():
        raise ConfigError(f"LoRA adapter {adapter_dir}: no {ADAPTER_CONFIG} (expected a peft "
                          "adapter folder, e.g. the 'adapter' folder of a `tastelens finetune "
                          "train` run)")
    return read_json_object(path)


def model_fingerprint(config: dict[str, Any]) -> dict[str, Any]:
    """The shape-defining keys of a model ``config.json`` (missing keys are left out)."""
    return {key: config[key] for key in FINGERPRINT_KEYS if key in config}


def _read_config(folder: Path) -> dict[str, Any] | None:
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    return config if isinstance(config, dict) else None


def adapter_base_fingerprint(adapter_dir: Path, base_name: str | None) -> dict[str, Any] | None:
    """The base model's fingerprint: from ``base_model.json`` beside the adapter, else from
    the base folder's ``config.json`` when that folder exists here; None when unknown."""
    stored = Path(adapter_dir) / BASE_FINGERPRINT
    if stored.is_file():
        try:
            data = json.loads(stored.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("fingerprint"), dict):
                return model_fingerprint(data["fingerprint"])
        except json.JSONDecodeError:
            pass
    if base_name and Path(base_name).expanduser().is_dir():
        config = _read_config(Path(base_name).expanduser())
        if config is not None:
            return model_fingerprint(config)
    return None


def _same_path(a: str, b: str) -> bool:
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    if pa.exists() and pb.exists():
        return pa.resolve() == pb.resolve()
    return a.rstrip("/") == b.rstrip("/")


def _targets(config: dict[str, Any]) -> list[str]:
    targets = config.get("target_modules") or []
    return [targets] if isinstance(targets, str) else list(targets)


def check_adapter(adapter_dir: Path, served_model_path: str, max_rank: int, *,
                  for_vllm: bool = False) -> dict[str, Any]:
    """Refuse an adapter the served model cannot use; return its adapter config.

    ``served_model_path`` is what the backend loads (``resolve_model_path(settings)``);
    ``max_rank`` is ``llm.max_lora_rank``. With ``for_vllm`` the adapter must also be a plain
    LoRA on layers vLLM serves.
    """
    adapter_dir = Path(adapter_dir)
    config = read_adapter_config(adapter_dir)
    where = f"LoRA adapter {adapter_dir}"
    if config.get("peft_type", "LORA") != "LORA":
        raise ConfigError(f"{where}: peft_type is {config.get('peft_type')!r}; only LoRA "
                          "adapters can be served")
    rank = int(config.get("r") or 0)
    ranks = [rank, *(int(v) for v in (config.get("rank_pattern") or {}).values())]
    if max(ranks) > max_rank:
        raise ConfigError(f"{where}: rank {max(ranks)} is above llm.max_lora_rank={max_rank}; "
                          "raise llm.max_lora_rank or retrain with a smaller lora.r")
    if for_vllm:
        odd = [t for t in _targets(config) if t not in VLLM_LORA_TARGETS]
        if odd or config.get("use_dora") or config.get("modules_to_save"):
            raise ConfigError(f"{where}: vLLM serves plain LoRA on {list(VLLM_LORA_TARGETS)} "
                              f"only (target_modules={_targets(config)}, use_dora="
                              f"{config.get('use_dora')}, modules_to_save="
                              f"{config.get('modules_to_save')})")
    _check_base(adapter_dir, config.get("base_model_name_or_path"), served_model_path)
    return config


def _check_base(adapter_dir: Path, base_name: str | None, served_model_path: str) -> None:
    where = f"LoRA adapter {adapter_dir}"
    if base_name and _same_path(base_name, served_model_path):
        return
    served = _read_config(Path(served_model_path).expanduser())
    trained = adapter_base_fingerprint(adapter_dir, base_name)
    if served is not None and trained is not None:
        served_fp = model_fingerprint(served)
        diff = {k: (trained.get(k), served_fp.get(k)) for k in set(trained) | set(served_fp)
                if trained.get(k) != served_fp.get(k)}
        if not diff:
            return  # another copy of the same checkpoint (e.g. prepared on another machine)
        detail = ", ".join(f"{k}: adapter's base {a!r} vs served {b!r}"
                           for k, (a, b) in sorted(diff.items()))
        raise ConfigError(f"{where} was trained on {base_name!r}, a different model than the "
                          f"served {served_model_path!r} ({detail}); serve it on its own base "
                          "model or retrain it with base_model set to the served one")
    raise ConfigError(f"{where} was trained on {base_name!r}, not the served model "
                      f"{served_model_path!r}, and their configs cannot be compared here (no "
                      f"config.json for one of them and no {BASE_FINGERPRINT} in the adapter); "
                      "serve it on its own base model or retrain it")
