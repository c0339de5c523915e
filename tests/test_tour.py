"""README's quick tour, run as written: each command in order, from a folder holding sample_data/.

Only what would take minutes or never return is changed, by the table below: training uses a
tiny model for two epochs, the app and the server are not started (their own tests start them).
"""

from __future__ import annotations

import shlex

import pytest
from conftest import CLI_TINY, ROOT, SAMPLE

# command -> options added to shorten it, or None to leave it out.
SHORTER = {
    "train": [*CLI_TINY, "--epochs", "2"],
    "suspects": ["--epochs", "1"],  # the folds train with the run's own (tiny) options
    "sweep": [*CLI_TINY[:4], "--workers", "0", "--epochs", "1", "--init", "scratch"],  # no Lite0 for test_resnet
    "browse": ["--no-launch"],
    "serve": None,  # runs until Ctrl-C: tests/test_serve.py starts it
}


def tour_commands() -> list[list[str]]:
    """The tour's commands, as argument lists without the leading ``curator``."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## A quick tour", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.strip().splitlines():
        args = shlex.split(line, comments=True)
        assert args[0] == "curator", line
        commands.append(args[1:])
    return commands


def test_the_tour_is_all_curator_commands():
    names = [c[0] for c in tour_commands()]
    assert names[0] == "init" and "train" in names and "report" in names
    assert set(SHORTER) <= set(names)


@pytest.fixture
def tour(cli, tmp_path, monkeypatch):
    """Run the tour in a folder holding sample_data/; returns {command line: Result}."""
    (tmp_path / "sample_data").symlink_to(SAMPLE)
    monkeypatch.chdir(tmp_path)
    results = {}
    for args in tour_commands():
        extra = SHORTER.get(args[0], [])
        if extra is None:
            continue
        line = " ".join(args)
        results[line] = cli(*args, *extra)
        assert results[line].exit_code == 0, f"curator {line}\n{results[line].output}"
    return results


def test_the_readme_tour_runs_as_written(tour, tmp_path):
    def said(prefix: str) -> str:
        return next(r.stdout + r.stderr for line, r in tour.items() if line.startswith(prefix))

    assert "Run min40: " in said("train --splits min40") and "warm-started from first" in said("train --splits min40")
    assert "min40" in said("runs promote min40")
    assert "thresholds" in said("thresholds min40").lower()
    # After `bulk-identify --run first`, the filters read first's predictions of the pool (and
    # say that min40 has not predicted it); the suspects' fold runs never become the default.
    note = "Note: run min40 has not predicted the pool: run `curator bulk-identify --run min40`"
    for command in ("find", "coverage", "browse"):
        assert note in said(command), command
        assert "suspects-first" not in said(command), command
    assert "images (predictions of first)." in said("find")
    assert "Pool predictions of first." in said("coverage")
    assert "predictions of first" in said("browse")
    assert (tmp_path / "report.html").stat().st_size > 0
