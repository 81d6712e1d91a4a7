"""Settings: the [recommend] section is typed (validated when settings are resolved, a wrong
key named), and every setting has one default, in the config class that owns it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from tastelens.config.pipeline import PipelineConfig
from tastelens.config.settings import LLMSettings, load_settings
from tastelens.errors import ConfigError
from tastelens.llm.fake import FakeBackend


@pytest.fixture(autouse=True)
def no_outside_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./tastelens.toml
    for name in [n for n in __import__("os").environ if n.startswith("TASTELENS_")]:
        monkeypatch.delenv(name)


def test_recommend_is_a_pipeline_config() -> None:
    settings = load_settings(recommend={"k": 7, "profiler": {"max_tokens": 99}})
    assert isinstance(settings.recommend, PipelineConfig)
    assert (settings.recommend.k, settings.recommend.profiler.max_tokens) == (7, 99)
    assert settings.recommend.retriever == PipelineConfig().retriever
    again = PipelineConfig.model_validate_json(settings.recommend.model_dump_json())
    assert again == settings.recommend


@pytest.mark.parametrize(("table", "key"), [
    ({"rerankk": {"mode": "none"}}, "recommend.rerankk"),
    ({"rerank": {"mode": "magic"}}, "recommend.rerank.mode"),
    ({"profiler": {"concurrency": 0}}, "recommend.profiler.concurrency"),
])
def test_a_wrong_recommend_key_is_named(table: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(recommend=table)


def test_recommend_from_a_file_and_the_environment(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "custom.toml"
    file.write_text('[recommend]\nk = 4\n[recommend.rerank]\nmode = "listwise"\n')
    monkeypatch.setenv("TASTELENS_RECOMMEND__PROFILER__CONCURRENCY", "4")
    settings = load_settings(file)
    assert settings.recommend.k == 4 and settings.recommend.rerank.mode == "listwise"
    assert settings.recommend.profiler.concurrency == 4
    file.write_text('[recommend.explain]\nuse_lm = true\n')
    with pytest.raises(ConfigError, match=r"custom\.toml.*recommend\.explain\.use_lm"):
        load_settings(file)


def test_a_moved_key_names_its_new_home(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "old.toml"
    file.write_text("[recommend]\nexplore_slots = 0\n")
    with pytest.raises(ConfigError, match=r"old\.toml: key 'recommend\.explore_slots': "
                                          r"this key moved; set `retriever\.explore\.slots` in the "
                                          r"same table instead"):
        load_settings(file)
    monkeypatch.setenv("TASTELENS_RECOMMEND__EXPLORE_SLOTS", "0")
    with pytest.raises(ConfigError, match=r"TASTELENS_RECOMMEND__EXPLORE_SLOTS.*"
                                          r"retriever\.explore\.slots"):
        load_settings()


def _fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out += _fields(annotation, f"{prefix}{name}.")
        else:
            out.append((prefix + name, info.default))
    return out


def test_every_stage_defers_temperature_to_the_backend() -> None:
    stages = [(path, default) for path, default in _fields(PipelineConfig)
              if path.endswith("temperature")]
    assert {p for p, _ in stages} == {"profiler.temperature", "rerank.temperature",
                                      "explain.temperature"}
    assert all(default is None for _, default in stages)  # None = llm.temperature


def test_every_stage_defers_concurrency_to_the_backend() -> None:
    stages = [(path, default) for path, default in _fields(PipelineConfig)
              if path.endswith("concurrency")]
    assert {p for p, _ in stages} == {"profiler.concurrency", "rerank.concurrency",
                                      "explain.concurrency"}
    assert all(default is None for _, default in stages)
    shared = LLMSettings()
    llm = FakeBackend()
    assert (llm.default_concurrency, llm.default_max_tokens, llm.default_temperature) == (
        shared.concurrency, shared.max_tokens, shared.temperature)


# -- every section rejects unknown keys, and errors name their real source --------------
SECTIONS = ("chroma", "embedder", "llm", "api", "recommend")


@pytest.mark.parametrize("section", SECTIONS)
def test_every_section_rejects_a_typo_in_the_file(section: str, tmp_path: Path) -> None:
    (tmp_path / "tastelens.toml").write_text(f"[{section}]\nmodee = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert f"tastelens.toml: key '{section}.modee': unknown key" in message
    assert "_Resolved" not in message


@pytest.mark.parametrize("section", SECTIONS)
def test_a_typo_in_the_environment_names_the_variable(section: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"TASTELENS_{section.upper()}__MODEE", "http")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert (f"environment variable TASTELENS_{section.upper()}__MODEE: key "
            f"'{section}.modee': unknown key") in message
    # no ./tastelens.toml here: the message must not blame it
    assert "tastelens.toml" not in message and "_Resolved" not in message


def test_errors_name_the_flag_the_variable_and_the_file_each_for_its_own_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "mine.toml"
    file.write_text("[llm]\nport = 0\n")
    monkeypatch.setenv("TASTELENS_EMBEDDER__BATCH_SIZE", "0")
    with pytest.raises(ConfigError) as caught:
        load_settings(file, cache_dir=3)
    lines = str(caught.value).splitlines()[1:]
    assert sorted(line.split(": key ")[0].strip() for line in lines) == sorted([
        "--cache-dir", "environment variable TASTELENS_EMBEDDER__BATCH_SIZE", str(file)])


def test_a_table_in_the_environment_that_is_not_json_names_the_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASTELENS_LLM", "{not json")
    with pytest.raises(ConfigError, match="environment variable TASTELENS_LLM: not valid JSON"):
        load_settings()


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "tastelens.toml").write_text("[llm\n")
    with pytest.raises(ConfigError, match=r"tastelens\.toml: not valid TOML"):
        load_settings()


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_api_key_is_a_settings_error(value: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASTELENS_API__API_KEY", value)
    with pytest.raises(ConfigError,
                       match="environment variable TASTELENS_API__API_KEY: key 'api.api_key': "
                             "the API key is empty"):
        load_settings()


@pytest.mark.parametrize("value", ["change-me", "CHANGE-ME", "short-key-15chr"])
def test_a_weak_api_key_is_refused_with_how_to_make_one(value: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASTELENS_API__API_KEY", value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "TASTELENS_API__API_KEY: key 'api.api_key': the API key is too weak: use at " \
           "least 16" in message
    assert "python -c 'import secrets; print(secrets.token_urlsafe(32))'" in message
    assert value not in message  # a secret is never echoed
    monkeypatch.setenv("TASTELENS_API__API_KEY", "sixteen-chars-ok")
    assert load_settings().api.api_key.get_secret_value() == "sixteen-chars-ok"


def test_allowed_hosts_are_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASTELENS_API__ALLOWED_HOSTS", '["Recs.Example.com", "*.example.org"]')
    assert load_settings().api.allowed_hosts == ["recs.example.com", "*.example.org"]
    monkeypatch.setenv("TASTELENS_API__ALLOWED_HOSTS", '["recs.example.com:8080"]')
    with pytest.raises(ConfigError, match="expected a name without a port"):
        load_settings()


def test_settings_without_a_file_read_no_file(tmp_path: Path) -> None:
    (tmp_path / "tastelens.toml").write_text("seed = 7\n")
    assert load_settings().seed == 7
    from tastelens.config.settings import Settings

    assert Settings().seed == 42  # only load_settings reads ./tastelens.toml
