"""README's tutorial, run as written: each command in order, from a folder holding sample_data/.

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
    """The tutorial's commands (every ```bash block of its section, in order), as argument lists
    without the leading ``curator``."""
    section = (ROOT / "README.md").read_text().split("\n## Tutorial", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in section.split("```bash")[1:]:
        for line in block.split("```", 1)[0].strip().splitlines():
            args = shlex.split(line, comments=True)
            assert args[0] == "curator", line
            commands.append(args[1:])
    return commands


def test_the_tour_is_all_curator_commands():
    names = [c[0] for c in tour_commands()]
    assert names[0] == "init" and "train" in names and "report" in names
    assert set(SHORTER) <= set(names)
    # The loop in the order a team works it.
    steps = ["import", "dedup", "embed", "discover", "similar", "build-splits", "train", "sweep", "bulk-identify",
             "find", "coverage", "suspects", "browse", "pull", "evaluate", "thresholds", "serve", "report"]
    assert [n for n in dict.fromkeys(names) if n in steps] == steps  # each command's first use
    assert "train" in names[names.index("bulk-identify"):]  # the pool is identified before the build at 40


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


def test_the_readme_tour_runs_as_written(tour, tmp_path, cli):
    def said(prefix: str) -> str:
        return next(r.stdout + r.stderr for line, r in tour.items() if line.startswith(prefix))

    assert "Run min40: " in said("train --splits min40") and "warm-started from first" in said("train --splits min40")
    assert "min40" in said("runs promote min40")
    assert "thresholds" in said("thresholds min40").lower()
    # Before min40 exists, the filters read first's predictions of the pool; the suspects' fold
    # runs never become the default.
    note = "Note: run min40 has not predicted the pool: run `curator bulk-identify --run min40`"
    for command in ("find", "coverage", "browse"):
        assert "Note:" not in said(command), command
        assert "suspects-first" not in said(command), command
    assert "images (predictions of first)." in said("find")
    assert "Pool predictions of first." in said("coverage")
    assert "predictions of first" in said("browse")
    assert (tmp_path / "report.html").stat().st_size > 0
    # At the tour's end min40 is the newest run and has not predicted the pool: the same filters
    # still read first's predictions, and say so with the command that fixes it.
    again = {line: cli(*shlex.split(line), *SHORTER.get(line.split()[0], []))
             for line in tour if line.split()[0] in ("find", "coverage", "browse")}
    assert len(again) == 3
    for line, r in again.items():
        assert r.exit_code == 0, f"curator {line}\n{r.output}"
        out = r.stdout + r.stderr
        assert note in out, line
        assert "suspects-first" not in out, line
        assert "predictions of first" in out, line
