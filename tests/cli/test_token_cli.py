"""`tastelens token issue|list|revoke` on a dataset folder: the token is printed once, the
store keeps its hash, an unknown user id or token id is one line and exit 1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastelens.cli.main import app
from tastelens.user_tokens import TokenStore, default_tokens_path

from ..conftest import write_movielens

runner = CliRunner()


@pytest.fixture
def folder(tiny_dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("TASTELENS_")]:
        monkeypatch.delenv(name)
    return write_movielens(tiny_dataset, tmp_path / "ml-tiny")


def token_cmd(cache: Path, *args: str):  # noqa: ANN201
    return runner.invoke(app, ["--cache-dir", str(cache), "token", *args])


def test_issue_list_revoke(folder: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    issued = token_cmd(cache, "issue", "--user", "3", "--note", "bob", "--data", str(folder))
    assert issued.exit_code == 0, issued.output
    token = issued.output.strip().splitlines()[-1]
    assert token.startswith("tlu_") and "shown once" in issued.output
    path = default_tokens_path(cache, "ml-tiny")
    with TokenStore(path) as store:
        assert store.user_of(token) == "3"
        (record,) = store.tokens()
    listed = token_cmd(cache, "list", "--data", str(folder))
    assert record.id in listed.output and "bob" in listed.output and token not in listed.output
    revoked = token_cmd(cache, "revoke", record.id, "--data", str(folder))
    assert revoked.exit_code == 0 and f"revoked {record.id} (user 3" in revoked.output
    with TokenStore(path) as store:
        assert store.user_of(token) is None
    again = token_cmd(cache, "issue", "--user", "3", "--data", str(folder))
    assert again.exit_code == 0
    by_user = token_cmd(cache, "revoke", "--user", "3", "--data", str(folder))
    assert "revoked 1 token(s) of user 3" in by_user.output


@pytest.mark.parametrize("args, says", [
    (["issue", "--user", "nobody"], "Error: unknown user id 'nobody' in dataset 'ml-tiny'"),
    (["revoke", "tok_nope"], "Error: no token with id 'tok_nope'"),
    (["revoke"], "Error: give a token id or --user"),
])
def test_mistakes_are_one_line(args: list[str], says: str, folder: Path,
                               tmp_path: Path) -> None:
    result = token_cmd(tmp_path / "cache", *args, "--data", str(folder))
    assert result.exit_code == 1 and result.output.strip().startswith(says), result.output
    assert "Traceback" not in result.output
