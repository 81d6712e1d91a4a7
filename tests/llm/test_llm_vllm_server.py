"""The managed vLLM server: start-up, reuse of a running server, refusal of a taken port."""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from tastelens.cli.main import app
from tastelens.config.settings import Settings
from tastelens.llm import ChatResult, LLMUnavailableError, user
from tastelens.llm.vllm_server import VLLMBackend, VLLMServer

pytestmark = pytest.mark.integration


def _settings_on(server: VLLMServer, **llm: object) -> Settings:
    base = server.settings
    return base.model_copy(update={"llm": base.llm.model_copy(update={
        "port": server.port, "adapters": {}, **llm})})


def test_server_is_healthy_and_lists_model_and_adapter(vllm_server: VLLMServer) -> None:
    assert httpx.get(f"{vllm_server.url}/health", timeout=5).status_code == 200
    models = [m["id"] for m in httpx.get(f"{vllm_server.base_url}/models", timeout=5)
              .json()["data"]]
    assert vllm_server.served_name in models and "test-lora" in models
    assert vllm_server.startup_s and vllm_server.startup_s > 0
    assert vllm_server.log_path and vllm_server.log_path.is_file()


def test_backend_reuses_a_server_already_on_its_port(vllm_server: VLLMServer) -> None:
    backend = VLLMBackend.from_settings(_settings_on(vllm_server))
    with backend:
        assert isinstance(backend.chat(user("Hi!", max_tokens=2)), ChatResult)
        assert backend.server is None  # reused, so not ours to stop
    assert vllm_server.running


def test_a_server_with_another_model_on_the_port_is_refused(vllm_server: VLLMServer) -> None:
    backend = VLLMBackend.from_settings(_settings_on(vllm_server, served_model_name="other"))
    with pytest.raises(LLMUnavailableError, match="not 'other'"):
        backend.chat(user("Hi!", max_tokens=2))
    assert vllm_server.running


def test_starting_on_a_taken_port_fails_fast(vllm_server: VLLMServer) -> None:
    with pytest.raises(LLMUnavailableError, match=f"port {vllm_server.port}.*in use"):
        VLLMServer(_settings_on(vllm_server)).start()
    result = CliRunner().invoke(app, ["--cache-dir", str(vllm_server.settings.cache_dir),
                                      "serve", "--port", str(vllm_server.port)])
    assert result.exit_code == 1 and "already in use" in result.output
    assert vllm_server.running


def test_guided_json_is_valid_and_respects_string_limits(vllm_managed: VLLMBackend) -> None:
    from pydantic import BaseModel, Field

    class Pitch(BaseModel):
        title: str = Field(max_length=40)
        year: int = Field(ge=1900, le=2030)

    outcomes = vllm_managed.structured_many(
        [user(f"Invent a movie about topic {i}: title and year.", max_tokens=64)
         for i in range(4)], Pitch)
    # The grammar enforces the schema's bounds: no runaway titles cut off at max_tokens.
    assert all(o.ok and o.attempts == 1 for o in outcomes), [o.error for o in outcomes]
