"""Two `curator import` at once into one library, on the test's backend (SQLite, or PostgreSQL
with CURATOR_TEST_BACKEND=postgresql): folders that share images (the same bytes at other
paths) and a folder both import (the same paths), new classes created by both. Both finish,
each image is stored once with every path recorded once, history has one ``import`` row per
image, and the two summaries add up."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from conftest import write_image
from curator import ingest
from curator.library import init_library, open_library
from curator.library.models import Image, ImageLocation, ImportBatch, LabelClass, LabelEvent, Subclass

ROUNDS = 3
PER_PART = 60  # images in each part: a's own, b's own, the bytes both have, the folder both import
LABELS = ("emu", "kangaroo/joey", "wombat")

# Waits for the start file, so the two imports start within a millisecond of each other, then
# runs the real CLI (`curator import ...`) in this process.
RUNNER = """
import os, sys, time
from curator.cli import main
while not os.path.exists(sys.argv[1]):
    time.sleep(0.001)
sys.argv = ["curator", *sys.argv[2:]]
main()
"""


def _image(root: Path, label: str, name: str, seed: int) -> Path:
    return write_image(root / label / f"{name}.png", seed=seed)


@pytest.fixture(scope="module")
def overlapping(tmp_path_factory) -> dict:
    """Folders ``a`` and ``b`` (each: its own images, then copies of images the other also has)
    and ``shared`` (imported by both imports). Labelled by folder: every import creates the
    same classes. Returns the roots and {path: sha256} of every file."""
    base = tmp_path_factory.mktemp("overlap")
    seeds = iter(range(1000, 2000))
    for i in range(PER_PART):
        label = LABELS[i % len(LABELS)]
        both = next(seeds)
        for side in "ab":  # the same bytes at a path of each side, first in each walk
            _image(base / side, label, f"0-both-{i:03d}", both)
        _image(base / "a", label, f"1-own-{i:03d}", next(seeds))
        _image(base / "b", label, f"1-own-{i:03d}", next(seeds))
        _image(base / "shared", label, f"s-{i:03d}", next(seeds))
    files = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in base.rglob("*.png")}
    return {"a": base / "a", "b": base / "b", "shared": base / "shared", "files": files}


def _start(db: str, go: Path, root: Path, shared: Path) -> subprocess.Popen:
    args = ["import", str(root), str(shared), "--labels-from-folders", "--commit-every", "4",
            "--workers", "1", "--db", db, "--json"]
    env = {**os.environ, "CURATOR_USER": "tester"}
    return subprocess.Popen([sys.executable, "-c", RUNNER, str(go), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _import_both_at_once(db: str, go: Path, roots: dict) -> list[dict]:
    procs = [_start(db, go, roots[side], roots["shared"]) for side in "ab"]
    time.sleep(1.5)  # both have imported curator and wait at the start line
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        assert "Traceback" not in err
        results.append(json.loads(out))
    return results


def _check_library(db: str, files: dict[str, str], summaries: list[dict]) -> None:
    distinct = set(files.values())
    per_import = 3 * PER_PART
    for s in summaries:
        assert s["files"] == per_import and not s["rejected"] and not s["failed"] and not s["conflicts"]
        # an image the other import stored first is a duplicate path here; a path it recorded
        # first, with this size and time, is unchanged
        assert s["added"] + s["duplicates"] + s["unchanged"] == per_import
    assert sum(s["added"] for s in summaries) == len(distinct)
    lib = open_library(db)
    try:
        with lib.session() as s:
            shas = s.scalars(select(Image.sha256)).all()
            assert sorted(shas) == sorted(distinct)
            locations = s.execute(select(ImageLocation.path, Image.sha256)
                                  .join(Image, Image.id == ImageLocation.image_id)).all()
            assert sorted(locations) == sorted(files.items())  # each path once, on its image
            imports = s.execute(select(LabelEvent.image_id, func.count()).where(LabelEvent.action == "import")
                                .group_by(LabelEvent.image_id)).all()
            assert len(imports) == len(distinct) and {n for _, n in imports} == {1}
            assert sorted(s.scalars(select(LabelClass.name))) == ["emu", "kangaroo", "wombat"]
            assert s.scalars(select(Subclass.name)).all() == ["joey"]
            batches = s.scalars(select(ImportBatch).order_by(ImportBatch.id)).all()
            assert [(b.status, b.added) for b in batches] == [("done", x["added"]) for x in
                                                               sorted(summaries, key=lambda x: x["batch_id"])]
    finally:
        lib.close()
    if "://" not in db:  # SQLite: each import's lock file (see curator.ingest_locks) is gone
        assert not list(Path(db).parent.glob("*.lock"))


def test_two_overlapping_imports_at_once_store_each_image_once(overlapping, new_db, tmp_path):
    for round_ in range(ROUNDS):
        db = new_db(f"round{round_}")
        init_library(db)
        summaries = _import_both_at_once(db, tmp_path / f"go{round_}", overlapping)
        _check_library(db, overlapping["files"], summaries)


def test_an_import_leaves_a_live_imports_batch_running(library, make_tree):
    """A second import starting while the first is still going must not mark the first's
    batch interrupted (only a batch whose import is gone is)."""
    first = make_tree({f"f{i}.png": i for i in range(12)}, root="first")
    second = make_tree({f"s{i}.png": 100 + i for i in range(3)}, root="second")
    seen: list[str] = []

    def meanwhile() -> bool:
        if not seen:  # the first import is under way: another one starts and finishes
            inner = ingest.import_paths(library, [second], workers=1)
            with library.session() as s:
                seen.append(s.scalar(select(ImportBatch.status).where(ImportBatch.id != inner.batch_id)))
        return False

    outer = ingest.import_paths(library, [first], workers=1, commit_every=4, should_stop=meanwhile)
    assert seen == ["running"]
    assert outer.added == 12 and not outer.interrupted
    with library.session() as s:
        assert s.scalars(select(ImportBatch.status).order_by(ImportBatch.id)).all() == ["done", "done"]
