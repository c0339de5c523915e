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
