"""The backend registry: one place, duplicates rejected, built-ins imported lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tastelens.config.settings import load_settings
from tastelens.errors import ConfigError, UnknownComponentError
from tastelens.llm import registry
from tastelens.llm.fake import FakeBackend


@pytest.fixture
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_a_second_backend_under_a_taken_name_is_rejected(clean_registry: None) -> None:
    with pytest.raises(ValueError, match="'fake' is already registered.*FakeBackend"):
        @registry.register_backend("fake")
        class Impostor(FakeBackend):
            pass


def test_registering_a_new_name_and_the_same_class_again(clean_registry: None) -> None:
    @registry.register_backend("scripted")
    class Scripted(FakeBackend):
        pass

    assert registry.register_backend("scripted")(Scripted) is Scripted
    assert registry.backend_class("scripted") is Scripted and Scripted.name == "scripted"
    assert "scripted" in registry.registered_backends()


def test_unknown_backend_names_the_known_ones() -> None:
    with pytest.raises(UnknownComponentError,
                       match="'nope'.*fake, openai, replicas, transformers, vllm"):
        registry.backend_class("nope")


def test_create_backend_uses_settings_defaults() -> None:
    settings = load_settings(llm={"backend": "fake", "max_tokens": 7, "temperature": 0.3,
                                  "concurrency": 5})
    with registry.create_backend(settings) as llm:
        assert isinstance(llm, FakeBackend)
        assert (llm.default_max_tokens, llm.default_temperature, llm.default_concurrency) == (
            7, 0.3, 5)
    assert llm.closed


def test_openai_backend_needs_a_base_url() -> None:
    with pytest.raises(ConfigError, match="llm.base_url"):
        registry.create_backend(load_settings(llm={"backend": "openai"}))


def test_choosing_fake_imports_neither_torch_nor_openai() -> None:
    code = ("import sys; from tastelens.llm import create_backend; "
            "from tastelens.config.settings import load_settings; "
            "create_backend(load_settings(llm={'backend': 'fake'})); "
            "print(sorted(m for m in ('torch', 'openai', 'vllm', 'transformers') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.strip()
    assert out == "[]"


def test_llm_backend_takes_any_registered_name(clean_registry: None) -> None:
    @registry.register_backend("scripted-too")
    class ScriptedToo(FakeBackend):
        pass

    with registry.create_backend(load_settings(llm={"backend": "scripted-too"})) as llm:
        assert isinstance(llm, ScriptedToo)
    settings = load_settings(llm={"backend": "nope"})  # a plug-in may register it later
    with pytest.raises(UnknownComponentError,
                       match=r"'nope' \(settings llm.backend\); known: .*scripted-too"):
        registry.create_backend(settings)
