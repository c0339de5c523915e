"""Shared fixtures: a real migrated SQLite library in tmp_path, real image files, the CLI."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from curator.cli import app

# FiftyOne (tests that sync a library start its database in the library's tmp folder).
os.environ.update(FIFTYONE_DO_NOT_TRACK="true", FIFTYONE_SHOW_PROGRESS_BARS="false")
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


@pytest.fixture(scope="session")
def pg_server():
    """A private PostgreSQL server for the whole session (tests/postgres.py); skips where
    PostgreSQL is not installed, fails there when CURATOR_REQUIRE_POSTGRES=1."""
    import postgres

    reason = postgres.missing()
    if reason is not None:
        (pytest.fail if postgres.required() else pytest.skip)(reason)
    with postgres.cluster() as server:
        yield server


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, empty database on `pg_server`: its ``postgresql+psycopg://`` URL."""
    return pg_server.create_database()


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


# -- trained libraries (tiny timm models: the plumbing, not the accuracy) ----------------------

TINY = dict(model="test_resnet", img_size=32, batch_size=32, workers=0)
CLI_TINY = ["--model", "test_resnet", "--img-size", "32", "--batch-size", "32", "--workers", "0"]


def _sample_library(db: Path):
    from curator import ingest, splits

    init_library(db)
    lib = open_library(db)
    ingest.import_paths(lib, [SAMPLE / "library"], labels_from_folders=True)
    ingest.import_paths(lib, [SAMPLE / "staged"], labels_from_folders=True, staged=True)
    splits.build(lib, min_count=40, name="min40")
    # One class more and one fewer than min40: animal-bird and person join, the staged-only
    # sky-weather leaves.
    splits.build(lib, min_count=35, name="real35", include_staged=False)
    return lib


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A sample library with a 3-epoch parent run on min40 and its warm-started child on real35."""
    from curator import predict, train

    db = tmp_path_factory.mktemp("trained") / "curator.sqlite"
    lib = _sample_library(db)
    train.train(lib, "min40", train.TrainConfig(epochs=3, **TINY), name="parent", throwaway=True)
    predict.score(lib, "parent")
    train.train(lib, "real35", train.TrainConfig(epochs=2, **{**TINY, "model": None}), name="child",
                warm_start="parent")
    predict.score(lib, "child")
    yield lib
    lib.close()


@pytest.fixture
def trained_copy(trained, tmp_path):
    """A private copy of `trained` (checkpoints included), for tests that change it."""
    src = Path(trained.url.removeprefix("sqlite:///"))
    db = tmp_path / "copy" / "curator.sqlite"
    shutil.copytree(src.parent, db.parent)
    return db


# file: (top-1 class, confidence); the run knows antelope, kangaroo, wombat.
PREDICTIONS = {
    "k1.png": ("kangaroo", 0.5), "k5.png": ("kangaroo", 0.8),
    "p1.png": ("kangaroo", 0.95), "p2.png": ("kangaroo", 0.55), "p3.png": ("antelope", 0.4),
    "p4.png": ("antelope", 0.9), "p5.png": ("wombat", 0.3),
    "u1.png": ("kangaroo", 0.7), "u2.png": ("wombat", 0.6),
}


@pytest.fixture
def known(library, make_tree):
    """Kangaroo 6 labelled (2 staged), antelope 3 (all staged), wombat 2; a pool of 5; 2 unknown;
    a done run ``r`` (build ``b``) with the PREDICTIONS above. ``known.by_name``: file name -> id."""
    from curator import ingest, splits
    from curator.library.models import Prediction, Run, SplitBuild

    seed = iter(range(100, 200))
    real = make_tree({**{f"kangaroo/k{i}.png": next(seed) for i in range(1, 5)},
                      **{f"wombat/w{i}.png": next(seed) for i in range(1, 3)},
                      **{f"unknown/u{i}.png": next(seed) for i in range(1, 3)}}, root="real")
    staged = make_tree({**{f"kangaroo/k{i}.png": next(seed) for i in range(5, 7)},
                        **{f"antelope/a{i}.png": next(seed) for i in range(1, 4)}}, root="staged")
    pool = make_tree({f"p{i}.png": next(seed) for i in range(1, 6)}, root="pool")
    ingest.import_paths(library, [real], labels_from_folders=True)
    ingest.import_paths(library, [staged], labels_from_folders=True, staged=True)
    ingest.import_paths(library, [pool])
    splits.build(library, min_count=1, name="b", val=0.0, test=0.0)
    by_name = ids(library)
    with library.session() as s:
        build = s.query(SplitBuild).filter_by(name="b").one()
        run = Run(name="r", build_id=build.id, model="test_resnet", status="done", folder="runs/r",
                  classes=json.dumps(["antelope", "kangaroo", "wombat"]))
        s.add(run)
        s.flush()
        for name, (cls, conf) in PREDICTIONS.items():
            s.add(Prediction(run_id=run.id, image_id=by_name[name], predicted=cls, confidence=conf,
                             top_k=json.dumps([[cls, conf]])))
    library.by_name = by_name
    return library
