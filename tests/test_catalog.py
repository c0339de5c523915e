"""Finding and describing images: references (id, path, sha256 prefix), `curator show`,
`curator history`, `curator stats`, and the one-line errors for images that cannot be found."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from curator import catalog, history
from curator.errors import ImageNotFound, InvalidInput
from curator.ingest import import_paths
from curator.library import schema
from curator.library.models import Image

from conftest import as_json, error, ids

TREE = {
    "kangaroo/joey/j1.png": 1, "kangaroo/adult/a1.png": 2, "kangaroo/k1.png": 3,
    "wallaby/w1.png": 4, "wallaby/dup.png": 3, "unknown/u1.png": 5, "loose.jpg": 6,
}


@pytest.fixture(autouse=True)
def user(monkeypatch):
    """The same actor for the import and for the CLI."""
    monkeypatch.setenv("CURATOR_USER", "tester")


@pytest.fixture
def zoo(library, make_tree) -> Path:
    """TREE (dup.png has k1.png's bytes) imported with labels from folders, plus an empty and
    a corrupt file."""
    root = make_tree(TREE)
    (root / "empty.png").write_bytes(b"")
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    import_paths(library, [root], labels_from_folders=True)
    return root



def sha(library, name: str) -> str:
    with library.session() as s:
        return s.get(Image, ids(library)[name]).sha256


def set_sha(library, name: str, value: str) -> None:
    """Give an image a chosen sha256, to make prefixes collide (64 hex digits)."""
    with library.session() as s:
        s.get(Image, ids(library)[name]).sha256 = value.ljust(64, "0")



def cells(output: str) -> list[list[str]]:
    """The rows of a printed table as lists of cells (header and rule lines dropped)."""
    return [[c.strip() for c in line.split("│")] for line in output.splitlines() if "│" in line]


# -- references -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref, name",
    [
        (lambda root, lib: str(ids(lib)["w1.png"]), "w1.png"),
        (lambda root, lib: f" {ids(lib)['w1.png']} ", "w1.png"),
        (lambda root, lib: str(root / "wallaby" / "w1.png"), "w1.png"),
        (lambda root, lib: "images/wallaby/w1.png", "w1.png"),  # relative to the cwd
        (lambda root, lib: "./images/wallaby/../wallaby/w1.png", "w1.png"),
        (lambda root, lib: str(root / "wallaby" / "dup.png"), "k1.png"),  # a second location
        (lambda root, lib: sha(lib, "w1.png"), "w1.png"),
        (lambda root, lib: sha(lib, "w1.png")[:6], "w1.png"),
        (lambda root, lib: sha(lib, "w1.png")[:9].upper(), "w1.png"),
    ],
    ids=["id", "id with spaces", "path", "relative path", "unnormalised path",
         "duplicate's path", "sha256", "sha256 prefix", "upper-case prefix"],
)
def test_find_image(zoo, library, monkeypatch, ref, name):
    monkeypatch.chdir(zoo.parent)
    with library.session() as s:
        assert catalog.find_image(s, ref(zoo, library)).id == ids(library)[name]


def test_find_image_by_an_all_digit_sha256_prefix(zoo, library):
    set_sha(library, "w1.png", "123456789")
    with library.session() as s:
        assert catalog.find_image(s, "123456").id == ids(library)["w1.png"]
        assert catalog.find_image(s, "1234567").id == ids(library)["w1.png"]
        assert catalog.find_image(s, "3").id == 3  # too short for a prefix: an id


def _ambiguous(library) -> str:
    set_sha(library, "w1.png", "abcdef01")
    set_sha(library, "u1.png", "abcdef02")
    return "abcdef"


@pytest.mark.parametrize(
    "ref, message",
    [
        ("99", "no image with id 99"),
        ("999999", "no image with id 999999"),
        ("/no/such/file.png", "no image matches '/no/such/file.png'"
                              " (give an image id, an imported path or a sha256 prefix)"),
        ("wallaby/w1.png", "no image matches 'wallaby/w1.png'"
                           " (give an image id, an imported path or a sha256 prefix)"),
        ("abcde", "no image matches 'abcde' (give an image id, an imported path or a sha256 prefix)"),
        ("fffffffff", "no image matches 'fffffffff'"
                      " (give an image id, an imported path or a sha256 prefix)"),
        (_ambiguous, "sha256 prefix 'abcdef' matches several images: give more of it"),
    ],
    ids=["unknown id", "unknown 6-digit id", "unknown path", "path not from here", "short hex",
         "unknown prefix", "ambiguous prefix"],
)
def test_unknown_references(zoo, library, cli, ref, message):
    if callable(ref):
        ref = ref(library)
    with library.session() as s, pytest.raises(ImageNotFound) as e:
        catalog.find_image(s, ref)
    assert str(e.value) == message
    for command in (["show", ref], ["history", ref], ["label", ref, "--class", "wallaby"],
                    ["relabel", "1", ref, "--class", "wallaby"], ["unknown", ref],
                    ["reject", ref], ["restore", ref], ["flag", ref, "--staged"],
                    ["note", ref, "text"]):
        assert error(cli(*command)) == f"Error: {message}", command


def test_an_ambiguous_prefix_is_fine_once_longer(zoo, library):
    _ambiguous(library)
    with library.session() as s:
        assert catalog.find_image(s, "abcdef02").id == ids(library)["u1.png"]


def test_select_images_drops_comments_blanks_and_duplicates(zoo, library):
    i = ids(library)
    refs = [str(i["w1.png"]), "", "  ", "# 12", str(zoo / "kangaroo" / "k1.png"),
            str(zoo / "wallaby" / "dup.png"), str(i["w1.png"])]
    with library.session() as s:
        found = catalog.select_images(s, refs, of="kangaroo/joey")
        assert [im.id for im in found] == [i["w1.png"], i["k1.png"], i["j1.png"]]
        with pytest.raises(InvalidInput) as e:
            catalog.select_images(s, ["", "# only a comment"])
    assert str(e.value) == ("name some images: IDs/paths/sha256 prefixes,"
                            " --file FILE (- for stdin) or --of LABEL")


@pytest.mark.parametrize(
    "args, message",
    [
        (["label", "--class", "wallaby"],
         "name some images: IDs/paths/sha256 prefixes, --file FILE (- for stdin) or --of LABEL"),
        (["unknown", "--file", "no-such-list.txt"], "no such file: no-such-list.txt"),
        (["reject", "--file", "-"],
         "name some images: IDs/paths/sha256 prefixes, --file FILE (- for stdin) or --of LABEL"),
        (["relabel", "--of", "labelled", "--class", "wallaby"],
         "'labelled' is a label state, not a class name: pick another name"),
        (["flag", "--of", "kangaroo/baby", "--staged"],
         "class 'kangaroo' has no sub-class 'baby' (known: adult, joey)"),
        (["label", "1", "--class", "wallaby", "--subclass", "unknown"],
         "'unknown' is a label state, not a sub-class name: mark images unknown with `curator unknown`"),
    ],
)
def test_cli_selection_errors(zoo, cli, args, message):
    assert error(cli(*args, input="\n# nothing\n")) == f"Error: {message}"


# -- show -------------------------------------------------------------------------------------


def test_cli_show_text(zoo, library, cli):
    k1 = ids(library)["k1.png"]
    cli("flag", k1, "--staged")
    cli("note", k1, "ear tag")
    result = cli("show", zoo / "wallaby" / "dup.png")
    assert result.exit_code == 0, result.output
    with library.session() as s:
        image = s.get(Image, k1)
        data = catalog.describe(image)
    lines = result.stdout.splitlines()
    table_at = next(i for i, line in enumerate(lines) if "┃" in line)
    assert lines[:table_at] == [
        f"              id: {k1}",
        "           label: kangaroo",
        "           class: kangaroo",
        "          status: active",
        "          staged: True",
        "            note: ear tag",
        f"            path: {zoo / 'kangaroo' / 'k1.png'}",
        f"          sha256: {data['sha256']}",
        f"           phash: {data['phash']}",
        "           width: 48",
        "          height: 40",
        "          format: PNG",
        "            mode: RGB",
        f"           bytes: {(zoo / 'kangaroo' / 'k1.png').stat().st_size}",
        "          source: images",
        "           batch: 1",
        f"        added_at: {data['added_at']}",
        f"        location: {zoo / 'kangaroo' / 'k1.png'}  (folder label kangaroo)",
        f"        location: {zoo / 'wallaby' / 'dup.png'}  (folder label wallaby)",
    ]
    assert [row[1:] for row in cells(result.stdout)] == [
        ["import", "label", "", "kangaroo", "import", "tester", "batch 1"],
        ["flag", "staged", "false", "true", "cli", "tester", ""],
        ["note", "note", "", "ear tag", "cli", "tester", ""],
    ]


def test_cli_show_an_empty_file_says_zero_bytes(zoo, library, cli):
    result = cli("show", zoo / "empty.png")
    lines = result.stdout.splitlines()
    assert "           bytes: 0" in lines
    assert "   reject_reason: empty file (0 bytes)" in lines
    assert not any(line.lstrip().startswith(("width:", "phash:")) for line in lines)


def test_cli_show_json(zoo, library, cli):
    j1 = ids(library)["j1.png"]
    data = as_json(cli("show", j1, "--json"))
    with library.session() as s:
        image = s.get(Image, j1)
        assert data == {**catalog.describe(image), "history": history.events(s, image)}
    assert {k: data[k] for k in ("label", "class", "subclass", "status", "staged", "note",
                                 "width", "height", "format", "bytes")} == {
        "label": "kangaroo/joey", "class": "kangaroo", "subclass": "joey", "status": "active",
        "staged": False, "note": None, "width": 48, "height": 40, "format": "PNG",
        "bytes": (zoo / "kangaroo" / "joey" / "j1.png").stat().st_size,
    }
    assert data["locations"] == [{"path": str(zoo / "kangaroo" / "joey" / "j1.png"),
                                  "folder_label": "kangaroo/joey"}]
    assert len(data["phash"]) == 16 and len(data["sha256"]) == 64


def test_show_keeps_the_last_history_rows(zoo, library):
    with library.session() as s:
        image = s.get(Image, ids(library)["w1.png"])
        for n in range(12):
            history.record(s, image, "note", "note", None, str(n))
    rows = catalog.show(library, str(ids(library)["w1.png"]), history_rows=3)["history"]
    assert [r["new"] for r in rows] == ["9", "10", "11"]


# -- history ----------------------------------------------------------------------------------


def test_history_is_complete_after_relabel_merge_and_rename(zoo, library, cli):
    j1 = ids(library)["j1.png"]
    steps = [
        ("relabel", j1, "--class", "kangaroo/adult"),
        ("relabel", j1, "--class", "kangaroo/adult"),  # no change: no row
        ("classes", "merge", "kangaroo", "wallaby"),
        ("classes", "rename", "wallaby", "macropod"),
        ("classes", "rename", "macropod/adult", "grown"),
        ("classes", "rename", "macropod", "macropod"),  # no change: no row
        ("relabel", j1, "--class", "macropod/grown"),  # no change: no row
    ]
    for step in steps:
        assert cli(*step).exit_code == 0, step
    events = as_json(cli("history", j1, "--json"))
    assert [(e["action"], e["field"], e["old"], e["new"], e["source"], e["actor"], e["detail"])
            for e in events] == [
        ("import", "label", None, "kangaroo/joey", "import", "tester", "batch 1"),
        ("relabel", "label", "kangaroo/joey", "kangaroo/adult", "cli", "tester", None),
        ("merge", "label", "kangaroo/adult", "wallaby/adult", "cli", "tester",
         "kangaroo merged into wallaby"),
        ("rename", "label", "wallaby/adult", "macropod/adult", "cli", "tester", "wallaby renamed"),
        ("rename", "label", "macropod/adult", "macropod/grown", "cli", "tester",
         "macropod/adult renamed"),
    ]
    assert all(e["at"] for e in events)
    with library.session() as s:
        assert [e["action"] for e in history.events(s, s.get(Image, j1))] == [
            "import", "relabel", "merge", "rename", "rename"]
    result = cli("history", zoo / "kangaroo" / "joey" / "j1.png")
    assert [row[1:5] for row in cells(result.stdout)] == [
        ["import", "label", "", "kangaroo/joey"],
        ["relabel", "label", "kangaroo/joey", "kangaroo/adult"],
        ["merge", "label", "kangaroo/adult", "wallaby/adult"],
        ["rename", "label", "wallaby/adult", "macropod/adult"],
        ["rename", "label", "macropod/adult", "macropod/grown"],
    ]


def test_history_of_an_unreadable_file(zoo, library, cli):
    events = as_json(cli("history", zoo / "corrupt.jpg", "--json"))
    assert [(e["action"], e["old"], e["new"], e["source"]) for e in events] == [
        ("import", None, "unlabelled", "import"),
        ("reject", None, "rejected: not an image: no image format recognises this file", "import"),
    ]


def test_history_actor_follows_curator_user(zoo, library, monkeypatch):
    monkeypatch.setenv("CURATOR_USER", "first")
    with library.session() as s:
        image = s.get(Image, ids(library)["w1.png"])
        history.record(s, image, "note", "note", None, "a")
        monkeypatch.setenv("CURATOR_USER", "second")
        history.record(s, image, "note", "note", "a", "b")
    with library.session() as s:
        actors = [e["actor"] for e in history.events(s, s.get(Image, ids(library)["w1.png"]))]
    assert actors[-2:] == ["first", "second"]


# -- stats ------------------------------------------------------------------------------------


def test_cli_stats_json(zoo, library, cli):
    i = ids(library)
    cli("flag", i["w1.png"], "--staged")
    cli("flag", i["a1.png"], "--synthetic", "--benchmark")
    cli("flag", i["empty.png"], "--benchmark")  # rejected: not counted
    cli("reject", i["u1.png"], "--reason", "blurry")
    data = as_json(cli("stats", "--json"))
    files = [p for p in zoo.rglob("*") if p.is_file() and p.name != "dup.png"]
    assert data == {
        "library": library.display,
        "folder": str(library.folder),
        "schema": schema.head_revision(),
        "images": 8,
        "active": 5,
        "rejected": 3,
        "labelled": 4,
        "unknown": 0,
        "unlabelled": 1,
        "staged": 1,
        "synthetic": 1,
        "benchmark": 1,
        "classes": 2,
        "subclasses": 2,
        "locations": 9,
        "duplicate_locations": 1,
        "bytes": sum(p.stat().st_size for p in files),
        "formats": {"JPEG": 1, "PNG": 4},
        "import_batches": 1,
        "history_rows": 8 + 2 + 4 + 1,  # imports, unreadable files, flags, reject
    }
    assert data["active"] + data["rejected"] == data["images"]
    assert data["labelled"] + data["unknown"] + data["unlabelled"] == data["active"]


def test_cli_stats_text(zoo, cli):
    result = cli("stats")
    assert result.exit_code == 0, result.output
    rows = dict(row for row in cells(result.stdout))
    assert {k: rows[k] for k in ("images", "active", "labelled", "unknown", "unlabelled",
                                 "rejected", "duplicate locations", "history rows")} == {
        "images": "8", "active": "6", "labelled": "4", "unknown": "1", "unlabelled": "1",
        "rejected": "2", "duplicate locations": "1", "history rows": "10",
    }
    assert rows["formats"] == "JPEG 1, PNG 5"


def test_cli_stats_on_a_missing_library(tmp_path, cli, monkeypatch):
    missing = tmp_path / "nowhere" / "curator.sqlite"
    monkeypatch.setenv("CURATOR_DB", os.fspath(missing))
    assert error(cli("stats")) == (
        f"Error: no library at {missing}: create one with `curator init`"
        " (or point --db / CURATOR_DB at an existing one)"
    )
