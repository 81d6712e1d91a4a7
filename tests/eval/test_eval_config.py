"""Eval configs: the shipped ones load, and every error names the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from tastelens.errors import ConfigError
from tastelens.eval.config import EvalConfig, load_eval_config
from tastelens.eval.harness import check_systems

CONFIGS = Path(__file__).resolve().parents[2] / "eval" / "configs"

MINIMAL = """
[[systems]]
name = "pop"
type = "popularity"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_load_and_round_trip(path):
    # chat-*.toml are `eval chat` configs (tastelens.eval.chat.config), the rest `eval run`'s
    if path.name.startswith("chat-"):
        from tastelens.eval.chat.config import ChatEvalConfig, load_chat_eval_config

        load, model = load_chat_eval_config, ChatEvalConfig
    else:
        load, model = load_eval_config, EvalConfig
    config = load(path)
    assert config.source == path
    again = model.model_validate_json(config.model_dump_json())
    assert again.model_dump() == config.model_dump()
    if model is EvalConfig:  # every system's params are valid, and round-trip too
        systems = check_systems(config)
        for spec in config.systems:
            params = systems[spec.name].Config.model_validate(spec.params)
            assert type(params).model_validate_json(params.model_dump_json()) == params


def test_defaults(tmp_path):
    config = load_eval_config(_write(tmp_path, MINIMAL))
    assert config.metrics.k == [10, 20]
    assert config.protocol.kind == "full" and config.protocol.n_negatives == 19
    assert config.split.kind == "leave-last-out" and config.evaluate_on == "test"
    assert config.bootstrap.n_resamples == 1000 and config.bootstrap.confidence == 0.95
    assert config.users.n is None


@pytest.mark.parametrize("text, field", [
    (MINIMAL + "\n[protocol]\nkind = 'sampled'\n", "protocol.kind"),
    (MINIMAL + "\n[metrics]\nk = [10, 10]\n", "metrics"),
    (MINIMAL + "\n[split]\nkidn = 'temporal'\n", "split.kidn"),
    (MINIMAL + "\n[bootstrap]\nreference = 'ease'\n", "bootstrap.reference"),
    (MINIMAL + "\n[users]\nn = 0\n", "users.n"),
    ("evaluate_on = 'train'\n" + MINIMAL, "evaluate_on"),
    (MINIMAL + "\n[[systems]]\nname = 'pop'\ntype = 'ease'\n", "systems"),
    ("[dataset]\npath = 'x'\n", "systems"),
])
def test_errors_name_the_file_and_the_field(tmp_path, text, field):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_eval_config(path)
    message = str(err.value)
    assert str(path) in message and f"key {field!r}" in message


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_eval_config(_write(tmp_path, "[[systems]\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_eval_config(tmp_path / "nope.toml")


def test_overrides(tmp_path):
    text = MINIMAL + "\n[[systems]]\nname = 'e'\ntype = 'ease'\n[bootstrap]\nreference = 'pop'\n"
    config = load_eval_config(_write(tmp_path, text))
    only = config.with_overrides(users=5, systems=["e"], data=Path("/d"))
    assert [s.name for s in only.systems] == ["e"] and only.users.n == 5
    assert only.bootstrap.reference is None  # filtered out: no CIs rather than an error
    assert only.dataset.path == Path("/d") and only.source == config.source
    with pytest.raises(ConfigError, match="--system nope"):
        config.with_overrides(systems=["nope"])
