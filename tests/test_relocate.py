"""Moved image folders: reading falls back to a location that exists, a re-import takes over the
path, `curator relocate` rewrites a tree, and a build with nothing readable is a one-line error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from conftest import CLI_TINY, as_json, error, write_image
from curator import ingest, locations, splits
from curator.library.models import Image, ImageLocation, RunEpoch

FILES = {f"{cls}/{cls}{i}.png": seed for seed, (cls, i) in
         enumerate((c, i) for c in ("emu", "owl") for i in range(6))}


@pytest.fixture
def moved(library, make_tree, tmp_path):
    """12 images in two classes, build ``b``; then their folder moved: ``moved.old``, ``moved.new``."""
    old = make_tree(FILES, root="photos")
    ingest.import_paths(library, [old], labels_from_folders=True)
    splits.build(library, min_count=3, name="b", val=0.25, test=0.0)
    new = tmp_path / "disk2" / "photos"
    new.parent.mkdir()
    shutil.move(old, new)
    library.old, library.new = old, new
    return library


def paths(lib) -> tuple[set[str], set[str]]:
    with lib.session() as s:
        return set(s.scalars(select(Image.path))), set(s.scalars(select(ImageLocation.path)))


def under(folder: Path) -> set[str]:
    return {str(folder / rel) for rel in FILES}


def test_reading_falls_back_to_the_first_location_that_exists(library, tmp_path):
    a = write_image(tmp_path / "a" / "x.png", seed=1)
    b, c = tmp_path / "b" / "x.png", tmp_path / "c" / "x.png"
    for copy in (b, c):
        copy.parent.mkdir()
        shutil.copy(a, copy)
    ingest.import_paths(library, [a, b, c])
    with library.session() as s:
        image_id = s.scalar(select(Image.id))
        assert locations.readable_paths(s, [image_id, 999]) == ({image_id: str(a)}, [])
        a.unlink()
        assert locations.readable_paths(s, [image_id]) == ({image_id: str(b)}, [])
        b.unlink(), c.unlink()
        assert locations.readable_paths(s, [image_id]) == ({}, [image_id])
    assert locations.missing_warning(0) is None
    assert locations.missing_warning(3) == ("3 images missing: no file at any of their paths; run `curator relocate"
                                            " OLD NEW` if their folder moved, or import them again from where they are now")


def test_a_moved_folder_imported_again_takes_over_the_paths_and_trains(moved, cli):
    for lost in ("emu/emu0.png", "owl/owl5.png"):  # two files did not survive the move
        (moved.new / lost).unlink()
    r = cli("import", moved.new, "--labels-from-folders")
    assert "Imported 0 new images from 10 files" in r.stdout and "10 duplicate paths" in r.stdout
    assert "10 images had moved: their old path is gone, the path found now is theirs." in r.stdout
    image_paths, _ = paths(moved)
    assert image_paths == under(moved.new) - {str(moved.new / "emu/emu0.png"), str(moved.new / "owl/owl5.png")} | {
        str(moved.old / "emu/emu0.png"), str(moved.old / "owl/owl5.png")}
    history = cli("history", moved.new / "emu/emu1.png").stdout
    assert "move" in history and "path" in history

    run = as_json(cli("train", "--splits", "b", *CLI_TINY, "--epochs", "1", "--json"))
    assert run["status"] == "done" and run["missing"] == 2
    scored = as_json(cli("bulk-identify", "--run", run["name"], "--pool", "labelled", "--workers", "0", "--json"))
    assert (scored["scored"] + scored["already"], scored["missing"], scored["errors"]) == (10, 2, [])


def test_relocate_rewrites_the_tree_and_training_reads_it(moved, cli):
    dry = as_json(cli("relocate", moved.old, moved.new, "--dry-run", "--json"))
    assert (dry["images"], dry["locations"], dry["exist"], dry["merged"], dry["dry_run"]) == (12, 12, 12, 0, True)
    assert paths(moved) == (under(moved.old), under(moved.old))
    r = cli("relocate", moved.old, moved.new)
    assert r.stdout == (f"Moved 12 image paths and 12 locations from {moved.old} to {moved.new};"
                        " 12 of the 12 new locations exist, 0 were recorded there already.\n")
    assert paths(moved) == (under(moved.new), under(moved.new))
    run = as_json(cli("train", "--splits", "b", *CLI_TINY, "--epochs", "1", "--json"))
    assert run["status"] == "done" and run["missing"] == 0
    scored = as_json(cli("bulk-identify", "--run", run["name"], "--pool", "labelled", "--workers", "0", "--json"))
    assert (scored["scored"] + scored["already"], scored["missing"], scored["errors"]) == (12, 0, [])


def test_relocate_merges_locations_the_new_place_already_has(moved, cli):
    cli("import", moved.new, "--labels-from-folders")  # every image has its old and its new location
    assert paths(moved) == (under(moved.new), under(moved.old) | under(moved.new))
    r = as_json(cli("relocate", moved.old, moved.new, "--json"))
    assert (r["images"], r["locations"], r["merged"]) == (0, 0, 12)
    assert paths(moved) == (under(moved.new), under(moved.new))


def test_relocate_errors_are_one_line(moved, cli, tmp_path):
    assert error(cli("relocate", tmp_path / "nowhere", moved.new)) == (
        f"Error: no image path is under {tmp_path / 'nowhere'}: nothing to relocate"
        " (`curator show ID` lists an image's paths)")
    assert error(cli("relocate", moved.old, moved.old)) == (
        f"Error: {moved.old} is where the paths are already: give the folder they moved to")
    assert error(cli("relocate", moved.old.parent, moved.old)) == (
        f"Error: cannot relocate {moved.old.parent} into a folder inside it ({moved.old}):"
        " relocate each of its sub-folders instead")
    # Other bytes at one of the new paths, imported: that path is another image's.
    (moved.new / "emu/emu3.png").unlink()
    write_image(moved.new / "emu/emu3.png", seed=99)
    ingest.import_paths(moved, [moved.new / "emu/emu3.png"])
    with moved.session() as s:
        other = s.scalar(select(Image.id).where(Image.path == str(moved.new / "emu/emu3.png")))
        mine = s.scalar(select(Image.id).where(Image.path == str(moved.old / "emu/emu3.png")))
    assert error(cli("relocate", moved.old, moved.new)) == (
        f"Error: {moved.new / 'emu/emu3.png'} is already a path of image {other}, not of image {mine}:"
        f" nothing moved; import {moved.new} again instead (`curator import {moved.new}`)")
    assert str(moved.old / "emu/emu0.png") in paths(moved)[0]  # nothing moved


def test_a_build_with_no_readable_image_is_a_one_line_error(moved, cli):
    assert error(cli("train", "--splits", "b", *CLI_TINY, "--epochs", "1")) == (
        "Error: no training image of build b could be read: 8 files missing;"
        " run `curator relocate OLD NEW` if their folder moved, or import them again")


def test_a_nan_loss_never_reaches_the_library(moved, cli):
    shutil.move(moved.new, moved.old)
    for path in under(moved.old):  # still there, but no longer images
        Path(path).write_bytes(b"not an image any more")
    assert error(cli("train", "--splits", "b", *CLI_TINY, "--epochs", "1", "--name", "broken")) == (
        "Error: run broken failed in epoch 1: none of its 8 training images could be read")
    with moved.session() as s:
        assert s.scalar(select(func.count()).select_from(RunEpoch)) == 0


def test_training_and_bulk_identify_say_how_many_images_are_missing(moved, cli):
    cli("import", moved.new, "--labels-from-folders")
    for lost in ("emu/emu0.png", "owl/owl5.png"):
        (moved.new / lost).unlink()
    warning = ("Warning: 2 images missing: no file at any of their paths; run `curator relocate OLD NEW` if their"
               " folder moved, or import them again from where they are now")
    trained = cli("train", "--splits", "b", *CLI_TINY, "--epochs", "1", "--name", "r", "--no-score")
    assert trained.exit_code == 0 and warning in trained.stderr.splitlines()
    scored = cli("bulk-identify", "--run", "r", "--pool", "labelled", "--workers", "0")
    assert scored.exit_code == 0 and warning in scored.stderr.splitlines()
