"""Shared fixtures: a real migrated SQLite library in tmp_path, real image files, the CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from curator.cli import app
from curator.library import init_library, open_library

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"


@pytest.fixture
def db_path(tmp_path) -> Path:
    """Where a test's library lives; created by `library`, or by `curator init` in the test."""
    return tmp_path / "lib" / "curator.sqlite"


@pytest.fixture
def library(db_path):
    """A migrated, empty library."""
    init_library(db_path)
    lib = open_library(db_path)
    yield lib
    lib.close()


@pytest.fixture
def cli(db_path, monkeypatch):
    """Run `curator ...` against the test's library; returns the Result."""
    monkeypatch.setenv("CURATOR_DB", str(db_path))
    monkeypatch.setenv("CURATOR_USER", "tester")
    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke


def write_image(path: Path, size=(48, 40), seed: int = 0, fmt: str | None = None, **save) -> Path:
    """A real, distinct image: random coloured blocks, so pHashes differ between seeds."""
    rng = random.Random(seed)
    img = PILImage.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    for _ in range(6):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        w, h = rng.randrange(4, size[0] // 2 + 5), rng.randrange(4, size[1] // 2 + 5)
        img.paste(tuple(rng.randrange(256) for _ in range(3)), (x, y, x + w, y + h))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt, **save)
    return path


@pytest.fixture
def make_tree(tmp_path):
    """Build a folder of images from {relative path: seed}; returns the root."""

    def build(files: dict[str, int], root: str = "images") -> Path:
        base = tmp_path / root
        for rel, seed in files.items():
            write_image(base / rel, seed=seed)
        return base

    return build


def as_json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def error(result) -> str:
    """The one line a failed command prints: exit code 1, `Error: ...` on stderr, no traceback."""
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def ids(library) -> dict[str, int]:
    """Image ids by file name."""
    from sqlalchemy import select

    from curator.library.models import Image

    with library.session() as s:
        return {Path(im.path).name: im.id for im in s.scalars(select(Image))}
