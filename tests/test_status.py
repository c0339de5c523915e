"""`curator status` names the next command: walking the demo's loop on sample_data/, before each
step the command that step runs is among status's suggestions."""

from __future__ import annotations

from conftest import SAMPLE, as_json
from curator import demo, status

# demo step -> the command status must suggest before it runs (display-only steps: None)
EXPECTED = {
    "find duplicates": "curator dedup",
    "label conflicts": "curator duplicates --conflicts",
    "embed with the pretrained EfficientNet-Lite0": "curator embed --weights lite0 --pool all",
    "discover new classes": "curator discover",
    "make the biggest new cluster a class": "curator discover --cluster ",
    "grow hand-fingers-partial to the cutoff with similar": "curator similar ",
    "build-splits at 35 (throw-away)": "curator build-splits --min-count 35 --name throwaway-35",
    "train a throw-away model at 35": "curator train --splits throwaway-35 --throwaway",
    "bulk-identify the unlabelled pool": "curator bulk-identify --run throwaway-35",
    "build-splits at 40": "curator build-splits --min-count 40 --name min40",
    "warm-start at 40 with a new head": "curator train --splits min40 --warm-start throwaway-35",
    "bulk-identify the rest of the pool and the unknown images with min40": "curator bulk-identify --run min40",
    "FiftyOne dataset and saved views": "curator browse --run min40",
}


def commands(lib) -> list[str]:
    return [item["command"] for item in status.status(lib)["next"]]


def test_status_names_each_next_step_of_the_demo(library):
    assert commands(library) == ["curator import PATH --labels-from-folders"]
    checked, before = [], commands(library)
    for step, _ in demo.steps(library, SAMPLE, training=demo.QUICK_TRAINING, fiftyone=False):
        wanted = EXPECTED.get(step)
        if wanted:
            assert any(c.startswith(wanted) for c in before), f"before {step!r}: {before}"
            checked.append(step)
        before = commands(library)
        if step.startswith("make the biggest"):  # the suggestion named the cluster the demo took
            assert any(c.startswith("curator similar ") and c.endswith("--label hand-fingers-partial") for c in before)
    # The demo's last two steps (run only with FiftyOne): suggested, not run here.
    for step in ("bulk-identify the rest of the pool and the unknown images with min40", "FiftyOne dataset and saved views"):
        assert any(c.startswith(EXPECTED[step]) for c in before), f"at the end: {before}"
    assert len(checked) == len(EXPECTED) - 2
    assert "curator runs promote min40" in before


def test_status_cli(library, cli):
    empty = cli("status")
    assert empty.exit_code == 0 and "1. [import] the library is empty" in empty.stdout
    data = as_json(cli("status", "--json", "--min-count", 30))
    assert data["min_count"] == 30 and data["run"] is None and data["counts"] == {
        "labelled": 0, "unknown": 0, "unlabelled": 0}
    assert data["next"] == [{"check": "import", "state": "the library is empty",
                             "command": "curator import PATH --labels-from-folders"}]


class _Dataset:
    """What ``fiftyone_pull.app_state`` reads of a dataset: one list a field, a value a sample."""

    def __init__(self, samples: list[dict]):
        self.samples = samples

    def values(self, names: list[str]) -> list[list]:
        return [[sample[name] for sample in self.samples] for name in names]


def _sample(curator_id: int, synced: str, shown: str, tags=()) -> dict:
    return {"curator_id": curator_id, "id": f"s{curator_id}", "curator_sig": "sig", "synced_label": synced,
            "ground_truth.label": shown, "subclass": None, "unknown": False, "tags": list(tags)}


def test_status_suggests_pull_for_app_edits_and_starts_no_fiftyone_without_its_database(library, make_tree,
                                                                                     monkeypatch):
    from curator import fiftyone_database, fiftyone_sync, ingest

    ingest.import_paths(library, [make_tree({"kangaroo/k1.png": 1, "emu/e1.png": 2})], labels_from_folders=True)

    def never(*args, **kwargs):
        raise AssertionError("FiftyOne started for a library that has no FiftyOne database")

    monkeypatch.setattr(fiftyone_database, "connect", never)
    monkeypatch.setattr(fiftyone_sync, "open_dataset", never)
    assert [i["check"] for i in status.status(library)["next"]] == ["dedup", "embeddings", "splits"]
    fiftyone_database.database_dir(library).mkdir()
    samples = [_sample(1, "kangaroo", "kangaroo"), _sample(2, "kangaroo", "wallaby"),
               _sample(3, "emu", "emu", tags=["reject:blurry"]), _sample(4, "emu", "emu", tags=["split:train"])]
    monkeypatch.setattr(fiftyone_sync, "open_dataset", lambda lib, create=True: _Dataset(samples))
    assert status.status(library, fiftyone=False)["next"] == status.status(library, fiftyone=True)["next"][:-1]
    assert status.status(library)["next"][-1] == {
        "check": "pull", "state": "2 images edited in FiftyOne not yet pulled into the library",
        "command": "curator pull"}
