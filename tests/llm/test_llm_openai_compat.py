"""The OpenAI-compatible client without a model: wire format and the server-down error."""

from __future__ import annotations

import asyncio
import os

import pytest

from tastelens.config.settings import load_settings
from tastelens.errors import ConfigError
from tastelens.llm import ChatRequest, LLMUnavailableError, create_backend, user
from tastelens.llm.openai_compat import OpenAICompatBackend, run_sync
from tastelens.llm.vllm_server import (
    VLLMBackend,
    VLLMServer,
    cpu_bind_env,
    cpu_has_fast_bf16,
    free_port,
    server_dtype,
)

SCHEMA = {"title": "Genre", "type": "object", "properties": {"genre": {"type": "string"}},
          "required": ["genre"]}


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: bound, then released


@pytest.mark.parametrize("backend", ["openai", "vllm"])
def test_server_down_raises_unavailable_with_the_url(backend: str) -> None:
    url = closed_port_url()
    settings = load_settings(llm={"backend": backend, "base_url": url, "request_timeout_s": 5})
    with create_backend(settings) as llm:
        with pytest.raises(LLMUnavailableError, match=f"cannot reach the LLM server at {url}.*"
                                                      "tastelens serve"):
            llm.generate([user("hello")] * 3)
        assert llm.stats.requests == 0


def test_check_reports_a_missing_server() -> None:
    url = closed_port_url()
    llm = OpenAICompatBackend(base_url=url, model="m")
    with pytest.raises(LLMUnavailableError, match="no OpenAI-compatible server answers"):
        llm.check()


def test_openai_wire_format_uses_response_format_and_adapter_as_model() -> None:
    llm = OpenAICompatBackend(base_url="http://x/v1", model="base")
    kwargs = llm.request_kwargs(ChatRequest(
        messages=[{"role": "user", "content": "hi"}], max_tokens=9, temperature=0.0,
        json_schema=SCHEMA, logprobs=3, adapter="profiler", stop=["\n"]))
    assert kwargs["model"] == "profiler"
    assert kwargs["response_format"] == {"type": "json_schema",
                                         "json_schema": {"name": "Genre", "schema": SCHEMA}}
    assert (kwargs["logprobs"], kwargs["top_logprobs"], kwargs["stop"]) == (True, 3, ["\n"])
    assert "extra_body" not in kwargs


def test_vllm_wire_format_uses_structured_outputs() -> None:
    llm = VLLMBackend(base_url="http://x/v1", model="base")
    kwargs = llm.request_kwargs(ChatRequest(messages=[{"role": "user", "content": "hi"}],
                                            max_tokens=9, temperature=0.0, json_schema=SCHEMA))
    assert kwargs["extra_body"] == {"structured_outputs": {"json": SCHEMA}}
    assert "response_format" not in kwargs and kwargs["model"] == "base"


def test_server_command_line(tmp_path) -> None:
    adapter = tmp_path / "profiler"
    settings = load_settings(cache_dir=tmp_path, llm={
        "port": 8765, "max_model_len": 2048, "max_lora_rank": 12, "kv_cache_gib": 3,
        "adapters": {"profiler": str(adapter)}, "server_args": ["--seed", "1"],
        "compact_json": True})
    server = VLLMServer(settings)
    cmd = server.command("/models/x")
    joined = " ".join(cmd)
    assert "-m vllm.entrypoints.openai.api_server --model /models/x" in joined
    assert "--served-model-name smollm2-135m-instruct" in joined
    assert "--port 8765" in joined and "--max-model-len 2048" in joined
    assert f"--enable-lora --max-lora-rank 16 --max-loras 1 --lora-modules profiler={adapter}" \
        in joined
    assert ('--structured-outputs-config {"backend": "xgrammar", "disable_any_whitespace": '
            'true}') in joined
    assert cmd[-2:] == ["--seed", "1"]
    assert server.environment()["VLLM_CPU_KVCACHE_SPACE"] == "3"
    assert server.environment()["HF_HUB_OFFLINE"] == "1"
    assert server.base_url == "http://127.0.0.1:8765/v1"
    assert server_dtype("bfloat16") == "bfloat16"


def test_auto_dtype_is_bfloat16_only_on_cpus_that_compute_it(tmp_path) -> None:
    zen4 = tmp_path / "zen4"
    zen4.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 avx512vl\n")
    old = tmp_path / "old"
    old.write_text("processor\t: 0\nflags\t\t: fpu avx2 fma\n")
    assert cpu_has_fast_bf16(zen4) and not cpu_has_fast_bf16(old)
    assert not cpu_has_fast_bf16(tmp_path / "missing")
    assert server_dtype("auto", fast_bf16=True) == "bfloat16"  # vllm-cpu is installed here
    assert server_dtype("auto", fast_bf16=False) == "float32"
    assert server_dtype("float32", fast_bf16=True) == "float32"


def test_server_refuses_a_missing_adapter_before_starting(tmp_path) -> None:
    settings = load_settings(cache_dir=tmp_path,
                             llm={"adapters": {"profiler": str(tmp_path / "none")}})
    with pytest.raises(LLMUnavailableError, match="'profiler'.*adapter_config.json"):
        VLLMServer(settings).start()


def test_run_sync_works_inside_a_running_event_loop() -> None:
    async def inner() -> int:
        return 7

    async def outer() -> int:
        return run_sync(inner())  # e.g. a sync backend call from a FastAPI handler

    assert asyncio.run(outer()) == 7


def test_vllm_cpu_gets_every_core_unless_told_otherwise() -> None:
    # vLLM's own rule keeps one core for its scheduler: half of a 2-core machine.
    assert cpu_bind_env("all", {}, available=[0, 1]) == {
        "VLLM_CPU_OMP_THREADS_BIND": "0,1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    assert cpu_bind_env("2-5", {}) == {"VLLM_CPU_OMP_THREADS_BIND": "2-5",
                                       "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    assert cpu_bind_env("auto", {}) == {}
    # the user's own environment wins
    assert cpu_bind_env("all", {"VLLM_CPU_OMP_THREADS_BIND": "nobind"}) == {}
    assert cpu_bind_env("all", {"VLLM_CPU_NUM_OF_RESERVED_CPU": "1"}, available=[3]) == {
        "VLLM_CPU_OMP_THREADS_BIND": "3"}
    env = VLLMServer(load_settings(llm={"cpu_cores": "0"})).environment()
    if "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
        assert env["VLLM_CPU_OMP_THREADS_BIND"] == "0"
    with pytest.raises(ConfigError, match="cpu_cores"):
        load_settings(llm={"cpu_cores": "half"})
