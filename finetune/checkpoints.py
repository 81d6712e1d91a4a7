"""Training checkpoints: everything a killed run needs to carry on as if it never stopped.

``<output_dir>/checkpoints/step-000050/`` holds

- ``adapter.safetensors``: the LoRA weights (peft state dict),
- ``best.safetensors``: the LoRA weights with the lowest eval loss so far (when any),
- ``trainer.pt``: optimizer and LR-scheduler state, torch/python RNG states and the loop
  state — step, data position (micro-batch counter), loss records, early-stopping counters,
  token and time totals — plus the config it was written under.

Each folder is written with :func:`tastelens.fsutil.staged_dir`, so a kill while saving
leaves the previous checkpoint intact and never a half-written one; resume picks the newest.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path
from typing import Any

from tastelens.errors import ConfigError
from tastelens.fsutil import staged_dir

CHECKPOINTS = "checkpoints"
ADAPTER_FILE = "adapter.safetensors"
BEST_FILE = "best.safetensors"
STATE_FILE = "trainer.pt"
_NAME = re.compile(r"^step-(\d+)$")

# Keys that may change between a run and its resume without changing what is trained.
RESUME_FREE_KEYS = {"output_dir", "device", "threads", "checkpoint_every", "keep_checkpoints",
                    "eval_batch_size"}


def checkpoint_dir(output_dir: Path) -> Path:
    return Path(output_dir) / CHECKPOINTS


def list_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first (staging folders start with '.' and never match)."""
    folder = checkpoint_dir(output_dir)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(output_dir: Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def clear_checkpoints(output_dir: Path) -> None:
    """Start over: stale checkpoints of an earlier run must not be resumed later."""
    shutil.rmtree(checkpoint_dir(output_dir), ignore_errors=True)


def rng_state() -> dict[str, Any]:
    import torch

    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(output_dir: Path, *, model: Any, optimizer: Any, scheduler: Any,
                    loop: dict[str, Any], best: dict[str, Any] | None, config: dict[str, Any],
                    keep: int) -> Path:
    """Write ``step-<loop['step']>`` atomically, then drop all but the newest ``keep``."""
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    final = checkpoint_dir(output_dir) / f"step-{loop['step']:06d}"
    with staged_dir(final) as tmp:
        weights = {k: v.detach().contiguous().cpu()
                   for k, v in get_peft_model_state_dict(model).items()}
        save_file(weights, str(tmp / ADAPTER_FILE))
        if best is not None:
            save_file(best, str(tmp / BEST_FILE))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": rng_state(), "loop": loop, "config": config}, tmp / STATE_FILE)
    for _, old in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def check_resumable(saved: dict[str, Any], current: dict[str, Any], where: Path) -> None:
    """Refuse to continue a run under a config that would train something else."""
    changed = sorted(k for k in set(saved) | set(current)
                     if k not in RESUME_FREE_KEYS and saved.get(k) != current.get(k))
    if changed:
        detail = "; ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise ConfigError(f"cannot resume from {where}: it was written under a different "
                          f"config ({detail}); use --no-resume to start over, or another "
                          "--out")


def load_checkpoint(path: Path, *, model: Any, optimizer: Any, scheduler: Any,
                    config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Restore weights, optimizer, scheduler and RNG in place; return (loop state, best)."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    check_resumable(state["config"], config, path)
    device = next(p.device for p in model.parameters() if p.requires_grad)
    set_peft_model_state_dict(model, load_file(str(path / ADAPTER_FILE), device=str(device)))
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    best = load_file(str(path / BEST_FILE)) if (path / BEST_FILE).is_file() else None
    return state["loop"], best
