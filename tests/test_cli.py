"""The command line as a whole: mistakes made before any command runs."""

from __future__ import annotations

import pytest
from conftest import error


@pytest.mark.parametrize("args, expected", [
    (["--db", "x.sqlite", "stats"], "Error: --db goes after the command: curator stats --db x.sqlite"),
    (["--db=x.sqlite", "classes", "--json"], "Error: --db goes after the command: curator classes --json --db x.sqlite"),
    (["--db"], "Error: --db goes after the command: curator COMMAND --db PATH"),
])
def test_db_before_the_command_says_where_it_goes(cli, args, expected):
    assert error(cli(*args)) == expected


def test_the_demo_says_how_to_put_curator_on_path(monkeypatch, tmp_path):
    from curator.cli.demo import on_path_hint

    monkeypatch.setenv("PATH", str(tmp_path))  # a fresh venv, not activated: no curator on PATH
    hint = on_path_hint()
    assert hint.startswith("  (first `source ") and "bin/activate` to put curator on your PATH" in hint
    (tmp_path / "curator").write_text("#!/bin/sh\n")
    (tmp_path / "curator").chmod(0o755)
    assert on_path_hint() == ""
