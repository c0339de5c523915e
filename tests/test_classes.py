"""Classes and sub-classes: the per-class counts, add, rename and merge, in the library
(`curator.classes`, `curator.labels`) and through `curator classes`."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from curator import classes, history, labels
from curator.errors import ClassNotFound, InvalidInput
from curator.ingest import import_paths
from curator.library.models import Image, LabelClass, Subclass

from conftest import as_json, error, ids

TREE = {
    "kangaroo/joey/j1.png": 1, "kangaroo/joey/j2.png": 2, "kangaroo/adult/a1.png": 3,
    "kangaroo/k1.png": 4, "kangaroo/k2.png": 5, "wallaby/w1.png": 6, "unknown/u1.png": 7,
    "loose.png": 8,
}
ZEROS = dict.fromkeys(("labelled", "real", "staged", "synthetic", "benchmark", "rejected"), 0)



def labels_of(library) -> dict[str, str]:
    with library.session() as s:
        return {Path(im.path).name: im.label for im in s.scalars(select(Image))}


def names(library) -> list[str]:
    """Every class and sub-class, as labels."""
    with library.session() as s:
        out = [c.name for c in s.scalars(select(LabelClass))]
        out += [f"{sub.parent.name}/{sub.name}" for sub in s.scalars(select(Subclass))]
    return sorted(out)



@pytest.fixture
def zoo(library, make_tree) -> Path:
    """TREE imported with labels from folders."""
    root = make_tree(TREE)
    import_paths(library, [root], labels_from_folders=True)
    return root


@pytest.fixture
def counted(zoo, library, make_tree) -> Path:
    """The zoo with every kind of count: staged, synthetic, benchmark, rejected images, a class
    of synthetic images only (emu), an empty class (dingo) and an empty sub-class."""
    import_paths(library, [make_tree({"e1.png": 11, "e2.png": 12}, root="renders")],
                 label="emu", synthetic=True)
    with library.session() as s:
        im = {name: s.get(Image, i) for name, i in ids(library).items()}
        labels.set_flags(s, [im["k2.png"]], staged=True)
        labels.set_flags(s, [im["j2.png"]], synthetic=True)
        labels.set_flags(s, [im["a1.png"]], benchmark=True)
        labels.set_flags(s, [im["k1.png"]], benchmark=True)  # rejected below: not counted
        labels.reject(s, [im["k1.png"]], "blurry")
    classes.add(library, "dingo")
    classes.add(library, "kangaroo/baby")
    return zoo


EXPECTED_TABLE = [
    {"class": "dingo", **ZEROS, "subclasses": []},
    {"class": "emu", **ZEROS, "labelled": 2, "synthetic": 2, "subclasses": []},
    {
        "class": "kangaroo", "labelled": 4, "real": 2, "staged": 1, "synthetic": 1,
        "benchmark": 1, "rejected": 1,
        "subclasses": [
            {"subclass": "adult", **ZEROS, "labelled": 1, "real": 1, "benchmark": 1},
            {"subclass": "baby", **ZEROS},
            {"subclass": "joey", **ZEROS, "labelled": 2, "real": 1, "synthetic": 1},
        ],
    },
    {"class": "wallaby", **ZEROS, "labelled": 1, "real": 1, "subclasses": []},
]


@pytest.mark.parametrize(
    "min_count, needs",
    [
        (1, {"dingo": 1, "emu": 0, "kangaroo": 0, "wallaby": 0}),
        (2, {"dingo": 2, "emu": 0, "kangaroo": 0, "wallaby": 1}),
        (5, {"dingo": 5, "emu": 3, "kangaroo": 1, "wallaby": 4}),
        (40, {"dingo": 40, "emu": 38, "kangaroo": 36, "wallaby": 39}),
    ],
)
def test_class_table_counts_and_cutoff(counted, library, min_count, needs):
    rows = classes.class_table(library, min_count)
    assert classes.state_counts(library) == {"labelled": 7, "unknown": 1, "unlabelled": 1}
    assert rows == [
        {**row, "needs": needs[row["class"]], "below_cutoff": needs[row["class"]] > 0,
         "only_staged_or_synthetic": row["class"] == "emu"}
        for row in EXPECTED_TABLE
    ]


def test_cli_classes_json(counted, cli):
    data = as_json(cli("classes", "--min-count", "2", "--json"))
    needs = {"dingo": 2, "emu": 0, "kangaroo": 0, "wallaby": 1}
    assert data == {
        "min_count": 2,
        "classes": [
            {**row, "needs": needs[row["class"]], "below_cutoff": needs[row["class"]] > 0,
             "only_staged_or_synthetic": row["class"] == "emu"}
            for row in EXPECTED_TABLE
        ],
        "labelled": 7,
        "unknown": 1,
        "unlabelled": 1,
    }
    assert as_json(cli("classes", "--json"))["min_count"] == classes.DEFAULT_MIN_COUNT


def cells(output: str) -> list[list[str]]:
    """The rows of a printed table as lists of cells (header and rule lines dropped)."""
    return [[c.strip() for c in line.split("│")] for line in output.splitlines() if "│" in line]


def test_cli_classes_table(counted, cli):
    result = cli("classes", "--min-count", "3")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [c.strip() for c in lines[0].split("┃")] == [
        "Class", "Sub-class", "Labelled", "Real", "Staged", "Synthetic", "Benchmark", "Rejected",
        "Status",
    ]
    assert cells(result.stdout) == [
        ["dingo", "", "0", "0", "0", "0", "0", "0", "needs 3 more"],
        ["emu", "", "2", "0", "0", "2", "0", "0", "needs 1 more, staged/synthetic only"],
        ["kangaroo", "", "4", "2", "1", "1", "1", "1", "ok"],
        ["", "adult", "1", "1", "0", "0", "1", "0", ""],
        ["", "baby", "0", "0", "0", "0", "0", "0", ""],
        ["", "joey", "2", "1", "0", "1", "0", "0", ""],
        ["wallaby", "", "1", "1", "0", "0", "0", "0", "needs 2 more"],
    ]
    assert lines[-1] == "4 classes, 3 below --min-count 3; 1 unknown and 1 unlabelled images."


def test_cli_classes_on_an_empty_library(library, cli):
    result = cli("classes")
    assert result.stdout.splitlines()[-1] == (
        "0 classes, 0 below --min-count 40; 0 unknown and 0 unlabelled images.")
    assert as_json(cli("classes", "--json")) == {
        "min_count": 40, "classes": [], "labelled": 0, "unknown": 0, "unlabelled": 0}


# -- add --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "label, added",
    [
        ("dingo", ["dingo"]),
        (" dingo ", ["dingo"]),
        ("kangaroo/baby", ["kangaroo", "kangaroo/baby"]),
        ("quokka/young", ["quokka", "quokka/young"]),
    ],
)
def test_cli_classes_add(library, cli, label, added):
    classes.add(library, "kangaroo")
    result = cli("classes", "add", label)
    assert (result.exit_code, result.stdout) == (0, f"Added {label.strip()}.\n")
    assert names(library) == sorted({"kangaroo", *added})


@pytest.mark.parametrize(
    "label, message",
    [
        ("unknown", "'unknown' is a label state, not a class"),
        ("Unlabelled", "'Unlabelled' is a label state, not a class"),
        ("labelled", "'labelled' is a label state, not a class name: pick another name"),
        ("kangaroo/unknown", "'unknown' is a label state, not a sub-class name:"
                             " mark images unknown with `curator unknown`"),
        ("kangaroo/Unlabelled", "'Unlabelled' is a label state, not a sub-class name:"
                                " pick another name"),
        ("a/b/c", "sub-class name 'b/c' contains '/': write labels as CLASS/SUBCLASS"),
        ("  ", "a class name cannot be empty"),
    ],
)
def test_classes_add_refuses(library, cli, label, message):
    with pytest.raises(InvalidInput) as e:
        classes.add(library, label)
    assert str(e.value) == message
    assert error(cli("classes", "add", label)) == f"Error: {message}"
    assert names(library) == []


@pytest.mark.parametrize("label", ["kangaroo", "kangaroo/joey"])
def test_classes_add_refuses_an_existing_label(library, cli, label):
    classes.add(library, "kangaroo/joey")
    assert error(cli("classes", "add", label)) == f"Error: {label} already exists"
    assert names(library) == ["kangaroo", "kangaroo/joey"]


# -- rename -----------------------------------------------------------------------------------


def events(library, name: str) -> list[tuple]:
    """(action, old, new, detail) of every label change of one image."""
    with library.session() as s:
        rows = history.events(s, s.get(Image, ids(library)[name]))
    return [(e["action"], e["old"], e["new"], e["detail"]) for e in rows if e["field"] == "label"]


def test_rename_class_relabels_every_image_and_keeps_subclasses(zoo, library):
    with library.session() as s:
        labels.reject(s, [s.get(Image, ids(library)["k1.png"])], "blurry")
    change = labels.rename(library, "kangaroo", "macropod")
    assert sorted(change.changed) == sorted(
        ids(library)[n] for n in ("j1.png", "j2.png", "a1.png", "k1.png", "k2.png"))
    assert names(library) == ["macropod", "macropod/adult", "macropod/joey", "wallaby"]
    got = labels_of(library)
    assert (got["j1.png"], got["a1.png"], got["k1.png"]) == ("macropod/joey", "macropod/adult",
                                                             "macropod")
    assert events(library, "j1.png")[-1] == ("rename", "kangaroo/joey", "macropod/joey",
                                             "kangaroo renamed")


@pytest.mark.parametrize("new", ["young", "kangaroo/young"])
def test_cli_rename_subclass(zoo, library, cli, new):
    result = cli("classes", "rename", "kangaroo/joey", new)
    assert result.stdout == f"Renamed kangaroo/joey to {new}: 2 images.\n"
    assert names(library) == ["kangaroo", "kangaroo/adult", "kangaroo/young", "wallaby"]
    assert labels_of(library)["j2.png"] == "kangaroo/young"
    assert labels_of(library)["a1.png"] == "kangaroo/adult"
    assert events(library, "j2.png")[-1] == ("rename", "kangaroo/joey", "kangaroo/young",
                                             "kangaroo/joey renamed")


def test_cli_rename_json(zoo, library, cli):
    assert as_json(cli("classes", "rename", "wallaby", "wallaroo", "--json")) == {
        "action": "rename", "changed": [ids(library)["w1.png"]]}


@pytest.mark.parametrize("old, new", [("kangaroo", "kangaroo"), ("kangaroo/joey", "joey"),
                                      ("kangaroo/joey", "kangaroo/joey")])
def test_rename_to_the_same_name_changes_nothing(zoo, library, old, new):
    change = labels.rename(library, old, new)
    assert change.changed == []
    assert events(library, "j1.png") == [("import", None, "kangaroo/joey", "batch 1")]


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("kangaroo", "wallaby",
         "'wallaby' already exists: use `curator classes merge kangaroo wallaby`"),
        ("kangaroo/joey", "adult",
         "'kangaroo/adult' already exists: use `curator classes merge kangaroo/joey kangaroo/adult`"),
        ("kangaroo/joey", "kangaroo/adult",
         "'kangaroo/adult' already exists: use `curator classes merge kangaroo/joey kangaroo/adult`"),
        ("kangaroo", "unknown",
         "'unknown' is a label state, not a class name: mark images unknown with `curator unknown`"),
        ("kangaroo", "Unlabelled", "'Unlabelled' is a label state, not a class name: pick another name"),
        ("kangaroo/joey", "labelled",
         "'labelled' is a label state, not a sub-class name: pick another name"),
        ("kangaroo/joey", "wallaby/joey",
         "sub-class name 'wallaby/joey' contains '/': write labels as CLASS/SUBCLASS"),
        ("kangaroo", "", "a class name cannot be empty"),
        ("unknown", "mystery", "'unknown' is a label state, not a class: it cannot be renamed"),
        ("quokka", "wallaby", "no class 'quokka' (known: kangaroo, wallaby)"),
        ("kangaroo/baby", "young", "class 'kangaroo' has no sub-class 'baby' (known: adult, joey)"),
    ],
)
def test_rename_refuses(zoo, library, cli, old, new, message):
    with pytest.raises((InvalidInput, ClassNotFound)) as e:
        labels.rename(library, old, new)
    assert str(e.value) == message
    assert error(cli("classes", "rename", old, new)) == f"Error: {message}"
    assert names(library) == ["kangaroo", "kangaroo/adult", "kangaroo/joey", "wallaby"]


# -- merge ------------------------------------------------------------------------------------


def test_cli_merge_class_into_class_keeps_subclasses(zoo, library, cli):
    classes.add(library, "kangaroo/baby")  # no images: kept all the same
    classes.add(library, "wallaby/joey")  # already under the destination: shared
    result = cli("classes", "merge", "kangaroo", "wallaby")
    assert result.stdout == "Merged kangaroo into wallaby: 5 images relabelled.\n"
    assert names(library) == ["wallaby", "wallaby/adult", "wallaby/baby", "wallaby/joey"]
    got = labels_of(library)
    assert {n: got[n] for n in ("j1.png", "a1.png", "k1.png", "w1.png")} == {
        "j1.png": "wallaby/joey", "a1.png": "wallaby/adult", "k1.png": "wallaby",
        "w1.png": "wallaby"}
    assert events(library, "j1.png")[-1] == ("merge", "kangaroo/joey", "wallaby/joey",
                                             "kangaroo merged into wallaby")


@pytest.mark.parametrize(
    "src, dst, expected, changed, remaining",
    [
        ("kangaroo/joey", "kangaroo/adult",
         {"j1.png": "kangaroo/adult", "a1.png": "kangaroo/adult", "k1.png": "kangaroo"}, 2,
         ["kangaroo", "kangaroo/adult", "wallaby", "wallaby/big"]),
        ("kangaroo/joey", "kangaroo",
         {"j1.png": "kangaroo", "a1.png": "kangaroo/adult", "k1.png": "kangaroo"}, 2,
         ["kangaroo", "kangaroo/adult", "wallaby", "wallaby/big"]),
        ("kangaroo/joey", "wallaby",
         {"j1.png": "wallaby", "a1.png": "kangaroo/adult", "w1.png": "wallaby"}, 2,
         ["kangaroo", "kangaroo/adult", "wallaby", "wallaby/big"]),
        ("kangaroo", "wallaby/big",
         {"j1.png": "wallaby/big", "a1.png": "wallaby/big", "k1.png": "wallaby/big",
          "w1.png": "wallaby"}, 5,
         ["wallaby", "wallaby/big"]),
    ],
)
def test_merge(zoo, library, src, dst, expected, changed, remaining):
    classes.add(library, "wallaby/big")
    change = labels.merge(library, src, dst)
    got = labels_of(library)
    assert {n: got[n] for n in expected} == expected
    assert len(change.changed) == changed
    assert names(library) == remaining


def test_cli_merge_json_and_history(zoo, library, cli):
    result = cli("classes", "merge", "kangaroo/joey", "kangaroo/adult", "--json")
    assert as_json(result) == {"action": "merge",
                               "changed": [ids(library)["j1.png"], ids(library)["j2.png"]]}
    assert events(library, "j2.png") == [
        ("import", None, "kangaroo/joey", "batch 1"),
        ("merge", "kangaroo/joey", "kangaroo/adult", "kangaroo/joey merged into kangaroo/adult"),
    ]
    assert events(library, "a1.png") == [("import", None, "kangaroo/adult", "batch 1")]


@pytest.mark.parametrize(
    "src, dst, message",
    [
        ("kangaroo", "kangaroo", "cannot merge kangaroo into kangaroo: pick a label outside it"),
        ("kangaroo", "kangaroo/joey",
         "cannot merge kangaroo into kangaroo/joey: pick a label outside it"),
        ("kangaroo/joey", "kangaroo/joey",
         "cannot merge kangaroo/joey into kangaroo/joey: pick a label outside it"),
        ("unknown", "kangaroo",
         "merge takes two labels: SRC and DST, each CLASS or CLASS/SUBCLASS"),
        ("kangaroo", "unlabelled",
         "merge takes two labels: SRC and DST, each CLASS or CLASS/SUBCLASS"),
        ("quokka", "kangaroo", "no class 'quokka' (known: kangaroo, wallaby)"),
        ("kangaroo", "quokka", "no class 'quokka' (known: kangaroo, wallaby)"),
        ("wallaby", "kangaroo/baby",
         "class 'kangaroo' has no sub-class 'baby' (known: adult, joey)"),
    ],
)
def test_merge_refuses(zoo, library, cli, src, dst, message):
    with pytest.raises((InvalidInput, ClassNotFound)) as e:
        labels.merge(library, src, dst)
    assert str(e.value) == message
    assert error(cli("classes", "merge", src, dst)) == f"Error: {message}"
    assert names(library) == ["kangaroo", "kangaroo/adult", "kangaroo/joey", "wallaby"]
