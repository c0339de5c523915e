"""sample_data/ through the real CLI: the counts it promises in expected.json, and the demo."""

from __future__ import annotations

import json

import pytest

from conftest import SAMPLE, as_json

EXPECTED = json.loads((SAMPLE / "expected.json").read_text())


@pytest.fixture
def imported(cli):
    assert cli("init").exit_code == 0
    r = cli("import", SAMPLE / "library", "--labels-from-folders", "--json")
    return as_json(r)


def test_import_counts_match_expected(imported):
    assert imported["files"] == EXPECTED["library_files"]
    assert imported["added"] == EXPECTED["library_distinct_bytes"]
    assert imported["duplicates"] == EXPECTED["library_files"] - EXPECTED["library_distinct_bytes"]
    assert imported["rejected"] == [] and imported["failed"] == []
    assert imported["added_by_label"]["unknown"] == EXPECTED["unknown"]


def test_classes_prints_the_expected_counts(cli, imported):
    data = as_json(cli("classes", "--json"))
    got = {row["class"]: row for row in data["classes"]}
    assert set(got) == set(EXPECTED["classes"])
    for name, want in EXPECTED["classes"].items():
        row = got[name]
        assert row["labelled"] == row["real"] == want["images"], name
        assert {s["subclass"]: s["labelled"] for s in row["subclasses"]} == want.get("subclasses", {}), name
        assert row["below_cutoff"] == (want["images"] < 40), name
    assert data["unknown"] == EXPECTED["unknown"]

    table = cli("classes").stdout
    for name, want in EXPECTED["classes"].items():
        line = next(l for l in table.splitlines() if l.startswith(name + " "))
        assert f" {want['images']} " in line
        assert ("needs" in line) == (want["images"] < 40)


def test_staged_only_class_is_called_out(cli, imported):
    r = cli("import", SAMPLE / "staged", "--labels-from-folders", "--staged", "--json")
    assert as_json(r)["added"] == sum(EXPECTED["staged"].values())
    rows = {row["class"]: row for row in as_json(cli("classes", "--json"))["classes"]}
    for name in EXPECTED["staged_only_classes"]:
        assert rows[name]["only_staged_or_synthetic"] and rows[name]["real"] == 0
    assert "staged/synthetic only" in cli("classes").stdout


def test_demo_runs_the_loop_and_says_what_it_did(cli, tmp_path):
    db = tmp_path / "demo" / "curator.sqlite"
    r = cli("demo", "--data", SAMPLE, "--db", db, "--quick")
    assert r.exit_code == 0, r.output
    assert f"[import labelled images] {EXPECTED['library_distinct_bytes']} new images" in r.stdout
    assert f"[import the unlabelled pool] {EXPECTED['pool']['new_distinct_bytes']} new images" in r.stdout
    assert "below --min-count 40:" in r.stdout
    planted = len(EXPECTED["near_duplicate_pairs"])
    assert f"[find duplicates] {planted} duplicate groups holding {2 * planted} images" in r.stdout
    assert f"[label conflicts] {len(EXPECTED['label_conflicts'])} duplicate groups carry two labels" in r.stdout
    # Discovery: the pool's hand-fingers-partial, a class the library lacks, becomes a class in
    # both runs (7 and 5 classes without it).
    assert "[embed with the pretrained EfficientNet-Lite0] 582 images embedded (1280-d)" in r.stdout
    assert "[discover new classes] " in r.stdout and "nearest hand-fingers-open (new class?)" in r.stdout
    assert "looked at and labelled hand-fingers-partial (new): " in r.stdout
    assert "labelled hand-fingers-partial: 40 in all" in r.stdout
    assert "[build-splits at 35 (throw-away)] throwaway-35: 8 classes" in r.stdout
    assert "[build-splits at 40] min40: 6 classes" in r.stdout
    assert "hand-fingers-partial" in as_json(cli("splits", "show", "min40", "--db", db, "--json"))["classes"]
    coverage = {c["class"]: c for c in as_json(cli("coverage", "--min-count", 45, "--db", db, "--json"))}
    assert coverage["hand-fingers-partial"]["labelled"] == 40 and coverage["hand-fingers-partial"]["needs"] == 5
    assert r.stdout.count("leak check passed") == 2
    assert "[train a throw-away model at 35] throwaway-35: test_resnet on throwaway-35, 2 epochs" in r.stdout
    # Training is not silent: an epoch line per epoch of both runs, before each run's summary.
    assert r.stdout.count("epoch   1/2  train loss ") == 2 and r.stdout.count("epoch   2/2  train loss ") == 2
    assert r.stdout.index("epoch   2/2") < r.stdout.index("[train a throw-away model at 35]")
    # sky-weather has the most training images, all staged, so none in test: never the baseline.
    assert "; sky-weather has more training images but none here);" in r.stdout
    left = EXPECTED['pool']['new_distinct_bytes'] - 40  # less the new class's 40
    assert f"[bulk-identify the unlabelled pool] {left} images predicted with throwaway-35" in r.stdout
    assert "[coverage] per class" in r.stdout and "[look-alike search] " in r.stdout
    assert "[accept confident predictions] " in r.stdout
    assert "[warm-start at 40 with a new head] min40: test_resnet on min40, warm-started from throwaway-35" in r.stdout
    assert "    vs throwaway-35 on the same test images of shared classes: accuracy" in r.stdout
    assert "[bulk-identify the rest of the pool and the unknown images with min40] " in r.stdout
    assert "[FiftyOne dataset and saved views] dataset curator: " in r.stdout
    assert f"min40's predictions, database in {db.parent / 'fiftyone'}; saved views: low-confidence (" in r.stdout
    assert "The embeddings' 2-D map (tsne, 582 samples) is in the app's embeddings panel." in r.stdout
    assert "Done. The library is" in r.stdout and "curator browse --run min40" in r.stdout
    _views_match_find(db)
    again = cli("demo", "--data", SAMPLE, "--db", db)
    assert again.exit_code == 1
    assert again.stderr == f"Error: {db} already exists: pass --fresh to replace it with the demo library\n"
    assert cli("demo", "--data", SAMPLE, "--db", db, "--fresh", "--quick").exit_code == 0


def test_demo_without_sample_data_is_a_one_line_error(cli, tmp_path):
    r = cli("demo", "--data", tmp_path / "nothing", "--db", tmp_path / "d.sqlite")
    assert r.exit_code == 1
    assert r.stderr.startswith("Error: no sample data at ")


def _views_match_find(db):
    """The demo's FiftyOne views are its filters' results."""
    from sqlalchemy import func, select

    from curator import fiftyone_sync, fiftyone_views, filters
    from curator.library import open_library
    from curator.library.models import Image

    lib = open_library(db)
    dataset = fiftyone_sync.open_dataset(lib, create=False)
    want = filters.find(lib, filters.Query(run="min40", label="unlabelled", max_confidence=fiftyone_views.LOW_CONFIDENCE))
    shown = dataset.load_saved_view("low-confidence").values("curator_id")
    assert shown == [r["image_id"] for r in want["rows"]] and len(shown) > 0
    with lib.session() as s:
        active = s.scalar(select(func.count()).select_from(Image).where(Image.status == "active"))
    assert len(dataset) == active
