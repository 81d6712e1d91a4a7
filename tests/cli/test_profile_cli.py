"""`tastelens profile build` end to end with the 'fake' backend: the adapter option reaches
every request, its profiles say so, a profile of another adapter is not current, and the run
record says what ran."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastelens.cli.main import app
from tastelens.llm.fake import FakeBackend
from tastelens.profile_store import ProfileStore
from tastelens.schemas import InterestProfile

from ..conftest import grounded_profile_reply, write_movielens


@pytest.fixture()
def asked(monkeypatch) -> list:  # noqa: ANN001
    for name in list(os.environ):
        if name.startswith("TASTELENS_"):
            monkeypatch.delenv(name)
    requests: list = []

    def reply(request):  # noqa: ANN001, ANN202
        requests.append(request)
        return grounded_profile_reply(request)

    monkeypatch.setattr(FakeBackend, "from_settings",
                        classmethod(lambda cls, settings: cls(responder=reply)))
    return requests


def test_profile_build_answers_with_the_adapter_and_records_it(tiny_dataset, tmp_path: Path,
                                                                 asked: list) -> None:  # noqa: ANN001
    folder = write_movielens(tiny_dataset, tmp_path / "ml-tiny")
    settings = tmp_path / "tastelens.toml"
    settings.write_text('[llm]\nbackend = "fake"\n')
    store = tmp_path / "profiles.sqlite"

    def build(*args: str):  # noqa: ANN202
        return CliRunner().invoke(app, ["--settings", str(settings), "--cache-dir",
                                        str(tmp_path / "cache"), "profile", "build", "--data",
                                        str(folder), "--store", str(store), "--users", "1,2",
                                        *args])

    result = build("--adapter", "profile-adapter")
    assert result.exit_code == 0, result.output
    assert len(asked) == 2 and {r.adapter for r in asked} == {"profile-adapter"}
    with ProfileStore(store) as db:
        profile = InterestProfile.model_validate_json(db.get("1").profile_json)
    assert profile.provenance.adapter == "profile-adapter" and profile.provenance.llm_used
    record = json.loads(next((tmp_path / "runs").glob("*.json")).read_text())
    assert record["config"]["profiler"]["adapter"] == "profile-adapter"
    # the base model's profiles are other profiles: built again, not skipped
    result = build()
    assert result.exit_code == 0, result.output
    assert len(asked) == 4 and asked[-1].adapter is None
    assert build().exit_code == 0 and len(asked) == 4  # now current: skipped
