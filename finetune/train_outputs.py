"""What a finished training run leaves behind, and how much memory it took.

``<output_dir>/adapter/`` (written in one rename, so it is complete or absent):

- ``adapter_config.json`` + ``adapter_model.safetensors``: peft's ``save_pretrained`` — what
  ``PeftModel.from_pretrained``, the transformers backend and vLLM ``--lora-modules`` load;
- ``train_config.json``: the resolved training config (round-trips into ``TrainConfig``);
- ``card.json``: the data set's card, copied;
- ``metrics.json``: train/eval loss curves, tokens/s, peak memory, wall time, counts;
- ``base_model.json``: the base checkpoint's path and shape fingerprint (for
  :func:`tastelens.llm.adapters.check_adapter` on machines where that path differs);
- ``run.json``: git commit, package versions, platform (:mod:`tastelens.runinfo`).
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path
from typing import Any

from tastelens.llm.adapters import BASE_FINGERPRINT, model_fingerprint
from tastelens.finetune.train_config import TrainConfig
from tastelens.fsutil import atomic_write_json, staged_dir
from tastelens.runinfo import run_record

METRICS_FILE = "metrics.json"
CONFIG_FILE = "train_config.json"


def peak_memory(device: str) -> dict[str, float]:
    """Peak resident memory of this process (and peak CUDA allocation on a GPU), in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mib = rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024  # bytes vs KiB
    memory = {"rss_mib": round(rss_mib, 1)}
    if device.startswith("cuda"):
        import torch

        memory["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return memory


def write_adapter_dir(adapter_dir: Path, *, model: Any, config: TrainConfig,
                      metrics: dict[str, Any], card: dict[str, Any] | None,
                      model_path: str) -> None:
    """Save the adapter and its records atomically into ``adapter_dir``."""
    base_config = Path(model_path) / "config.json"
    fingerprint = (model_fingerprint(json.loads(base_config.read_text(encoding="utf-8")))
                   if base_config.is_file() else model_fingerprint(model.config.to_dict()))
    with staged_dir(adapter_dir) as tmp:
        model.save_pretrained(str(tmp))
        atomic_write_json(tmp / CONFIG_FILE, config.model_dump(mode="json"))
        if card is not None:
            atomic_write_json(tmp / "card.json", card)
        atomic_write_json(tmp / METRICS_FILE, metrics)
        atomic_write_json(tmp / BASE_FINGERPRINT, {"base_model": model_path,
                                                   "fingerprint": fingerprint})
        atomic_write_json(tmp / "run.json", run_record(config.model_dump(mode="json"),
                                                       base_model=model_path))
