"""The ``eval chat`` config (the shipped TOML, overrides, errors naming the key) and the
command's one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastelens.cli.main import app
from tastelens.errors import ConfigError
from tastelens.eval.chat.baselines import check_baselines
from tastelens.eval.chat.config import load_chat_eval_config

from ...conftest import write_movielens
from .conftest import make_catalog, redial, write_jsonl

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "eval" / "configs" / "chat-redial.toml"


def test_the_shipped_config_is_valid_and_overridable() -> None:
    cfg = load_chat_eval_config(SHIPPED)
    assert cfg.protocol == "first" and cfg.split == "all" and cfg.metrics.k == [1, 10, 50]
    assert [b.name for b in cfg.baselines] == ["popularity", "itemknn", "ease", "sasrec",
                                               "dialogue-embedding"]
    check_baselines(cfg.baselines, cfg.where)
    new = cfg.with_overrides(protocol="every", split="tune", limit=5, seed=3, llm=True,
                             dialogues=Path("x.jsonl"), format="jsonl",
                             baselines=["itemknn"])
    assert (new.protocol, new.split, new.limit, new.bootstrap.seed, new.chat.llm) == (
        "every", "tune", 5, 3, True)
    assert new.dialogues.path == Path("x.jsonl") and new.dialogues.format == "jsonl"
    assert [b.name for b in new.baselines] == ["itemknn"] and new.source == SHIPPED
    with pytest.raises(ConfigError, match="--baseline nope: not in"):
        cfg.with_overrides(baselines=["nope"])


@pytest.mark.parametrize(("toml", "says"), [
    ('protocol = "all"\n', "key 'protocol'"),
    ('colour = 1\n', "key 'colour': unknown key"),
    ('[metrics]\nk = [1, 50]\n', "key 'metrics.k': must include 10"),
    ('[[baselines]]\nname = "x"\ntype = "nosuch"\n', "key 'baselines.0.type': unknown system"),
    ('[[baselines]]\nname = "x"\ntype = "itemknn"\nparams = { neighbours = 3 }\n',
     "key 'baselines.0.params'"),
    ('[[baselines]]\nname = "chat"\ntype = "popularity"\n', "key 'baselines.0.name'"),
])
def test_config_errors_name_the_file_and_key(tmp_path: Path, toml: str, says: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as err:
        cfg = load_chat_eval_config(path)
        check_baselines(cfg.baselines, cfg.where)
    assert str(path) in str(err.value) and says in str(err.value), str(err.value)


@pytest.fixture()
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("TASTELENS_")]:
        monkeypatch.delenv(name)
    return tmp_path


def test_the_command_prints_one_line_errors(clean_env: Path) -> None:
    runner = CliRunner()
    data = write_movielens(make_catalog(), clean_env / "films")
    bad = write_jsonl(clean_env / "d.jsonl", [redial("a", [("S", "hi")], {}),
                                              '{"conversationId": "b", "messages": 3}'])
    result = runner.invoke(app, ["eval", "chat", "--data", str(data), "--dialogues", str(bad),
                                 "--baseline", "popularity"])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1].startswith(f"Error: {bad}, line 2, field ")
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["eval", "chat", "--protocol", "all"])
    assert result.exit_code == 1
    assert "--protocol 'all': expected one of first, every" in result.output


def test_plain_progress_lines_never_go_quiet_for_long(capsys: pytest.CaptureFixture) -> None:
    import time

    from tastelens.cli.eval import _Lines

    with _Lines(every_s=0.0, quiet_s=0.3) as lines:
        lines("sasrec: fitting", 0, 3)
        time.sleep(1.6)                  # a long fit: the watcher speaks up
        lines("sasrec", 3, 3)
        lines("chat", 0, 3)
        lines("chat", 1, 3)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "sasrec: fitting (3 cases)"
    assert "sasrec: fitting: still running" in out
    assert out[-3].startswith("sasrec: 3/3 cases") and out[-2] == "chat: started (3 cases)"
    assert out[-1].startswith("chat: 1/3 cases")
