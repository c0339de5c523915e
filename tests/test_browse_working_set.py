"""`browse`'s working set on FiftyOne's real database: the saved views' images (or one view's),
what was asked for, the cap, stale samples leaving, app edits kept until pulled, and --all."""

from __future__ import annotations

import pytest

from conftest import as_json, error
from curator import fiftyone_pull
from curator import fiftyone_sync as fs
from curator import fiftyone_views, filters, labels
from curator.fiftyone_views import Scope
from curator.library.models import Image

fo = pytest.importorskip("fiftyone")

WORKING = Scope(all=False)
LOW = fiftyone_views.LOW_CONFIDENCE


def held(lib) -> set[int]:
    """The curator ids of the dataset's samples."""
    return set(fs.open_dataset(lib, create=False).values("curator_id"))


def found(lib, **query) -> list[int]:
    return [r["image_id"] for r in filters.find(lib, filters.Query(run="r", **query))["rows"]]


def the_views(lib) -> dict[str, list[int]]:
    """The working set's views, each straight from `filters.find` (look-alike-C: the rows of
    `find --class C --max-confidence`), as the module docstring lists them."""
    views = {"low-confidence": found(lib, label="unlabelled", max_confidence=LOW),
             "low-count": found(lib, low_count=True), "synthetic-dependent": found(lib, synthetic_dependent=True),
             "unknown": found(lib, unknown=True), "lowest": found(lib, lowest=fiftyone_views.LOWEST)}
    for cls in ("antelope", "kangaroo", "wombat"):
        views[f"look-alike-{cls}"] = found(lib, predicted=cls, max_confidence=LOW)
    return views


def tag(lib, tag_name: str, *files: str) -> None:
    with lib.session() as s:
        labels.tag(s, [s.get(Image, lib.by_name[f]) for f in files], tag_name)


def names(lib, ids) -> set[str]:
    by_id = {v: k for k, v in lib.by_name.items()}
    return {by_id[i] for i in ids}


def test_the_working_set_holds_exactly_the_saved_views_images(known):
    tag(known, "check", "w1.png", "p5.png")  # a tag view is saved, not part of the working set
    result = fs.sync(known, scope=WORKING)
    views = the_views(known)
    union = {i for ids in views.values() for i in ids}
    assert held(known) == union
    assert names(known, union) == {"k1.png", "k5.png", "p1.png", "p2.png", "p3.png", "p4.png", "p5.png", "u1.png", "u2.png"}
    assert (result["working_set"], result["samples"], result["active"]) == (True, 9, 18)
    # every view is saved whole, the tag view with what the working set holds of it (w1, w2: not held)
    assert {name: result["views"][name] for name in views} == {name: len(ids) for name, ids in views.items()}
    assert result["views"]["tag-check"] == 1  # p5 (w1 is not held)


@pytest.mark.parametrize("view", ["low-confidence", "unknown", "synthetic-dependent", "look-alike-kangaroo", "lowest"])
def test_view_alone_holds_exactly_that_views_images(known, view):
    fs.sync(known, scope=Scope(all=False, view=view))
    assert held(known) == set(the_views(known)[view])


def test_all_mirrors_every_active_image_and_the_working_set_drops_the_rest(known):
    assert fs.sync(known, scope=WORKING)["samples"] == 9
    whole = fs.sync(known, scope=Scope(all=True))
    assert (whole["working_set"], whole["samples"], whole["added"]) == (False, 18, 9)
    assert held(known) == set(known.by_name.values())
    again = fs.sync(known, scope=Scope(all=False, view="unknown"))
    assert (again["samples"], again["removed"]) == (2, 16)
    assert names(known, held(known)) == {"u1.png", "u2.png"}


def test_the_default_is_a_working_set_above_the_threshold(known, monkeypatch):
    assert fs.sync(known)["working_set"] is False  # 18 active images
    monkeypatch.setattr(fiftyone_views, "WORKING_SET_ABOVE", 17)
    assert fs.sync(known, scope=Scope())["working_set"] is True
    assert fs.sync(known)["working_set"] is True  # no scope: the dataset's own
    assert fs.sync(known, scope=Scope(all=True))["working_set"] is False


def test_asked_images_come_first_and_the_cap_is_shared_rank_by_rank(known):
    tag(known, "check", "w1.png", "w2.png", "a1.png")
    fs.sync(known, scope=Scope(tagged=("check",), limit=2, view="unknown"))  # a tag asks for a working set
    assert names(known, held(known)) == {"w1.png", "w2.png", "u1.png", "u2.png"}  # the tag's first 2 (by id)
    # first of each view in turn: low-confidence p5, low-count p5, synthetic-dependent p4, unknown u1
    fs.sync(known, scope=Scope(all=False, max_samples=3))
    assert names(known, held(known)) == {"p5.png", "p4.png", "u1.png"}
    fs.sync(known, scope=Scope(all=False, view="lowest", max_samples=2))  # a view's first rows
    assert names(known, held(known)) == set(names(known, found(known, lowest=2)))
    fs.sync(known, scope=Scope(all=False, view="unknown", classes=("kangaroo",), limit=2, max_samples=3))
    assert names(known, held(known)) == set(names(known, found(known, predicted="kangaroo")[:2])) | {"u1.png"}


def test_an_app_edit_keeps_its_sample_until_pulled(known):
    fs.sync(known, scope=WORKING)
    dataset = fs.open_dataset(known, create=False)
    sample = dataset.one(fo.ViewField("curator_id") == known.by_name["p1.png"])
    sample.tags.append("label:wombat")
    sample.save()
    # p1 leaves the working set (not in view unknown) but its edit is not pulled yet: kept
    kept = fs.sync(known, scope=Scope(all=False, view="unknown"))
    assert names(known, held(known)) == {"u1.png", "u2.png", "p1.png"} and kept["kept_edits"] == 1
    pulled = fiftyone_pull.pull(known)
    assert pulled["labels"] == [known.by_name["p1.png"]]
    with known.session() as s:
        assert s.get(Image, known.by_name["p1.png"]).label == "wombat"
    # pull refreshed the dataset with its own working set: p1 has left it now
    assert names(known, held(known)) == {"u1.png", "u2.png"}
    assert fs.open_dataset(known, create=False).info["scope"]["view"] == "unknown"


def test_cli_browse_working_set(known, cli):
    out = as_json(cli("browse", "--no-launch", "--working-set", "--json"))
    assert (out["working_set"], out["samples"], out["scope"]["max_samples"]) == (True, 9, fiftyone_views.MAX_SAMPLES)
    text = cli("browse", "--no-launch", "--working-set", "--view", "unknown").stdout
    assert f"2 samples: a working set of the 18 active images (view unknown, at most {fiftyone_views.MAX_SAMPLES:,};" in text
    assert "Open it with `curator browse --working-set --view unknown` (the app then serves " in text
    assert "18 samples, predictions of r)" in cli("browse", "--no-launch", "--all").stdout
    assert error(cli("browse", "--no-launch", "--working-set", "--view", "nope")).startswith(
        "Error: no saved view 'nope': there are low-confidence, ")
    assert error(cli("browse", "--no-launch", "--tagged", "nope")) == "Error: no image is tagged 'nope' (tags: none yet)"
    assert error(cli("browse", "--no-launch", "--all", "--class", "wombat")) == (
        "Error: --all holds every image already: drop --tagged / --class, or --all for a working set")
    assert f"{fiftyone_views.WORKING_SET_ABOVE:,} active images" in " ".join(cli("browse", "--help").stdout.split())
