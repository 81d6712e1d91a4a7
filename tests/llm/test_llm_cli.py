"""`tastelens models ...` and `tastelens serve` argument handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastelens.cli.main import app
from tastelens.cli.serve import parse_adapters
from tastelens.errors import ConfigError

runner = CliRunner()


def test_parse_adapters() -> None:
    assert parse_adapters(["a=/x/a", "b = ~/b"]) == {"a": Path("/x/a"),
                                                     "b": Path("~/b").expanduser()}
    with pytest.raises(ConfigError, match="expected name=path"):
        parse_adapters(["just-a-path"])


def test_serve_is_a_plain_command() -> None:
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0 and "--adapter" in result.output and "--port" in result.output


def test_serve_reports_a_bad_adapter_without_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--cache-dir", str(tmp_path), "serve", "--adapter", "oops"])
    assert result.exit_code == 1 and "expected name=path" in result.output
    assert "Traceback" not in result.output


def test_serve_names_a_bad_merged_checkpoint_before_starting_anything(tmp_path: Path) -> None:
    cache = ["--cache-dir", str(tmp_path), "serve"]
    result = runner.invoke(app, [*cache, "--merged", "oops"])
    assert result.exit_code == 1 and "--merged 'oops': expected name=path" in result.output
    result = runner.invoke(app, [*cache, "--merged", f"profile-adapter={tmp_path / 'none'}"])
    assert result.exit_code == 1 and "llm.merged.profile-adapter" in result.output
    assert "holds no config.json" in result.output and "Traceback" not in result.output


def test_models_info_on_an_unprepared_cache(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--cache-dir", str(tmp_path), "models", "info"])
    assert result.exit_code == 1 and "tastelens models prepare" in result.output


@pytest.mark.integration
def test_models_prepare_and_info(llm_settings, prepared_model: Path) -> None:
    cache = ["--cache-dir", str(llm_settings.cache_dir)]
    result = runner.invoke(app, [*cache, "models", "prepare"])
    assert result.exit_code == 0 and "already prepared" in result.output
    result = runner.invoke(app, [*cache, "models", "info", "--json"])
    assert result.exit_code == 0
    info = json.loads(result.output)
    assert info["parameters"] == 134_515_008 and info["context_length"] == 8192
    assert Path(info["path"]) == prepared_model
