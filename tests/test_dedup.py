"""`curator dedup` / `curator duplicates` on real images: planted duplicates, conflicts, increments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image as PILImage
from PIL import PngImagePlugin
from sqlalchemy import select

from curator import dedup, ingest, labels
from curator.errors import InvalidInput
from curator.library.models import DuplicateGroup, DuplicatePair, Image

from conftest import SAMPLE, as_json, write_image

EXPECTED = json.loads((SAMPLE / "expected.json").read_text())
PLANTED = {frozenset((str(SAMPLE / a), str(SAMPLE / b))) for a, b, _ in EXPECTED["near_duplicate_pairs"]}


def pairs_by_path(lib) -> set[frozenset]:
    with lib.session() as s:
        paths = dict(s.execute(select(Image.id, Image.path)).all())
        return {frozenset((paths[p.image_a], paths[p.image_b])) for p in s.scalars(select(DuplicatePair))}


def groups_by_path(lib) -> set[frozenset]:
    return {frozenset(m["path"] for m in g["members"]) for g in dedup.list_groups(lib)}


@pytest.fixture
def sample(library):
    ingest.import_paths(library, [SAMPLE / "library"], labels_from_folders=True)
    ingest.import_paths(library, [SAMPLE / "pool"])
    return library


def test_planted_near_duplicates_are_grouped_and_nothing_else(sample):
    summary = dedup.find_duplicates(sample)
    assert pairs_by_path(sample) == PLANTED  # re-encoded, resized, cropped: all found
    assert summary.groups == len(PLANTED) and summary.images_in_groups == 2 * len(PLANTED)


def test_skin_tones_are_near_in_phash_but_not_duplicates(sample):
    # pHash is grey: skin-tone variants of one emoji sit within 8 bits; colour tells them apart.
    summary = dedup.find_duplicates(sample)
    assert summary.candidate_pairs > 10 * summary.new_pairs
    colour_blind = dedup.find_duplicates(sample, color_threshold=1.0)
    assert colour_blind.full and colour_blind.candidate_pairs == summary.candidate_pairs
    assert colour_blind.images_in_groups > 3 * summary.images_in_groups  # skin tones merged


@pytest.mark.parametrize(
    "moved, expected",
    [
        ({16: (17, 0.3)}, 0.3),  # 30% of the pixels one bin up in blue alone: all of it counts
        ({0: (1, 0.3), 8: (9, 0.3), 16: (17, 0.3)}, 0.3),  # the same 30% in every channel: no more
        ({0: (1, 0.1), 16: (17, 0.25)}, 0.25),  # the worst channel, not the mean (0.117)
        ({}, 0.0),
    ],
)
def test_color_distance_is_the_share_of_pixels_moved_in_the_worst_channel(moved, expected):
    import numpy as np

    a = np.zeros((1, 24))
    a[0, [0, 8, 16]] = 1.0  # every pixel in the first bin of R, G and B
    b = a.copy()
    for src, (dst, share) in moved.items():
        b[0, src] -= share
        b[0, dst] += share
    assert dedup.color_distance(a, b) == pytest.approx([expected])


def test_label_conflicts_are_reported(sample, cli):
    assert dedup.find_duplicates(sample).conflicts == 2
    with sample.session() as s:
        conflicts = dedup.label_conflicts(s)
        assert dedup.conflict_count(s) == 2
    found = {frozenset(Path(m["path"]).relative_to(SAMPLE).as_posix() for m in g["members"]) for g in conflicts}
    assert len(found) == len(EXPECTED["label_conflicts"]) == 2
    assert all(g["conflict"] and len(g["labels"]) == 2 for g in conflicts)
    assert {p for g in found for p in g} >= set(EXPECTED["label_conflicts"])
    r = cli("duplicates", "--conflicts")
    assert r.exit_code == 0 and "2 groups with conflicting labels." in r.stdout
    assert "animal-mammal" in r.stdout and "animal-bird" in r.stdout


def test_paths_whose_folder_says_another_label_are_conflicts(library, make_tree, cli):
    """The same bytes filed under two classes, and an image relabelled since its import: each
    path whose folder named another label than the image has now; a sub-class folder agrees."""
    root = make_tree({"kangaroo/adult/k.png": 1, "wallaby/k-copy.png": 1, "emu/e.png": 2, "emu/e2.png": 3})
    ingest.import_paths(library, [root], labels_from_folders=True)
    with library.session() as s:
        emu = s.scalars(select(Image).where(Image.path.endswith("e.png"))).one()
        labels.relabel(s, [emu], "unknown")
        ids = dict(s.execute(select(Image.path, Image.id)).all())
    found = dedup.all_conflicts(library).locations
    assert found == [  # in the order the paths were imported
        {"image": ids[str(root / "emu/e.png")], "path": str(root / "emu/e.png"), "folder_label": "emu",
         "label": "unknown"},
        {"image": ids[str(root / "kangaroo/adult/k.png")], "path": str(root / "wallaby/k-copy.png"),
         "folder_label": "wallaby", "label": "kangaroo/adult"},
    ]
    assert as_json(cli("duplicates", "--conflicts", "--json"))["locations"] == found


def test_incremental_run_gives_the_same_groups_as_a_full_one(library, tmp_path):
    from curator.library import init_library, open_library

    ingest.import_paths(library, [SAMPLE / "library"], labels_from_folders=True)
    first = dedup.find_duplicates(library)
    ingest.import_paths(library, [SAMPLE / "pool"])
    second = dedup.find_duplicates(library)
    assert not second.full and second.compared == EXPECTED["pool"]["new_distinct_bytes"]
    assert first.full and second.new_pairs > 0

    other = tmp_path / "other" / "c.sqlite"
    init_library(other)
    full = open_library(other)
    ingest.import_paths(full, [SAMPLE / "library"], labels_from_folders=True)
    ingest.import_paths(full, [SAMPLE / "pool"])
    dedup.find_duplicates(full)
    assert groups_by_path(library) == groups_by_path(full)
    assert pairs_by_path(library) == pairs_by_path(full)
    again = dedup.find_duplicates(library)
    assert (again.compared, again.new_pairs) == (0, 0)


def test_changed_settings_compare_everything_again(sample):
    dedup.find_duplicates(sample)
    tighter = dedup.find_duplicates(sample, threshold=2)
    assert tighter.full and tighter.compared == tighter.images
    assert pairs_by_path(sample) < PLANTED


def test_same_pixels_in_different_files_is_a_pixel_duplicate(library, tmp_path):
    a = write_image(tmp_path / "in" / "a.png", size=(80, 60), seed=5)
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "same pixels, other bytes")
    PILImage.open(a).save(tmp_path / "in" / "b.png", pnginfo=info)
    write_image(tmp_path / "in" / "c.png", size=(80, 60), seed=6)
    ingest.import_paths(library, [tmp_path / "in"])
    dedup.find_duplicates(library)
    with library.session() as s:
        (pair,) = s.scalars(select(DuplicatePair)).all()
        assert (pair.kind, pair.distance) == ("pixels", 0)


def test_many_identical_images_store_a_spanning_set_not_every_pair(library, tmp_path):
    # 30 blank images (same pixels, different bytes) are 435 pairs but one group of 30.
    for k in range(30):
        info = PngImagePlugin.PngInfo()
        info.add_text("n", str(k))
        PILImage.new("RGB", (40, 30), "white").save(tmp_path / f"blank{k:02d}.png", pnginfo=info)
    ingest.import_paths(library, [tmp_path], label="emu")
    summary = dedup.find_duplicates(library)
    assert summary.candidate_pairs == 435
    assert (summary.new_pairs, summary.groups, summary.images_in_groups) == (29, 1, 30)
    with library.session() as s:
        assert {p.kind for p in s.scalars(select(DuplicatePair))} == {"pixels"}


def test_canonical_is_real_then_largest_then_oldest(library, tmp_path):
    big = write_image(tmp_path / "staged" / "big.png", size=(160, 120), seed=8)
    (tmp_path / "real").mkdir()
    PILImage.open(big).resize((80, 60)).save(tmp_path / "real" / "small.png")
    PILImage.open(big).resize((120, 90)).save(tmp_path / "real" / "mid.png")
    ingest.import_paths(library, [tmp_path / "staged"], label="emu", staged=True)
    ingest.import_paths(library, [tmp_path / "real"], label="emu")
    dedup.find_duplicates(library)
    (group,) = dedup.list_groups(library)
    canonical = next(m for m in group["members"] if m["canonical"])
    assert Path(canonical["path"]).name == "mid.png"  # real beats the bigger staged image
    assert group["conflict"] is False


def add_hashed(lib, phashes: dict[str, int], sizes: dict[str, int] | None = None) -> dict[str, int]:
    """Images with these pHashes (below 2**63; no files, no colour: pHash alone decides); name -> id."""
    sizes = sizes or {}
    with lib.session() as s:
        rows = {name: Image(sha256=name.ljust(64, "0"), phash=phash, path=f"/x/{name}.png",
                            source="test", bytes=1, width=sizes.get(name, 10), height=10)
                for name, phash in phashes.items()}
        s.add_all(rows.values())
        s.flush()
        return {name: image.id for name, image in rows.items()}


@pytest.mark.parametrize("a, b, conflict", [
    ("kangaroo", "kangaroo", False),
    ("kangaroo", "wallaby", True),
    ("kangaroo/joey", "kangaroo/joey", False),
    ("kangaroo/joey", "kangaroo/adult", True),
    ("kangaroo", "kangaroo/joey", True),
    ("kangaroo/joey", "wallaby/joey", True),
    ("kangaroo", "unknown", False),  # only labelled members count
])
def test_a_group_conflicts_when_its_labelled_members_differ_in_class_or_subclass(library, a, b, conflict):
    ids = add_hashed(library, {"a": 0, "b": 1, "c": 0xFFFF << 32, "d": (0xFFFF << 32) | 1})
    with library.session() as s:
        for name, label in (("a", a), ("b", b), ("c", "wallaby"), ("d", "wallaby")):  # c~d: never a conflict
            labels.relabel(s, [s.get(Image, ids[name])], label, create=True)
    summary = dedup.find_duplicates(library)
    with library.session() as s:
        found = [g["members"][0]["id"] for g in dedup.label_conflicts(s)]
        assert (summary.conflicts, dedup.conflict_count(s), found) == (
            (1, 1, [ids["a"]]) if conflict else (0, 0, []))


def group_state(lib) -> tuple[dict[int, int | None], dict[int, tuple]]:
    """Each image's group, and each group's (canonical, updated_at)."""
    with lib.session() as s:
        images = dict(s.execute(select(Image.id, Image.dup_group_id)).all())
        groups = {g.id: (g.canonical_id, g.updated_at) for g in s.scalars(select(DuplicateGroup))}
    return images, groups


def test_a_run_with_nothing_new_writes_no_group(sample):
    dedup.find_duplicates(sample)
    before = group_state(sample)
    again = dedup.find_duplicates(sample)
    assert (again.compared, again.groups) == (0, len(PLANTED))
    assert group_state(sample) == before  # not even updated_at moves


def test_tighter_settings_drop_groups_and_keep_the_others_as_they_were(sample):
    dedup.find_duplicates(sample)
    images, groups = group_state(sample)
    tighter = dedup.find_duplicates(sample, threshold=2)
    after_images, after_groups = group_state(sample)
    assert 0 < tighter.groups < len(groups) and set(after_groups) < set(groups)
    assert all(after_groups[g] == groups[g] for g in after_groups)  # same members: untouched
    assert {i: g for i, g in images.items() if g in after_groups} == {i: g for i, g in after_images.items() if g}


def test_an_image_joining_two_groups_merges_them_into_the_older(library):
    # a~b and c~d are 16 bits apart; e is 8 bits from a and from c.
    ids = add_hashed(library, {"a": 0, "b": 1, "c": 0xFFFF << 32, "d": (0xFFFF << 32) | 1}, sizes={"c": 30})
    dedup.find_duplicates(library)
    images, groups = group_state(library)
    first, second = images[ids["a"]], images[ids["c"]]
    assert first < second and images[ids["b"]] == first and images[ids["d"]] == second
    ids |= add_hashed(library, {"e": 0xFF << 32})
    merged = dedup.find_duplicates(library)
    assert (merged.full, merged.compared, merged.groups, merged.images_in_groups) == (False, 1, 1, 5)
    after_images, after_groups = group_state(library)
    assert set(after_groups) == {first} and set(after_images.values()) == {first}
    assert after_groups[first][0] == ids["c"]  # the largest is canonical now
    assert after_groups[first][1] > groups[first][1]
    full = dedup.find_duplicates(library, threshold=8, color_threshold=1.0)  # other settings: full
    assert full.full and group_state(library)[0] == after_images


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"threshold": 17}, "--threshold 17 is out of range: give 0 to 16 bits (8 is the default)"),
        ({"threshold": -1}, "--threshold -1 is out of range: give 0 to 16 bits (8 is the default)"),
        ({"color_threshold": 1.5}, "--color-threshold 1.5 is out of range: give 0 to 1 (0.17 is the default)"),
        ({"detail_threshold": 300}, "--detail-threshold 300 is out of range: give 0 to 256 bits (36 is the default)"),
    ],
)
def test_bad_settings_are_refused(library, cli, kwargs, message):
    with pytest.raises(InvalidInput) as e:
        dedup.find_duplicates(library, **kwargs)
    assert str(e.value) == message
    flag, value = next(iter(kwargs.items()))
    r = cli("dedup", f"--{flag.replace('_', '-')}", value)
    assert (r.exit_code, r.stderr) == (1, f"Error: {message}\n")


def test_cli_dedup_and_duplicates(sample, cli):
    r = cli("dedup")
    assert r.exit_code == 0
    assert r.stdout.startswith(f"Compared {EXPECTED['library_distinct_bytes'] + EXPECTED['pool']['new_distinct_bytes']} all of")
    assert f"{len(PLANTED)} groups holding {2 * len(PLANTED)} images, 2 with conflicting labels." in r.stdout
    data = as_json(cli("duplicates", "--json"))
    assert len(data) == len(PLANTED)
    first = data[0]["group"]
    one = as_json(cli("duplicates", "--group", first, "--json"))
    assert one == [data[0]] and sum(m["canonical"] for m in one[0]["members"]) == 1
    r = cli("duplicates", "--group", 9999)
    assert (r.exit_code, r.stderr) == (1, "Error: no duplicate group 9999: list them with `curator duplicates`\n")
