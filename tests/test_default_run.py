"""Which run a command reads when none is named (curator.runs): helper runs never count, and
commands that read predictions take the newest run that predicted the images they look at."""

from __future__ import annotations

import json

import pytest

from conftest import SAMPLE, as_json, error
from curator import filters, runs
from curator.library.models import Prediction, Run

NOTE = "Note: run newer has not predicted the pool: run `curator bulk-identify --run newer`"


def add_run(lib, name: str, predicts: dict[str, str], purpose: str = "train") -> None:
    """A finished run on build ``b`` that predicted the images named (file -> class), at 0.5."""
    with lib.session() as s:
        run = Run(name=name, build_id=s.get(Run, 1).build_id, model="test_resnet", status="done",
                  folder=f"runs/{name}", classes=json.dumps(["antelope", "kangaroo", "wombat"]), purpose=purpose)
        s.add(run)
        s.flush()
        for file, cls in predicts.items():
            s.add(Prediction(run_id=run.id, image_id=lib.by_name[file], predicted=cls, confidence=0.5,
                             top_k=json.dumps([[cls, 0.5]])))


@pytest.fixture
def newer(known):
    """``known`` (run r predicted the pool), then ``newer``, which predicted only labelled k1, and
    the helper run ``suspects-r-fold1``, newest of all, which predicted the whole pool."""
    add_run(known, "newer", {"k1.png": "kangaroo"})
    add_run(known, "suspects-r-fold1", {f"p{i}.png": "wombat" for i in range(1, 6)}, purpose="suspects")
    return known


def test_latest_skips_helper_runs(newer):
    with newer.session() as s:
        assert runs.find_run(s, "latest").name == "newer"
        assert runs.find_run(s, "suspects-r-fold1").purpose == "suspects"  # named, it is used


@pytest.mark.parametrize("query, run, notes", [
    (dict(), "r", ["run newer has not predicted the pool: run `curator bulk-identify --run newer`"]),
    (dict(low_count=True), "r", ["run newer has not predicted the pool: run `curator bulk-identify --run newer`"]),
    (dict(unknown=True), "r",
     ["run newer has not predicted the unknown images: run `curator bulk-identify --run newer --pool unknown`"]),
    (dict(label="kangaroo"), "newer", []),  # labelled images: newer predicted k1
    (dict(split="train"), "newer", []),
    (dict(run="newer"), "newer", ["run newer has not predicted the pool: run `curator bulk-identify --run newer`"]),
    (dict(run="latest", label="unlabelled"), "newer",
     ["run newer has not predicted the pool: run `curator bulk-identify --run newer`"]),
    (dict(run="r"), "r", []),
])
def test_find_defaults_to_the_newest_run_that_predicted_its_images(newer, query, run, notes):
    found = filters.find(newer, filters.Query(**query))
    assert (found["run"], found["notes"]) == (run, notes)


def test_every_run_predicted_the_pool_or_no_pool_means_no_note(known):
    assert filters.find(known, filters.Query())["notes"] == []
    add_run(known, "newer", {f"p{i}.png": "kangaroo" for i in range(1, 6)})
    assert filters.find(known, filters.Query())["run"] == "newer"
    assert filters.find(known, filters.Query(unknown=True))["notes"] == [
        "run newer has not predicted the unknown images: run `curator bulk-identify --run newer --pool unknown`"]


def test_no_finished_run_is_one_line(library, cli):
    assert error(cli("find")) == "Error: no finished training run yet: `curator train --splits BUILD` makes one"


def test_cli_find_and_coverage_say_whose_predictions_and_why(newer, cli):
    found = cli("find", "--class", "kangaroo", "--max-confidence", "0.6")
    assert found.exit_code == 0, found.output
    assert found.stdout.rstrip().endswith("2 images (predictions of r).")
    assert found.stderr.strip() == NOTE
    assert as_json(cli("find", "--lowest", "1", "--json"))["notes"] == [NOTE[len("Note: "):]]
    paths = cli("find", "--lowest", "1", "--paths")
    assert len(paths.stdout.split()) == 1
    assert paths.stderr.splitlines() == [NOTE, "1 images (predictions of r)."]
    cov = cli("coverage", "--min-count", "5")
    assert cov.stdout.rstrip().endswith("Pool predictions of r.") and cov.stderr.strip() == NOTE
    rows = as_json(cli("coverage", "--min-count", "5", "--json"))
    assert [(r["class"], r["predicted"]) for r in rows] == [("wombat", 1), ("antelope", 2), ("kangaroo", 2)]
    named = cli("coverage", "--run", "r")
    assert "Pool predictions of r." in named.stdout and named.stderr == ""


def test_runs_lists_helper_runs_only_when_asked(newer, cli):
    listed = cli("runs").stdout
    assert "suspects-r-fold1" not in listed
    assert "1 helper runs not shown (suspects folds): `curator runs --all` lists them." in listed
    assert "suspects helper" in cli("runs", "--all").stdout
    assert {r["name"]: r["purpose"] for r in as_json(cli("runs", "--json"))} == {
        "r": "train", "newer": "train", "suspects-r-fold1": "suspects"}


def test_after_suspects_no_default_switches_to_the_fold_runs(trained_copy, cli, monkeypatch):
    """As the README's tour: the older run predicted the pool, the newer did not; then suspects."""
    from curator import report
    from curator.library import open_library

    monkeypatch.setenv("CURATOR_DB", trained_copy)
    assert cli("import", SAMPLE / "pool").exit_code == 0
    assert cli("bulk-identify", "--run", "parent", "--limit", "20").exit_code == 0
    assert cli("suspects", "--run", "child", "--folds", "2", "--epochs", "1").exit_code == 0
    note = "Note: run child has not predicted the pool: run `curator bulk-identify --run child`"
    lib = open_library(trained_copy)
    try:
        with lib.session() as s:
            assert runs.find_run(s, "latest").name == "child"
            assert runs.find_run(s, "suspects-child-fold2").purpose == "suspects"
        assert "suspects-" not in json.dumps(report.gather(lib), default=str)
    finally:
        lib.close()
    found = cli("find", "--limit", "3")
    assert found.stdout.rstrip().endswith("images (predictions of parent).") and found.stderr.strip() == note
    assert as_json(cli("find", "--label", "unlabelled", "--json"))["total"] == 20
    cov = cli("coverage", "--min-count", "40")
    assert "Pool predictions of parent." in cov.stdout and cov.stderr.strip() == note
    assert as_json(cli("find", "--label", "drink", "--limit", "1", "--json"))["run"] == "child"
    assert as_json(cli("runs", "show", "latest", "--json"))["name"] == "child"
    pytest.importorskip("fiftyone")
    browse = cli("browse", "--no-launch")
    assert "predictions of parent)" in browse.stdout and "suspects-" not in browse.stdout
    assert browse.stderr.strip() == note
