"""Labelling images: label, relabel, unknown, reject/restore, flags and notes, in the library
(`curator.labels`) and through the CLI. Every change is one history row; no change, no row."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from curator import history, labels
from curator.errors import ClassNotFound, InvalidInput
from curator.ingest import import_paths
from curator.library.models import Image

from conftest import as_json, error, ids, write_image

TREE = {
    "kangaroo/joey/j1.png": 1, "kangaroo/joey/j2.png": 2, "kangaroo/adult/a1.png": 3,
    "kangaroo/k1.png": 4, "wallaby/w1.png": 5, "unknown/u1.png": 6,
    "loose1.png": 7, "loose2.png": 8,
}


@pytest.fixture
def zoo(library, make_tree) -> Path:
    """TREE imported with labels from folders, plus an empty and a corrupt file (rejected)."""
    root = make_tree(TREE)
    (root / "empty.png").write_bytes(b"")
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    import_paths(library, [root], labels_from_folders=True)
    return root


def state(library) -> dict[str, tuple]:
    """file name -> (label, status, reject reason, staged, synthetic, benchmark, note)."""
    with library.session() as s:
        return {
            Path(im.path).name: (im.label, im.status, im.reject_reason, im.staged, im.synthetic,
                                 im.benchmark, im.note)
            for im in s.scalars(select(Image))
        }


def labels_of(library) -> dict[str, str]:
    return {name: row[0] for name, row in state(library).items()}



def changes(library, name: str, since: int = 0) -> list[tuple]:
    """History rows of one image as (action, field, old, new, source, detail), oldest first."""
    with library.session() as s:
        image = s.get(Image, ids(library)[name])
        rows = history.events(s, image)
    return [(e["action"], e["field"], e["old"], e["new"], e["source"], e["detail"])
            for e in rows][since:]


def images(s, library, *names) -> list[Image]:
    return [s.get(Image, ids(library)[n]) for n in names]



# -- the library ------------------------------------------------------------------------------


def test_label_unlabelled_and_unknown_images_records_history(zoo, library):
    with library.session() as s:
        change = labels.label(s, images(s, library, "loose1.png", "u1.png"), "wallaby")
    assert (change.action, change.unchanged) == ("label", 0)
    assert sorted(change.changed) == sorted(ids(library)[n] for n in ("loose1.png", "u1.png"))
    assert labels_of(library)["loose1.png"] == labels_of(library)["u1.png"] == "wallaby"
    assert changes(library, "loose1.png") == [
        ("import", "label", None, "unlabelled", "import", "batch 1"),
        ("label", "label", "unlabelled", "wallaby", "cli", None),
    ]
    assert changes(library, "u1.png", 1) == [("label", "label", "unknown", "wallaby", "cli", None)]


def test_label_with_the_same_label_changes_nothing(zoo, library):
    with library.session() as s:
        change = labels.label(s, images(s, library, "w1.png", "loose1.png"), "wallaby")
    assert (change.changed, change.unchanged) == ([ids(library)["loose1.png"]], 1)
    assert len(changes(library, "w1.png")) == 1  # the import row only


def test_label_refuses_an_image_labelled_otherwise(zoo, library):
    with library.session() as s, pytest.raises(InvalidInput) as e:
        labels.label(s, images(s, library, "loose1.png", "k1.png"), "wallaby")
    assert str(e.value) == (
        f"image {ids(library)['k1.png']} is already labelled kangaroo:"
        " use `curator relabel` to change a label"
    )
    assert labels_of(library)["loose1.png"] == "unlabelled"  # nothing half-done


@pytest.mark.parametrize(
    "label, message",
    [
        ("emu", "no class 'emu' (known: kangaroo, wallaby);"
                " add it with `curator classes add emu` or pass --create"),
        ("kangaroo/baby", "class 'kangaroo' has no sub-class 'baby' (known: adult, joey);"
                          " add it with `curator classes add kangaroo/baby` or pass --create"),
        ("wallaby/baby", "class 'wallaby' has no sub-class 'baby' (known: none);"
                         " add it with `curator classes add wallaby/baby` or pass --create"),
    ],
)
def test_label_with_an_unknown_class_or_subclass(zoo, library, label, message):
    with library.session() as s, pytest.raises(ClassNotFound) as e:
        labels.label(s, images(s, library, "loose1.png"), label)
    assert str(e.value) == message
    with library.session() as s:
        labels.label(s, images(s, library, "loose1.png"), label, create=True)
    assert labels_of(library)["loose1.png"] == label


@pytest.mark.parametrize(
    "label, message",
    [
        ("labelled", "'labelled' is a label state, not a class name: pick another name"),
        ("unknown/x", "'unknown' is a label state, not a class name:"
                      " mark images unknown with `curator unknown`"),
        ("emu/unlabelled", "'unlabelled' is a label state, not a sub-class name: pick another name"),
        ("/joey", "a class name cannot be empty"),
    ],
)
def test_label_names_that_are_not_classes(zoo, library, label, message):
    with library.session() as s, pytest.raises(InvalidInput) as e:
        labels.label(s, images(s, library, "loose1.png"), label, create=True)
    assert str(e.value) == message


@pytest.mark.parametrize("label, state_", [("unknown", "unknown"), ("UNKNOWN", "unknown"),
                                           ("emu/", "emu")])
def test_label_states_and_a_trailing_slash(zoo, library, label, state_):
    with library.session() as s:
        labels.label(s, images(s, library, "loose1.png"), label, create=True)
    assert labels_of(library)["loose1.png"] == state_


def test_relabel_and_unknown_record_old_and_new(zoo, library):
    with library.session() as s:
        change = labels.relabel(s, images(s, library, "j1.png", "k1.png", "w1.png"), "wallaby")
        assert (len(change.changed), change.unchanged) == (2, 1)
        labels.mark_unknown(s, images(s, library, "k1.png"))
        labels.relabel(s, images(s, library, "j2.png"), "unlabelled")
    assert changes(library, "j1.png", 1) == [("relabel", "label", "kangaroo/joey", "wallaby", "cli", None)]
    assert changes(library, "k1.png", 1) == [
        ("relabel", "label", "kangaroo", "wallaby", "cli", None),
        ("unknown", "label", "wallaby", "unknown", "cli", None),
    ]
    assert labels_of(library)["j2.png"] == "unlabelled"
    assert len(changes(library, "w1.png")) == 1


def test_reject_and_restore(zoo, library):
    with library.session() as s:
        assert labels.reject(s, images(s, library, "k1.png"), "blurry").changed
        assert labels.reject(s, images(s, library, "k1.png"), "blurry").unchanged == 1
        assert labels.reject(s, images(s, library, "k1.png"), "watermark").changed
    assert state(library)["k1.png"][1:3] == ("rejected", "watermark")
    with library.session() as s:
        assert labels.restore(s, images(s, library, "k1.png", "w1.png")).unchanged == 1
    assert state(library)["k1.png"][:3] == ("kangaroo", "active", None)
    assert changes(library, "k1.png", 1) == [
        ("reject", "status", "active", "rejected: blurry", "cli", None),
        ("reject", "status", "rejected: blurry", "rejected: watermark", "cli", None),
        ("restore", "status", "rejected: watermark", "active", "cli", None),
    ]


def test_reject_needs_a_reason(zoo, library):
    with library.session() as s, pytest.raises(InvalidInput) as e:
        labels.reject(s, images(s, library, "k1.png"), "  ")
    assert str(e.value) == "give a reason for the rejection with --reason"


def test_reject_keeps_the_import_reason_of_an_unreadable_file(zoo, library):
    with library.session() as s:
        change = labels.reject(s, images(s, library, "empty.png"), "blurry")
    assert (change.changed, change.unchanged) == ([], 1)
    assert state(library)["empty.png"][1:3] == ("rejected", "empty file (0 bytes)")


def _truncated(root: Path) -> None:
    path = write_image(root / "truncated.png", size=(200, 200), seed=9)
    path.write_bytes(path.read_bytes()[:300])


@pytest.mark.parametrize(
    "name, make",
    [
        ("empty.png", lambda root: (root / "empty.png").write_bytes(b"")),
        ("corrupt.jpg", lambda root: (root / "corrupt.jpg").write_bytes(b"\xff\xd8 not a jpeg")),
        ("truncated.png", _truncated),
    ],
)
def test_restore_refuses_a_file_unreadable_at_import(library, cli, tmp_path, name, make):
    root = tmp_path / "bad"
    root.mkdir()
    make(root)
    write_image(root / "good.png", seed=1)
    import_paths(library, [root])
    image_id, reason = ids(library)[name], state(library)[name][2]
    assert reason
    message = (f"image {image_id} could not be read at import ({reason}):"
               " it cannot be restored; re-import a good copy instead")
    with library.session() as s, pytest.raises(InvalidInput) as e:
        labels.restore(s, images(s, library, name))
    assert str(e.value) == message
    assert error(cli("restore", ids(library)["good.png"], image_id)) == f"Error: {message}"
    assert state(library)[name][1] == "rejected"


@pytest.mark.parametrize(
    "flags, expected, rows",
    [
        ({"staged": True}, (True, False, False), 1),
        ({"synthetic": True, "benchmark": True}, (False, True, True), 2),
        ({"staged": False, "benchmark": None}, (False, False, False), 0),
    ],
)
def test_set_flags(zoo, library, flags, expected, rows):
    with library.session() as s:
        change = labels.set_flags(s, images(s, library, "k1.png"), **flags)
    assert len(change.changed) == (1 if rows else 0)
    assert state(library)["k1.png"][3:6] == expected
    assert len(changes(library, "k1.png", 1)) == rows


@pytest.mark.parametrize(
    "flags, message",
    [
        ({}, "name a flag to set: --staged/--no-staged, --synthetic/--no-synthetic,"
             " --benchmark/--no-benchmark"),
        ({"staged": None}, "name a flag to set: --staged/--no-staged, --synthetic/--no-synthetic,"
                           " --benchmark/--no-benchmark"),
        ({"posed": True}, "no flag posed: flags are staged, synthetic, benchmark"),
        ({"staged": True, "synthetic": True}, "image 5 would be both staged and synthetic: an image"
         " is one or the other (clear one with --no-staged or --no-synthetic)"),
    ],
)
def test_set_flags_errors(zoo, library, flags, message):
    with library.session() as s, pytest.raises(InvalidInput) as e:
        labels.set_flags(s, images(s, library, "k1.png"), **flags)
    assert str(e.value) == message


def test_set_note(zoo, library):
    with library.session() as s:
        (image,) = images(s, library, "k1.png")
        assert labels.set_note(s, image, "  tail cut off ").changed == [image.id]
        assert labels.set_note(s, image, "tail cut off").unchanged == 1
        assert labels.set_note(s, image, "").changed == [image.id]
    assert changes(library, "k1.png", 1) == [
        ("note", "note", None, "tail cut off", "cli", None),
        ("note", "note", "tail cut off", None, "cli", None),
    ]


# -- the CLI ----------------------------------------------------------------------------------


def _sha(library, name: str) -> str:
    with library.session() as s:
        return s.get(Image, ids(library)[name]).sha256


@pytest.mark.parametrize("how", ["id", "path", "relative path", "sha256 prefix", "SHA256 PREFIX"])
def test_cli_label_one_image_by_any_reference(zoo, library, cli, monkeypatch, how):
    monkeypatch.chdir(zoo.parent)
    ref = {
        "id": str(ids(library)["loose1.png"]),
        "path": str(zoo / "loose1.png"),
        "relative path": f"{zoo.name}/loose1.png",
        "sha256 prefix": _sha(library, "loose1.png")[:8],
        "SHA256 PREFIX": _sha(library, "loose1.png")[:10].upper(),
    }[how]
    result = cli("label", ref, "--class", "wallaby")
    assert (result.exit_code, result.stdout) == (0, "label: 1 changed, 0 already so.\n")
    assert labels_of(library)["loose1.png"] == "wallaby"


@pytest.mark.parametrize("from_stdin", [False, True])
def test_cli_label_images_listed_in_a_file(zoo, library, cli, tmp_path, from_stdin):
    listing = (f"{ids(library)['loose1.png']}\n\n# a comment line\n  {zoo / 'loose2.png'}  \n"
               f"{_sha(library, 'u1.png')[:12]}\n")
    if from_stdin:
        result = cli("label", "--file", "-", "--class", "kangaroo", "--subclass", "joey",
                     "--json", input=listing)
    else:
        (tmp_path / "refs.txt").write_text(listing)
        result = cli("label", "-f", tmp_path / "refs.txt", "--class", "kangaroo/joey", "--json")
    assert as_json(result) == {
        "action": "label",
        "changed": [ids(library)[n] for n in ("loose1.png", "loose2.png", "u1.png")],
        "unchanged": 0,
    }
    assert {labels_of(library)[n] for n in ("loose1.png", "loose2.png", "u1.png")} == {"kangaroo/joey"}


def test_cli_label_of_unlabelled_takes_active_images_only(zoo, library, cli):
    result = cli("label", "--of", "unlabelled", "--class", "emu", "--create")
    assert result.stdout == "label: 2 changed, 0 already so.\n"
    got = labels_of(library)
    assert (got["loose1.png"], got["loose2.png"]) == ("emu", "emu")
    assert (got["empty.png"], got["corrupt.jpg"]) == ("unlabelled", "unlabelled")  # rejected


def test_cli_label_arguments_and_of_together_without_duplicates(zoo, library, cli):
    result = cli("label", ids(library)["loose2.png"], "--of", "unknown", "--class", "wallaby",
                 "--json")
    assert as_json(result)["changed"] == [ids(library)["loose2.png"], ids(library)["u1.png"]]


def test_cli_label_refuses_a_labelled_image(zoo, library, cli):
    k1 = ids(library)["k1.png"]
    message = error(cli("label", ids(library)["loose1.png"], k1, "--class", "wallaby"))
    assert message == (f"Error: image {k1} is already labelled kangaroo:"
                       " use `curator relabel` to change a label")
    assert labels_of(library)["loose1.png"] == "unlabelled"


def test_cli_label_unknown_class_then_create(zoo, library, cli):
    u1 = ids(library)["u1.png"]
    assert error(cli("label", u1, "--class", "emu", "--subclass", "chick")) == (
        "Error: no class 'emu' (known: kangaroo, wallaby);"
        " add it with `curator classes add emu/chick` or pass --create"
    )
    result = cli("label", u1, "--class", "emu", "--subclass", "chick", "--create")
    assert result.stdout == "label: 1 changed, 0 already so.\n"
    assert labels_of(library)["u1.png"] == "emu/chick"
    assert changes(library, "u1.png", 1) == [("label", "label", "unknown", "emu/chick", "cli", None)]


def test_cli_label_subclass_twice(zoo, library, cli):
    assert error(cli("label", "1", "--class", "kangaroo/joey", "--subclass", "adult")) == (
        "Error: label 'kangaroo/joey' already names a sub-class; drop --subclass adult"
    )


@pytest.mark.parametrize(
    "refs, label, expected, output",
    [
        (["j1.png"], "wallaby", {"j1.png": "wallaby"}, "1 changed, 0 already so."),
        (["j1.png", "a1.png", "w1.png"], "kangaroo/adult",
         {"j1.png": "kangaroo/adult", "a1.png": "kangaroo/adult", "w1.png": "kangaroo/adult"},
         "2 changed, 1 already so."),
        (["--of", "kangaroo/joey"], "wallaby/young",
         {"j1.png": "wallaby/young", "j2.png": "wallaby/young", "a1.png": "kangaroo/adult"},
         "2 changed, 0 already so."),
        (["--of", "kangaroo"], "wallaby",
         {"j1.png": "wallaby", "a1.png": "wallaby", "k1.png": "wallaby", "u1.png": "unknown"},
         "4 changed, 0 already so."),
    ],
)
def test_cli_relabel(zoo, library, cli, refs, label, expected, output):
    args = [ids(library)[r] if r.endswith(".png") else r for r in refs]
    result = cli("relabel", *args, "--class", label, "--create")
    assert result.stdout == f"relabel: {output}\n"
    got = labels_of(library)
    assert {n: got[n] for n in expected} == expected


def test_cli_relabel_to_the_same_label_adds_no_history(zoo, library, cli):
    result = cli("relabel", ids(library)["j1.png"], "--class", "kangaroo", "--subclass", "joey")
    assert result.stdout == "relabel: 0 changed, 1 already so.\n"
    assert len(changes(library, "j1.png")) == 1


def test_cli_relabel_of_an_unknown_label(zoo, cli):
    # Selecting by a label that does not exist: no --create hint, that would not help.
    assert error(cli("relabel", "--of", "emu", "--class", "wallaby", "--create")) == (
        "Error: no class 'emu' (known: kangaroo, wallaby)"
    )


def test_cli_unknown(zoo, library, cli):
    result = cli("unknown", ids(library)["k1.png"], ids(library)["u1.png"], "--json")
    assert as_json(result) == {"action": "unknown", "changed": [ids(library)["k1.png"]],
                               "unchanged": 1}
    assert changes(library, "k1.png", 1) == [("unknown", "label", "kangaroo", "unknown", "cli", None)]


def test_cli_reject_and_restore(zoo, library, cli):
    w1 = ids(library)["w1.png"]
    assert cli("reject", w1, "--reason", "blurry").stdout == "reject: 1 changed, 0 already so.\n"
    assert state(library)["w1.png"][:3] == ("wallaby", "rejected", "blurry")
    assert cli("reject", w1, "--reason", "blurry").stdout == "reject: 0 changed, 1 already so.\n"
    assert cli("restore", w1).stdout == "restore: 1 changed, 0 already so.\n"
    assert cli("restore", w1).stdout == "restore: 0 changed, 1 already so.\n"
    assert state(library)["w1.png"][:3] == ("wallaby", "active", None)
    assert error(cli("reject", w1, "--reason", "")) == (
        "Error: give a reason for the rejection with --reason")
    assert [r[:4] for r in changes(library, "w1.png", 1)] == [
        ("reject", "status", "active", "rejected: blurry"),
        ("restore", "status", "rejected: blurry", "active"),
    ]


def test_cli_reject_default_reason_and_of(zoo, library, cli):
    result = cli("reject", "--of", "kangaroo/joey", "--json")
    assert as_json(result)["changed"] == [ids(library)["j1.png"], ids(library)["j2.png"]]
    assert state(library)["j2.png"][1:3] == ("rejected", "rejected by user")


@pytest.mark.parametrize(
    "args, expected, output",
    [
        (["--staged"], (True, False, False), "1 changed, 0 already so."),
        (["--synthetic", "--benchmark"], (False, True, True), "1 changed, 0 already so."),
        (["--benchmark", "--no-benchmark"], (False, False, False), "0 changed, 1 already so."),
        (["--no-staged"], (False, False, False), "0 changed, 1 already so."),
    ],
)
def test_cli_flag(zoo, library, cli, args, expected, output):
    result = cli("flag", ids(library)["k1.png"], *args)
    assert result.stdout == f"flag: {output}\n"
    assert state(library)["k1.png"][3:6] == expected


def test_cli_flag_then_clear(zoo, library, cli):
    k1, w1 = ids(library)["k1.png"], ids(library)["w1.png"]
    cli("flag", k1, w1, "--synthetic", "--benchmark")
    result = cli("flag", k1, "--no-synthetic", "--no-benchmark", "--json")
    assert as_json(result) == {"action": "flag", "changed": [k1], "unchanged": 0}
    assert (state(library)["k1.png"][3:6], state(library)["w1.png"][3:6]) == (
        (False, False, False), (False, True, True))
    assert [r[:4] for r in changes(library, "k1.png", 1)] == [
        ("flag", "synthetic", "false", "true"),
        ("flag", "benchmark", "false", "true"),
        ("flag", "synthetic", "true", "false"),
        ("flag", "benchmark", "true", "false"),
    ]
    assert error(cli("flag", k1)) == (
        "Error: name a flag to set: --staged/--no-staged, --synthetic/--no-synthetic,"
        " --benchmark/--no-benchmark"
    )


def test_cli_note(zoo, library, cli):
    path = zoo / "kangaroo" / "k1.png"
    assert cli("note", path, "ear tag visible").stdout == "note: 1 changed, 0 already so.\n"
    assert cli("note", path, "ear tag visible").stdout == "note: 0 changed, 1 already so.\n"
    assert state(library)["k1.png"][6] == "ear tag visible"
    assert cli("note", path, "").stdout == "note: 1 changed, 0 already so.\n"
    assert state(library)["k1.png"][6] is None
    assert error(cli("note", "99", "x")) == "Error: no image with id 99"


@pytest.mark.parametrize(
    "args",
    [
        ["label", "--class", "wallaby"],
        ["relabel", "--class", "wallaby"],
        ["unknown"],
        ["reject", "--reason", "blurry"],
        ["restore"],
        ["flag", "--staged"],
        ["label", "--file", "-", "--class", "wallaby"],  # an empty stdin names nothing
    ],
)
def test_cli_commands_need_images(zoo, cli, args):
    assert error(cli(*args, input="")) == (
        "Error: name some images: IDs/paths/sha256 prefixes, --file FILE (- for stdin) or --of LABEL"
    )
