"""Shared fixtures: a real migrated library, real image files, the CLI.

The library is an SQLite file in tmp_path, or with CURATOR_TEST_BACKEND=postgresql a fresh
database on a private PostgreSQL server (tests/postgres.py) whose folder (models, FiftyOne's
database) is that same tmp_path folder. Tests of SQLite itself are marked ``sqlite_only`` and
skip there.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
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
BACKEND = os.environ.get("CURATOR_TEST_BACKEND", "sqlite")
if BACKEND not in ("sqlite", "postgresql"):
    raise pytest.UsageError(f"CURATOR_TEST_BACKEND={BACKEND!r}: use sqlite or postgresql")


def pytest_report_header(config):
    return f"library backend: {BACKEND} (CURATOR_TEST_BACKEND)"


# A test that asks for none of these never opens the test's library: on PostgreSQL it would
# only repeat its SQLite run, so that run leaves it out.
LIBRARY_FIXTURES = {"db", "new_db", "trained", "small_trained", "pg_url"}


def pytest_collection_modifyitems(config, items):
    if BACKEND == "sqlite":
        return
    skip = pytest.mark.skip(reason="tests SQLite itself")
    keep, left_out = [], []
    for item in items:
        if "sqlite_only" in item.keywords:
            item.add_marker(skip)
        (keep if LIBRARY_FIXTURES & set(getattr(item, "fixturenames", ())) else left_out).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = keep


@pytest.fixture
def db_path(tmp_path) -> Path:
    """Where a test's library lives; created by `library`, or by `curator init` in the test."""
    return tmp_path / "lib" / "curator.sqlite"


@pytest.fixture
def db(db_path, monkeypatch, request) -> str:
    """What `--db` names for this test's library: db_path, or a fresh PostgreSQL database whose
    folder (CURATOR_HOME) is db_path's."""
    if BACKEND == "sqlite":
        return str(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("CURATOR_HOME", str(db_path.parent))
    return request.getfixturevalue("pg_url")


@pytest.fixture
def new_db(tmp_path, request):
    """More libraries for one test: ``new_db("name")`` is the --db of another empty location
    (tmp_path/name/curator.sqlite, or another fresh PostgreSQL database)."""
    def make(name: str) -> str:
        if BACKEND == "sqlite":
            return str(tmp_path / name / "curator.sqlite")
        return request.getfixturevalue("pg_server").create_database()

    return make


@pytest.fixture
def library(db):
    """A migrated, empty library."""
    init_library(db)
    lib = open_library(db)
    yield lib
    lib.close()


@pytest.fixture(autouse=True)
def fiftyone_database_stopped(tmp_path):
    """Stop a FiftyOne database this test started in its folder before pytest removes the folder
    (``tmp_path_retention_policy = "failed"``): a mongod whose files vanish dies, and the next
    test's connect would wait on it for ever while closing the old client."""
    yield
    fod = sys.modules.get("fiftyone.core.odm.database")
    folder = getattr(getattr(fod, "_db_service", None), "folder", None)
    if folder and Path(folder).is_relative_to(tmp_path):
        from curator import fiftyone_database

        fiftyone_database.disconnect()


@pytest.fixture
def cli(db, monkeypatch):
    """Run `curator ...` against the test's library; returns the Result."""
    monkeypatch.setenv("CURATOR_DB", db)
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


def _sample_library(db: str, home: Path):
    from curator import ingest, splits

    init_library(db)
    lib = open_library(db, home=home)
    ingest.import_paths(lib, [SAMPLE / "library"], labels_from_folders=True)
    ingest.import_paths(lib, [SAMPLE / "staged"], labels_from_folders=True, staged=True)
    splits.build(lib, min_count=40, name="min40")
    # One class more and one fewer than min40: animal-bird and person join, the staged-only
    # sky-weather leaves.
    splits.build(lib, min_count=35, name="real35", include_staged=False)
    return lib


# sample_data's images that `small_trained` holds: (folder, class, how many), the first by name.
# No training set comes to one more than a multiple of 32 (TINY's batch): a last batch of one
# fails BatchNorm.
SMALL = [("library", "animal-mammal", 12), ("library", "country-flag", 12),
         ("library", "hand-fingers-open", 12), ("library", "person", 9),
         ("staged", "sky-weather", 12)]


def _small_library(db: str, home: Path):
    """sample_data cut to a dozen images a class, the shape of `_sample_library`: min10 holds
    the staged-only sky-weather; real8 leaves it out and takes person in."""
    from curator import ingest, splits

    for top, cls, n in SMALL:
        for src in sorted(f for f in (SAMPLE / top / cls).rglob("*") if f.is_file())[:n]:
            dest = home / "images" / src.relative_to(SAMPLE)  # sub-class folders kept
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dest)
    init_library(db)
    lib = open_library(db, home=home)
    ingest.import_paths(lib, [home / "images" / "library"], labels_from_folders=True)
    ingest.import_paths(lib, [home / "images" / "staged"], labels_from_folders=True, staged=True)
    splits.build(lib, min_count=10, name="min10")
    splits.build(lib, min_count=8, name="real8", include_staged=False)
    return lib


