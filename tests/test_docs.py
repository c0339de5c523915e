"""Every command documents itself; README and CI agree; the CLI starts fast and light."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

import pytest
import typer

from curator.cli import app
from curator.library import schema

from conftest import ROOT


def _commands(group: typer.Typer, prefix=()):
    cmd = typer.main.get_command(group)
    stack = [(prefix, cmd)]
    while stack:
        path, c = stack.pop()
        yield path, c
        for name, sub in getattr(c, "commands", {}).items():
            stack.append((path + (name,), sub))


COMMANDS = sorted(path for path, _ in _commands(app) if path)


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(cli, path):
    r = cli(*path, "--help")
    assert r.exit_code == 0
    cmd = dict(_commands(app))[path]
    if not getattr(cmd, "commands", None):  # leaf commands carry an example
        assert "Example: curator " in r.stdout, path


README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_is_in_the_readme_or_has_an_example(cli, path):
    """README.md is a guide, not a reference: a command it leaves out shows an example itself."""
    name = f"curator {' '.join(path)}"
    assert name in README or f"Example: {name}" in cli(*path, "--help").stdout, name


def _section(text: str, heading: str) -> str:
    return text.split(f"\n## {heading}", 1)[1].split("\n## ", 1)[0]


def test_the_readme_set_up_commands_are_the_ones_ci_runs():
    """The two set-up commands, as written: the demo, and the tests that `.ci/run` runs verbatim."""
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    test_command = ci[ci.index("# README test command:") + 1]
    blocks = [b.split("```", 1)[0].strip() for b in _section(README, "Set-up").split("```bash")[1:]]
    assert blocks == ["python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/curator demo", test_command]


def test_the_readme_is_a_short_guide():
    assert len(README.splitlines()) <= 460, "README.md is the user's guide: figures go to benchmarks/RESULTS.md"


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_figure_in_the_performance_table_is_in_the_results_it_links():
    """Each row's figures appear in the dated section of benchmarks/RESULTS.md that it links to."""
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text().split("\n## ")[1:]
    sections = {_anchor(s.split("\n", 1)[0]): s for s in results}
    rows = [line for line in _section(README, "Performance").splitlines() if line.startswith("| ") and "](" in line]
    assert len(rows) >= 15
    for row in rows:
        target, result, link = (cell.strip() for cell in row.strip().strip("|").split(" | "))
        anchor = re.fullmatch(r"\[[^]]+\]\(benchmarks/RESULTS\.md#([^)]+)\)", link).group(1)
        assert anchor in sections, f"{target}: no section #{anchor} in benchmarks/RESULTS.md"
        for figure in re.findall(r"\d[\d,.]*\d|\d", result):
            assert figure in sections[anchor], f"{target}: {figure} is not in #{anchor}"


# Heavy modules no command loads just to start: torch, timm and fiftyone load in the commands
# that use them, alembic only to change the schema, numpy only for array work. (Speed itself is
# measured by benchmarks/startup.py, never by a timed test.)
NOT_AT_START = ("torch", "timm", "fiftyone", "PIL", "imagehash", "alembic", "numpy", "scipy")
# ...nor SQLAlchemy for help: the commands import their services, which need it, when they run.
NOT_FOR_HELP = ("sqlalchemy", *NOT_AT_START)


def _loaded_after(code: str, heavy: tuple[str, ...] = NOT_AT_START) -> list[str]:
    check = f"import sys; {code}\nprint('loaded:', sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    return ast.literal_eval(out.stdout.rpartition("loaded: ")[2])


def _help(*paths: tuple[str, ...]) -> str:
    """Code that runs `curator PATH --help` for each path in turn, in one process."""
    return (f"from curator.cli import main\nfor path in {list(paths)!r}:\n    sys.argv = ['curator', *path, '--help']\n"
            "    try: main()\n    except SystemExit: pass")


def test_help_is_instant_and_imports_no_sqlalchemy_torch_or_fiftyone():
    """`curator --help` and every `curator COMMAND --help`, one after another in one process."""
    assert _loaded_after("from curator.cli import app", NOT_FOR_HELP) == []
    paths = [(), *COMMANDS]
    if loaded := _loaded_after(_help(*paths), NOT_FOR_HELP):
        first = next(p for p in paths if _loaded_after(_help(p), NOT_FOR_HELP))
        pytest.fail(f"`curator {' '.join(first)} --help` imports {loaded}: import them inside the command")


def test_opening_a_library_imports_no_alembic_or_numpy(library, db):
    """`curator stats` opens the library and checks its schema revision without Alembic."""
    code = (f"from curator.cli import main; sys.argv = ['curator', 'stats', '--db', {db!r}]\n"
            "try: main()\nexcept SystemExit as e: assert not e.code, e.code")
    assert _loaded_after(code) == []


def test_the_revisions_read_from_the_files_are_alembics(library):
    """The schema check reads the migration files itself; Alembic agrees with what it reads."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(schema.alembic_config())
    assert schema.revisions() == {s.revision: tuple(s._all_down_revisions) for s in scripts.walk_revisions()}
    assert schema.head_revision() == scripts.get_current_head()
    with library.engine.connect() as conn:
        assert schema.current_revision(library.engine) == MigrationContext.configure(conn).get_current_revision()


def test_python_dash_m_curator():
    out = subprocess.run([sys.executable, "-m", "curator", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "Usage:" in out.stdout
