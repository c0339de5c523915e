"""Evaluation metrics on small cases worked out by hand, comparison, restriction, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from curator.evaluation import compare, compute_metrics, restrict

CLASSES = ["cat", "dog", "fox", "owl"]  # owl: in the head, not in this split, never predicted
CAT, DOG, FOX, OWL = range(4)

# Eight images. Comments: true class -> predicted class, top-1 confidence.
LABELS = [CAT, CAT, CAT, DOG, DOG, DOG, FOX, FOX]
PROBS = [
    [0.90, 0.05, 0.03, 0.02],  # cat -> cat 0.9
    [0.70, 0.20, 0.05, 0.05],  # cat -> cat 0.7
    [0.30, 0.50, 0.10, 0.10],  # cat -> dog 0.5
    [0.05, 0.90, 0.03, 0.02],  # dog -> dog 0.9
    [0.70, 0.25, 0.03, 0.02],  # dog -> cat 0.7
    [0.10, 0.30, 0.50, 0.10],  # dog -> fox 0.5
    [0.10, 0.10, 0.70, 0.10],  # fox -> fox 0.7
    [0.50, 0.10, 0.30, 0.10],  # fox -> cat 0.5
]


@pytest.fixture(scope="module")
def metrics():
    return compute_metrics(LABELS, PROBS, CLASSES, ece_bins=5)


def test_accuracy_and_confusion(metrics):
    assert metrics["n"] == 8
    assert metrics["accuracy"] == pytest.approx(4 / 8)
    assert metrics["confusion"] == [
        [2, 1, 0, 0],
        [1, 1, 1, 0],
        [1, 0, 1, 0],
        [0, 0, 0, 0],
    ]


def test_per_class(metrics):
    # cat: 2 of 4 predictions right, 2 of 3 found; dog: 1 of 2, 1 of 3; fox: 1 of 2, 1 of 2.
    f1_cat = 2 * (2 / 4) * (2 / 3) / (2 / 4 + 2 / 3)  # 4/7
    f1_dog = 2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3)  # 2/5
    f1_fox = 2 * (1 / 2) * (1 / 2) / (1 / 2 + 1 / 2)  # 1/2
    assert metrics["per_class"] == [
        {"class": "cat", "precision": 0.5, "recall": pytest.approx(2 / 3),
         "f1": pytest.approx(f1_cat), "support": 3, "predicted": 4},
        {"class": "dog", "precision": 0.5, "recall": pytest.approx(1 / 3),
         "f1": pytest.approx(f1_dog), "support": 3, "predicted": 2},
        {"class": "fox", "precision": 0.5, "recall": 0.5, "f1": pytest.approx(f1_fox), "support": 2, "predicted": 2},
        {"class": "owl", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "predicted": 0},
    ]  # fmt: skip
    # Macro F1 leaves out owl (no images, no predictions); weighted F1 weighs by support.
    assert metrics["macro_f1"] == pytest.approx((4 / 7 + 2 / 5 + 1 / 2) / 3)
    assert metrics["macro_f1"] == pytest.approx(103 / 210)
    assert metrics["weighted_f1"] == pytest.approx((3 * 4 / 7 + 3 * 2 / 5 + 2 * 1 / 2) / 8)


def test_confused_pairs(metrics):
    # cat/dog both ways once; fox taken for cat once; dog taken for fox once. Ties by name.
    assert metrics["confused_pairs"] == [
        {"a": "cat", "b": "dog", "a_as_b": 1, "b_as_a": 1, "count": 2},
        {"a": "cat", "b": "fox", "a_as_b": 0, "b_as_a": 1, "count": 1},
        {"a": "dog", "b": "fox", "a_as_b": 1, "b_as_a": 0, "count": 1},
    ]
    top = compute_metrics(LABELS, PROBS, CLASSES, top_pairs=1)["confused_pairs"]
    assert [(p["a"], p["b"]) for p in top] == [("cat", "dog")]
    assert compute_metrics(LABELS, PROBS, CLASSES, top_pairs=0)["confused_pairs"] == []


def test_log_loss(metrics):
    true_class_probs = [0.9, 0.7, 0.3, 0.9, 0.25, 0.3, 0.7, 0.3]
    expected = -sum(math.log(p) for p in true_class_probs) / 8
    assert metrics["log_loss"] == pytest.approx(expected)


def test_ece(metrics):
    # Five bins of width 0.2. [0.8, 1]: two right at 0.9. [0.6, 0.8): two of three right at
    # 0.7. [0.4, 0.6): none of three right at 0.5.
    expected = 2 / 8 * abs(1 - 0.9) + 3 / 8 * abs(2 / 3 - 0.7) + 3 / 8 * abs(0 - 0.5)
    assert expected == pytest.approx(0.225)
    assert metrics["ece"] == pytest.approx(expected)
    # One bin: overall accuracy against mean confidence.
    one_bin = compute_metrics(LABELS, PROBS, CLASSES, ece_bins=1)["ece"]
    mean_confidence = (0.9 + 0.7 + 0.5 + 0.9 + 0.7 + 0.5 + 0.7 + 0.5) / 8
    assert one_bin == pytest.approx(abs(4 / 8 - mean_confidence))


def test_baseline_from_labels_and_from_train_counts(metrics):
    # cat and dog tie with 3 images each: the first in head order wins. Predicting cat for
    # all: 3/8 right; cat's F1 is 2 * (3/8) * 1 / (3/8 + 1) = 6/11, dog's and fox's 0.
    assert metrics["baseline"] == {
        "class": "cat",
        "accuracy": pytest.approx(3 / 8),
        "macro_f1": pytest.approx(6 / 11 / 3),
        "without_images": [],
    }
    counts = {"cat": 10, "dog": 50, "fox": 5, "owl": 20, "not in the head": 999}
    baseline = compute_metrics(LABELS, PROBS, CLASSES, train_counts=counts)["baseline"]
    assert baseline == {
        "class": "dog",
        "accuracy": pytest.approx(3 / 8),
        "macro_f1": pytest.approx(6 / 11 / 3),
        "without_images": [],
    }


@pytest.mark.parametrize("counts, expected", [
    # owl has the most training images and none here (a staged-only class): never the baseline.
    ({"cat": 10, "dog": 50, "fox": 5, "owl": 90}, ("dog", ["owl"])),
    ({"owl": 1}, ("cat", ["owl"])),  # no evaluated class was trained on: first in head order
    ({"fox": 7, "owl": 3}, ("fox", [])),  # owl had fewer: nothing passed over
])
def test_baseline_only_from_classes_with_evaluation_images(counts, expected):
    baseline = compute_metrics(LABELS, PROBS, CLASSES, train_counts=counts)["baseline"]
    assert (baseline["class"], baseline["without_images"]) == expected
    assert baseline["accuracy"] > 0


def test_result_is_plain_json_data(metrics):
    def leaves(value):
        if isinstance(value, dict):
            for item in value.values():
                yield from leaves(item)
        elif isinstance(value, list):
            for item in value:
                yield from leaves(item)
        else:
            yield value

    # np.float64 is a float subclass and would pass json.dumps: check the exact types.
    assert {type(leaf) for leaf in leaves(metrics)} == {int, float, str}
    assert json.loads(json.dumps(metrics)) == metrics


def test_perfect_classifier():
    labels = [0, 1, 2, 0]
    probs = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.6, 0.3, 0.1]]
    result = compute_metrics(labels, probs, ["a", "b", "c"], ece_bins=10)
    assert result["accuracy"] == 1.0
    assert result["macro_f1"] == 1.0
    assert result["weighted_f1"] == 1.0
    assert result["confused_pairs"] == []
    assert result["confusion"] == [[2, 0, 0], [0, 1, 0], [0, 0, 1]]
    # Right every time, but only 80% and 60% sure: half the images 0.2 under, half 0.4 under.
    assert result["ece"] == pytest.approx(0.5 * 0.2 + 0.5 * 0.4)
    assert result["log_loss"] == pytest.approx(-(2 * math.log(0.8) + 2 * math.log(0.6)) / 4)
    assert result["baseline"] == {"class": "a", "accuracy": 0.5, "macro_f1": pytest.approx(2 / 9), "without_images": []}


def test_certain_and_right_has_no_error():
    result = compute_metrics(np.array([0, 1]), np.eye(2), ["a", "b"])
    assert result["ece"] == 0.0
    assert result["log_loss"] == pytest.approx(0.0, abs=1e-12)


def test_certain_and_wrong_has_finite_log_loss():
    # Probabilities are clipped as scikit-learn does, so a confident mistake costs a lot, not inf.
    result = compute_metrics([0, 1], [[0.0, 1.0], [0.0, 1.0]], ["a", "b"])
    assert 10 < result["log_loss"] < math.inf


def test_rows_rounded_or_float32_are_accepted():
    probs = np.array([[0.3334, 0.3333, 0.3334], [0.1, 0.1, 0.8]], dtype=np.float32)
    result = compute_metrics([0, 2], probs, ["a", "b", "c"])
    assert result["accuracy"] == 1.0
    assert result["log_loss"] == pytest.approx(-(math.log(0.3334 / 1.0001) + math.log(0.8)) / 2)


def metric_dict(accuracy, macro_f1, per_class):
    """The parts of a compute_metrics result that compare() reads."""
    return {
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "per_class": [{"class": c, "f1": f1, "support": s} for c, f1, s in per_class],
    }


def test_compare():
    current = metric_dict(
        0.8, 0.7,
        [("cat", 0.9, 10), ("dog", 0.5, 10), ("fox", 0.70, 5), ("owl", 0.6, 5), ("eel", 0.0, 0),
         ("yak", 0.4, 3)],
    )  # fmt: skip
    other = metric_dict(
        0.75, 0.72,
        [("ant", 0.3, 4), ("eel", 0.0, 0), ("owl", 0.4, 5), ("fox", 0.69, 5), ("dog", 0.8, 10),
         ("cat", 0.6, 10)],
    )  # fmt: skip
    result = compare(current, other, min_delta=0.05)
    assert result["accuracy"] == {"current": 0.8, "other": 0.75, "delta": pytest.approx(0.05)}
    assert result["macro_f1"] == {"current": 0.7, "other": 0.72, "delta": pytest.approx(-0.02)}
    # eel is in both but has no images in either: nothing to compare.
    assert [(r["class"], r["verdict"]) for r in result["per_class"]] == [
        ("dog", "worse"),
        ("fox", "same"),
        ("owl", "better"),
        ("cat", "better"),
    ]
    assert result["per_class"][0] == {
        "class": "dog",
        "current_f1": 0.5,
        "other_f1": 0.8,
        "delta": pytest.approx(-0.3),
        "verdict": "worse",
    }
    assert result["better"] == ["cat", "owl"]
    assert result["worse"] == ["dog"]
    assert result["only_current"] == ["yak"]
    assert result["only_other"] == ["ant"]
    # Without a threshold, fox's 0.01 counts.
    assert compare(current, other)["better"] == ["cat", "owl", "fox"]


def test_compare_real_results_of_the_same_model_is_all_same(metrics):
    result = compare(metrics, metrics)
    assert {r["verdict"] for r in result["per_class"]} == {"same"}
    assert [r["class"] for r in result["per_class"]] == ["cat", "dog", "fox"]
    assert result["better"] == result["worse"] == result["only_current"] == []
    assert result["accuracy"]["delta"] == 0.0


def test_restrict():
    labels, probs, classes = restrict(LABELS, PROBS, CLASSES, {"dog", "owl"})
    assert isinstance(labels, np.ndarray) and isinstance(probs, np.ndarray)
    assert labels.tolist() == [DOG, DOG, DOG]
    assert probs.tolist() == PROBS[3:6]  # rows as they were, not renormalised
    assert classes == CLASSES
    result = compute_metrics(labels, probs, classes)
    assert result["n"] == 3
    assert result["accuracy"] == pytest.approx(1 / 3)


def test_restrict_to_nothing():
    labels, probs, _ = restrict(LABELS, PROBS, CLASSES, ["owl"])
    assert labels.shape == (0,) and probs.shape == (0, 4)
    with pytest.raises(ValueError, match="^no images to evaluate$"):
        compute_metrics(labels, probs, CLASSES)


AB = ["a", "b"]
GOOD = ([0, 1], [[0.6, 0.4], [0.3, 0.7]], AB)


@pytest.mark.parametrize(
    "labels, probs, classes, options, message",
    [
        ([], [], AB, {}, "no images to evaluate"),
        ([0, 1], [0.6, 0.4], AB, {}, "probs must have shape (N, K), got (2,)"),
        ([[0], [1]], GOOD[1], AB, {}, "labels must be (N,) integers, got int64 of shape (2, 1)"),
        ([0.0, 1.0], GOOD[1], AB, {}, "labels must be (N,) integers, got float64 of shape (2,)"),
        ([0, 1, 1], GOOD[1], AB, {}, "labels has 3 entries but probs has 2 rows"),
        ([0, 1], GOOD[1], ["a", "b", "c"], {}, "probs has 2 columns but 3 classes were given"),
        ([0, 0], [[1.0], [1.0]], ["a"], {}, "a classifier needs at least 2 classes, got 1"),
        ([0, 1], [[0.2, 0.3, 0.5]] * 2, ["a", "b", "a"], {}, "classes has a duplicate name: 'a'"),
        ([0, 2], GOOD[1], AB, {}, "label 2 is out of range for 2 classes (0 to 1)"),
        ([-1, 0], GOOD[1], AB, {}, "label -1 is out of range for 2 classes (0 to 1)"),
        ([0, 1], [[0.6, 0.4], [1.2, -0.2]], AB, {}, "probs row 1 has a value outside [0, 1]: 1.2"),
        ([0, 1], [[0.6, 0.4], [np.nan, 1]], AB, {}, "probs row 1 has a value outside [0, 1]: nan"),
        ([0, 1], [[0.6, 0.4], [0.3, 0.6]], AB, {}, "probs row 1 sums to 0.9, expected 1"),
        (*GOOD, {"train_counts": {"c": 5}}, "train_counts has no images of any of the 2 classes"),
        (*GOOD, {"top_pairs": -1}, "top_pairs must be at least 0, got -1"),
        (*GOOD, {"ece_bins": 0}, "ece_bins must be at least 1, got 0"),
    ],
)  # fmt: skip
def test_compute_metrics_errors(labels, probs, classes, options, message):
    with pytest.raises(ValueError) as error:
        compute_metrics(labels, probs, classes, **options)
    assert str(error.value) == message


def test_compare_error(metrics):
    with pytest.raises(ValueError) as error:
        compare(metrics, metrics, min_delta=-0.1)
    assert str(error.value) == "min_delta must be at least 0, got -0.1"


@pytest.mark.parametrize(
    "labels, keep, message",
    [
        (
            LABELS,
            ["dog", "wolf", "bat"],
            "2 of 3 classes in keep are not among the model's 4: 'wolf', 'bat'",
        ),
        (LABELS[:3], ["dog"], "labels has 3 entries but probs has 8 rows"),
        ([9] * 8, ["dog"], "label 9 is out of range for 4 classes (0 to 3)"),
    ],
)  # fmt: skip
def test_restrict_errors(labels, keep, message):
    with pytest.raises(ValueError) as error:
        restrict(labels, PROBS, CLASSES, keep)
    assert str(error.value) == message


# -- review: filtered, ordered and cut in the database -------------------------------------------


def review_oracle(lib, ref, *, max_confidence=0.5, split=None, limit=None):
    """``review`` as it was before it moved into SQL (every prediction of the build read into
    Python, sorted there, then cut): kept here, unchanged, as the reference."""
    from sqlalchemy import select

    from curator.library.models import Image, LabelClass, Prediction, SplitMember
    from curator.runs import find_run

    with lib.session() as s:
        run = find_run(s, ref)
        rows = s.execute(
            select(Image.id, SplitMember.split, LabelClass.name, Prediction.predicted, Prediction.confidence,
                   Prediction.error, Image.path)
            .join(SplitMember, (SplitMember.image_id == Image.id) & (SplitMember.build_id == run.build_id))
            .join(Prediction, (Prediction.image_id == Image.id) & (Prediction.run_id == run.id))
            .outerjoin(LabelClass, LabelClass.id == Image.class_id)
            .where(*([SplitMember.split == split] if split else []))
        ).all()
    out = []
    for image_id, sp, label, predicted, conf, err, path in rows:
        problem = ("unreadable" if err else "wrong" if predicted != label
                   else "low confidence" if conf < max_confidence else None)
        if problem:
            out.append({"image_id": image_id, "split": sp, "label": label, "predicted": predicted,
                        "confidence": conf, "problem": problem, "path": path, "error": err})
    order = {"wrong": 0, "unreadable": 1, "low confidence": 2}
    out.sort(key=lambda r: (order[r["problem"]], -(r["confidence"] or 0) if r["problem"] == "wrong" else (r["confidence"] or 0), r["image_id"]))
    return out[:limit] if limit else out


# name -> (predicted, confidence, error) of run r; the build b gains pool and unknown images.
REVIEWED = {
    "k1.png": ("kangaroo", 0.5, None), "k2.png": ("wombat", 0.8, None),  # right at the cutoff; wrong
    "k3.png": (None, None, "unreadable"), "k4.png": (None, None, None),  # no answer, no error: wrong
    "k5.png": ("kangaroo", 0.8, None), "k6.png": ("antelope", 0.8, None),  # k6 ties k2
    "a1.png": ("antelope", 0.3, None), "a2.png": ("antelope", 0.3, None),  # right, low, tied
    "a3.png": ("wombat", 0.55, ""), "w1.png": ("wombat", 0.5, None),  # an empty error is none
    "w2.png": ("kangaroo", 0.999, None), "p1.png": ("kangaroo", 0.95, None),  # p1: unlabelled, wrong
    "p2.png": (None, 0.2, "missing file"), "p3.png": (None, None, "unreadable"),
    "p4.png": ("antelope", 0.9, None), "u1.png": ("kangaroo", 0.3, None),  # p4: not in the build
}
SPLITS = {"k1.png": "val", "k2.png": "val", "a1.png": "val", "k3.png": "test", "w2.png": "test"}


@pytest.fixture
def reviewed(known):
    from sqlalchemy import delete, select

    from curator.library.models import Prediction, Run, SplitMember

    by_name = known.by_name
    with known.session() as s:
        run = s.scalar(select(Run).where(Run.name == "r"))
        other = Run(name="r2", build_id=run.build_id, model="test_resnet", status="done", folder="runs/r2",
                    classes=run.classes)
        s.add(other)
        s.flush()
        s.execute(delete(Prediction).where(Prediction.run_id == run.id))
        for name, (predicted, conf, err) in REVIEWED.items():
            for run_id, answer in ((run.id, predicted), (other.id, "wombat")):
                s.add(Prediction(run_id=run_id, image_id=by_name[name], predicted=answer, confidence=conf,
                                 error=err, top_k=json.dumps([[answer, conf]] if answer else [])))
        for name in ("p1.png", "p2.png", "p3.png", "u1.png"):
            s.add(SplitMember(build_id=run.build_id, image_id=by_name[name], split="train"))
        name_of = {i: n for n, i in by_name.items()}
        for member in s.scalars(select(SplitMember).where(SplitMember.build_id == run.build_id)):
            member.split = SPLITS.get(name_of[member.image_id], member.split)
    return known


@pytest.mark.parametrize("options", [
    dict(), dict(max_confidence=0.6), dict(max_confidence=0.0), dict(max_confidence=1.0),
    dict(max_confidence=0.31), dict(split="val"), dict(split="test"), dict(split="train", max_confidence=0.9),
    dict(split=""), dict(split="benchmark"), dict(limit=1), dict(limit=3), dict(limit=7, max_confidence=0.6),
    dict(limit=100), dict(limit=0), dict(split="val", limit=2, max_confidence=0.9),
])  # fmt: skip
def test_review_gives_the_rows_and_order_of_the_python_algorithm(reviewed, options):
    from curator.evaluation import review

    for ref in ("r", "r2"):
        assert review(reviewed, ref, **options) == review_oracle(reviewed, ref, **options)


def test_review_orders_wrong_then_unreadable_then_low_confidence(reviewed):
    from curator.evaluation import review

    got = [(r["image_id"], r["problem"]) for r in review(reviewed, "r", max_confidence=0.6)]
    name = {i: n for n, i in reviewed.by_name.items()}
    assert [(name[i], problem) for i, problem in got] == [
        ("w2.png", "wrong"), ("p1.png", "wrong"), ("k2.png", "wrong"), ("k6.png", "wrong"), ("a3.png", "wrong"),
        ("u1.png", "wrong"), ("k4.png", "wrong"), ("k3.png", "unreadable"), ("p3.png", "unreadable"),
        ("p2.png", "unreadable"), ("a1.png", "low confidence"), ("a2.png", "low confidence"),
        ("k1.png", "low confidence"), ("w1.png", "low confidence"),
    ]