def _trained(make_library, builds: tuple[str, str], name: str, tmp_path_factory, request):
    """A library from ``make_library`` with a 3-epoch throw-away ``parent`` run on the first build
    and its 2-epoch warm-started ``child`` on the second, both scored."""
    from curator import predict, train

    home = tmp_path_factory.mktemp(name)
    if BACKEND == "sqlite":
        db = str(home / "curator.sqlite")
    else:
        db = request.getfixturevalue("pg_server").create_database(name)
    lib = make_library(db, home)
    train.train(lib, builds[0], train.TrainConfig(epochs=3, **TINY), name="parent", throwaway=True)
    predict.score(lib, "parent")
    train.train(lib, builds[1], train.TrainConfig(epochs=2, **{**TINY, "model": None}), name="child",
                warm_start="parent")
    predict.score(lib, "child")
    return lib


def _copy(lib, name: str, tmp_path: Path, db_path: Path, monkeypatch, request) -> str:
    """A private copy of the session library ``lib`` (PostgreSQL database ``name``), checkpoints
    included: its --db. On PostgreSQL its folder is db_path's, the CURATOR_HOME that `db` sets too."""
    if BACKEND == "sqlite":
        home = tmp_path / "copy"
        shutil.copytree(lib.folder, home)
        return str(home / "curator.sqlite")
    home = db_path.parent
    shutil.copytree(lib.folder, home, dirs_exist_ok=True)
    lib.engine.dispose()  # a template database must have no connections
    monkeypatch.setenv("CURATOR_HOME", str(home))
    return request.getfixturevalue("pg_server").create_database(template=name)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, request):
    """A sample library with a 3-epoch parent run on min40 and its warm-started child on real35."""
    lib = _trained(_sample_library, ("min40", "real35"), "trained", tmp_path_factory, request)
    yield lib
    lib.close()


@pytest.fixture
def trained_copy(trained, tmp_path, db_path, monkeypatch, request) -> str:
    """A private copy of `trained` (checkpoints included), for tests that change it: its --db."""
    return _copy(trained, "trained", tmp_path, db_path, monkeypatch, request)


@pytest.fixture(scope="session")
def small_trained(tmp_path_factory, request):
    """`trained` in small (SMALL's 57 images): a parent run on min10 and its child on real8, for
    tests that train more runs of their own, whose epochs are then a batch or two."""
    lib = _trained(_small_library, ("min10", "real8"), "small_trained", tmp_path_factory, request)
    yield lib
    lib.close()


@pytest.fixture
def small_copy(small_trained, tmp_path, db_path, monkeypatch, request) -> str:
    """A private copy of `small_trained`, for tests that change it: its --db."""
    return _copy(small_trained, "small_trained", tmp_path, db_path, monkeypatch, request)


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
