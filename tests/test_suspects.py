"""`curator suspects`: confident learning on known probabilities, and flipped labels in sample_data.

``dense_issues`` and ``dense_rank`` are the algorithm as it was before it read the probabilities
in blocks (the whole (N, K) array in memory): kept here, unchanged, as the reference.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import select

from conftest import SAMPLE, as_json, error
from curator import confident_learning, ingest, labels, splits, suspects, train
from curator.errors import InvalidInput
from curator.library.models import Image, LabelClass, Run
from curator.runs import find_run


def dense_issues(labels, probs) -> np.ndarray:
    labels, probs = np.asarray(labels, dtype=int), np.asarray(probs, dtype=float)
    n, k = probs.shape
    counts = np.bincount(labels, minlength=k)
    thresholds = np.array([probs[labels == j, j].mean() if counts[j] else 1.0 for j in range(k)])
    above = probs >= thresholds - 1e-6
    confident = np.where(above.any(1), np.where(above, probs, -1).argmax(1), -1)
    joint = np.zeros((k, k))
    np.add.at(joint, (labels[confident >= 0], confident[confident >= 0]), 1)
    rows = joint.sum(1, keepdims=True)
    calibrated = np.divide(joint, rows, out=np.zeros_like(joint), where=rows > 0) * counts[:, None]
    q = calibrated / max(calibrated.sum(), 1e-12)
    prune = np.rint(q * n).astype(int)
    issues = np.zeros(n, dtype=bool)
    for i in range(k):
        members = np.flatnonzero(labels == i)
        for j in range(k):
            if j != i and prune[i, j] > 0:
                margin = probs[members, j] - probs[members, i]
                issues[members[np.argsort(-margin, kind="stable")[:prune[i, j]]]] = True
        if len(members) and issues[members].all():
            issues[members[probs[members, i].argmax()]] = False
    issues[probs.argmax(1) == labels] = False
    return issues


def dense_rank(labels, probs, issues) -> list[dict]:
    labels, probs = np.asarray(labels, dtype=int), np.asarray(probs, dtype=float)
    others = probs.copy()
    others[np.arange(len(labels)), labels] = -1
    out = [{"index": int(i), "suspected": int(others[i].argmax()), "score": float(probs[i, labels[i]])}
           for i in np.flatnonzero(issues)]
    return sorted(out, key=lambda r: (r["score"], r["index"]))


def random_case(n, k, boost, step, seed, empty_class=False):
    """Labels and float32 probabilities leaning to the label by ``boost``; ``step``: rounded to
    multiples of 1/step (ties everywhere: equal margins, equal scores, rows at the threshold)."""
    rng = np.random.default_rng(seed)
    labels_ = rng.integers(0, k - 1 if empty_class else k, n)
    gamma = rng.gamma(0.5 + boost * np.eye(k)[labels_], 1.0)
    probs = gamma / gamma.sum(1, keepdims=True)
    if step:
        probs = np.round(probs * step) / step
    return labels_, probs.astype(np.float32)


CASES = {
    "dirichlet": (400, 6, 2.0, 0, 0),
    "dirichlet, weak signal": (500, 12, 0.5, 0, 1),
    "ties": (300, 5, 1.0, 4, 2),
    "heavy ties": (300, 3, 0.0, 2, 3),
    "empty class": (200, 7, 2.0, 8, 4, True),
    "many classes": (600, 40, 3.0, 0, 5),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("budget", [1, 50, 999, confident_learning.BUDGET])
def test_blocks_give_the_dense_result(case, budget):
    labels_, probs = random_case(*case)
    labels_, read = confident_learning.in_memory(labels_, probs)
    found = confident_learning.label_issues(labels_, read, probs.shape[1], budget=budget)
    want = dense_issues(labels_, probs)
    assert want.any() and found["issues"].tolist() == want.tolist()
    assert confident_learning.ranked(**found) == dense_rank(labels_, probs, want)
    assert suspects.find_label_issues(labels_, probs).tolist() == want.tolist()
    assert suspects.rank(labels_, probs, want) == dense_rank(labels_, probs, want)


@pytest.mark.parametrize("case", ["ties", "many classes"])
def test_the_file_gives_the_dense_result_of_the_images_that_came(case, tmp_path):
    labels_, probs = random_case(*CASES[case])
    rng = np.random.default_rng(7)
    came = np.sort(rng.choice(len(labels_), len(labels_) * 9 // 10, replace=False))  # the rest: unreadable
    with confident_learning.ProbabilityFile(labels_, probs.shape[1], folder=tmp_path) as store:
        for part in np.array_split(rng.permutation(came), 7):  # folds, in any order
            store.write(part.tolist(), probs[part])
        gathered = store.kept()
        assert gathered.pop("kept").tolist() == came.tolist()
        found = confident_learning.label_issues(**gathered, budget=100)
    want = dense_issues(labels_[came], probs[came])
    assert found["issues"].tolist() == want.tolist()
    assert confident_learning.ranked(**found) == dense_rank(labels_[came], probs[came], want)
    assert list(tmp_path.iterdir()) == []  # the file goes with the store


def test_rank_and_store_ranks_the_build_s_images_from_probabilities_as_they_come(known):
    run, rows = suspects.labelled_rows(known, "r")
    assert [r[0] for r in rows] == sorted(r[0] for r in rows) and len(rows) == 11
    classes = ["antelope", "kangaroo", "wombat"]
    labels_ = np.array([classes.index(r[3]) for r in rows])
    probs = np.full((len(rows), 3), 0.05, dtype=np.float32)
    probs[np.arange(len(rows)), labels_] = 0.9
    probs[[0, 6]] = [[0.05, 0.05, 0.9], [0.9, 0.05, 0.05]]  # two images the model puts elsewhere
    parts = suspects.fold_parts(rows, 3, 0)
    position = {r[0]: n for n, r in enumerate(rows)}
    came = [(part[:-1], probs[[position[i] for i in part[:-1]]]) for part in parts]  # one unreadable a fold
    result = suspects.rank_and_store(known, run, rows, came, folds=3)
    kept = sorted(position[i] for part in parts for i in part[:-1])
    want = dense_rank(labels_[kept], probs[kept], dense_issues(labels_[kept], probs[kept]))
    assert result["images"] == len(kept) == 8 and result["suspects"]
    assert [(r["image_id"], r["suspected"], r["score"]) for r in result["suspects"]] == [
        (rows[kept[x["index"]]][0], classes[x["suspected"]], round(x["score"], 4)) for x in want]
    saved = known.folder / run.folder / suspects.SAVED
    assert json.loads(saved.read_text()) == result
    assert sorted(p.name for p in saved.parent.iterdir()) == [suspects.SAVED]


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
