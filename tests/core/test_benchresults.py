"""Results files: a benchmark's block is written, replaced on the next run, and the rest of
the file is kept."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tastelens.benchresults import (
    command_line,
    figures_table,
    machine,
    markdown_table,
    write_results,
)

BLOCK = {"command": "python bench/x.py --users 10", "commit": "abc1234",
         "machine_text": "2 CPU cores (test), 24 GiB, no GPU",
         "when": datetime(2026, 1, 5, tzinfo=timezone.utc)}


def test_markdown_table_aligns_numbers_and_escapes_pipes() -> None:
    table = markdown_table([{"mode": "learned", "p50 s": 1.5512, "users": 10},
                            {"mode": "a|b", "p50 s": 0.1, "users": 1200, "note": "new"}])
    assert table.splitlines() == [
        "| mode | p50 s | users | note |",
        "|---|---:|---:|---|",
        "| learned | 1.551 | 10 |  |",
        "| a\\|b | 0.1 | 1,200 | new |",
    ]


def test_figures_table_flattens_nested_figures() -> None:
    assert figures_table({"seconds": 21.7, "tokens": {"prompt": 623, "completion": 142}}) == (
        "| figure | value |\n|---|---:|\n| seconds | 21.7 |\n| tokens.prompt | 623 |\n"
        "| tokens.completion | 142 |")


def test_write_creates_then_replaces_its_block_and_keeps_the_rest(tmp_path) -> None:
    path = tmp_path / "results" / "topic.md"
    write_results(path, "bench_x", title="Topic", table="| a |\n|---|\n| 1 |", **BLOCK)
    first = path.read_text()
    assert first.startswith("# Topic\n\n<!-- results: bench_x -->\n"
                            "### Latest run of `bench_x` (2026-01-05)\n")
    assert "- command: `python bench/x.py --users 10`\n- commit: `abc1234`\n" in first
    assert "- machine: 2 CPU cores (test), 24 GiB, no GPU\n" in first
    # text a person adds around the block stays; a second bench's block is appended
    path.write_text(first + "\nAn earlier run, explained.\n")
    write_results(path, "bench_y", title="Topic", table="| y |", **BLOCK)
    write_results(path, "bench_x", title="Topic", table="| a |\n|---|\n| 2 |",
                  notes="Measured on quiet cores.", **BLOCK)
    text = path.read_text()
    assert text.count("<!-- results: bench_x -->") == 1 and "| 1 |" not in text
    assert "| 2 |\n\nMeasured on quiet cores.\n<!-- /results: bench_x -->" in text
    assert "An earlier run, explained." in text
    assert text.index("bench_x") < text.index("An earlier run") < text.index("bench_y")


def test_bad_block_name_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="results block name"):
        write_results(tmp_path / "t.md", "a b", title="T", table="")


def test_machine_and_command_line() -> None:
    assert "CPU cores" in machine() and ("GPU" in machine())
    assert command_line(["bench/x.py", "--note", "two words"], environ={}) == \
        "python bench/x.py --note 'two words'"
    env = {"TASTELENS_LLM__PORT": "8100", "TASTELENS_API__API_KEY": "s3cret", "HOME": "/root",
           "TASTELENS_LLM__MERGED": '{"a": "runs/a"}'}
    assert command_line(["bench/x.py"], environ=env) == (
        "TASTELENS_API__API_KEY=... 'TASTELENS_LLM__MERGED={\"a\": \"runs/a\"}' "
        "TASTELENS_LLM__PORT=8100 python bench/x.py")
