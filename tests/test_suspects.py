"""`curator suspects`: confident learning on known probabilities, and flipped labels in sample_data."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from conftest import SAMPLE, as_json, error
from curator import ingest, labels, splits, suspects, train
from curator.errors import InvalidInput
from curator.library.models import Image, LabelClass, Run
from curator.runs import find_run


def test_confident_learning_flags_exactly_the_confidently_other_images():
    # 10 good images of each class, and 2 labelled 0 that the model is sure are 1.
    labels_ = [0] * 12 + [1] * 10
    probs = [[0.9, 0.1]] * 10 + [[0.05, 0.95]] * 2 + [[0.1, 0.9]] * 10
    issues = suspects.find_label_issues(labels_, probs)
    assert np.flatnonzero(issues).tolist() == [10, 11]
    ranked = suspects.rank(labels_, probs, issues)
    assert ranked == [{"index": 10, "suspected": 1, "score": 0.05}, {"index": 11, "suspected": 1, "score": 0.05}]


def test_confident_learning_finds_most_of_ten_percent_flipped():
    rng = np.random.default_rng(0)
    n, k = 600, 4
    truth = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k)) + 3.0 * np.eye(k)[truth]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    given = truth.copy()
    flipped = rng.choice(n, n // 10, replace=False)
    given[flipped] = (truth[flipped] + rng.integers(1, k, len(flipped))) % k
    issues = suspects.find_label_issues(given, probs)
    hits = issues[flipped].sum()
    assert hits / len(flipped) >= 0.8  # recall
    assert hits / issues.sum() >= 0.8  # precision


def test_a_class_is_never_called_entirely_wrong():
    issues = suspects.find_label_issues([0, 0, 1, 1], [[0.1, 0.9], [0.2, 0.8], [0.1, 0.9], [0.2, 0.8]])
    assert issues[:2].sum() <= 1


def test_mismatched_inputs_are_an_error():
    with pytest.raises(InvalidInput, match="3 labels but 2 rows of probabilities"):
        suspects.find_label_issues([0, 1, 1], [[0.5, 0.5], [0.5, 0.5]])


def test_suspects_finds_labels_flipped_on_purpose(library, cli):
    ingest.import_paths(library, [SAMPLE / "library"], labels_from_folders=True)
    with library.session() as s:
        flags = s.scalars(select(Image).join(LabelClass).where(LabelClass.name == "country-flag")
                          .order_by(Image.id).limit(6)).all()
        flipped = {im.id for im in flags}
        labels.relabel(s, flags, "transport-ground")
    splits.build(library, min_count=30, name="b", test=0.0)
    train.train(library, "b", train.TrainConfig(model="test_resnet", img_size=64, epochs=30, patience=30,
                                                 workers=0), name="r", throwaway=True)
    result = suspects.suspects(library, "r", folds=3)
    assert result["images"] > 150
    found = {r["image_id"]: r for r in result["suspects"]}
    caught = flipped & set(found)
    assert len(caught) >= 4, (len(caught), len(found))
    assert all(found[i]["label"] == "transport-ground" for i in caught)
    # A tiny model: most, not all, of the caught flags are suspected to be flags.
    assert sum(found[i]["suspected"] == "country-flag" for i in caught) >= len(caught) - 1
    ranks = sorted(i for i, r in enumerate(result["suspects"]) if r["image_id"] in flipped)
    assert len([r for r in ranks if r < 5]) >= 3, ranks  # the flips lead the ranking
    assert len(found) <= 0.2 * result["images"]
    # The fold runs are helper runs: `latest` is still r.
    with library.session() as s:
        assert dict(s.execute(select(Run.name, Run.purpose)).all()) == {
            "r": "train", **{f"suspects-r-fold{f}": "suspects" for f in (1, 2, 3)}}
        assert find_run(s, "latest").name == "r"
    # A second call reuses the fold runs; the CLI shows the same ranking.
    again = as_json(cli("suspects", "--run", "r", "--folds", "3", "--json"))
    assert [r["image_id"] for r in again["suspects"]] == [r["image_id"] for r in result["suspects"]]
    assert error(cli("suspects", "--run", "nope")) == "Error: no run named 'nope': see `curator runs`"
