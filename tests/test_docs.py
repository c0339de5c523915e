"""Every command documents itself; README and CI agree; the CLI starts fast and light."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from curator.cli import app

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


def test_help_is_instant_and_imports_no_torch_or_fiftyone():
    code = "import sys; from curator.cli import app; print(sorted(m for m in ('torch', 'timm', 'fiftyone', 'PIL', 'imagehash') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_python_dash_m_curator():
    out = subprocess.run([sys.executable, "-m", "curator", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "Usage:" in out.stdout
