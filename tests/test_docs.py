"""Every command documents itself; README and CI agree; the CLI starts fast and light."""

from __future__ import annotations

import ast
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


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_is_in_the_readme(path):
    assert f"curator {' '.join(path)}" in (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    command = ci[ci.index("# README test command:") + 1]
    assert command in (ROOT / "README.md").read_text()


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
