"""Model evaluation: how well a classifier's predicted probabilities match the true labels.

The functions at the top are pure and work on arrays, no database:

* ``compute_metrics(labels, probs, classes)`` scores one model on one set of images: accuracy,
  macro and weighted F1, log loss, expected calibration error, per-class precision/recall/F1,
  the confusion matrix, the most confused pairs of classes and a majority-class baseline.
* ``compare(current, other)`` sets two such results side by side, class by class.
* ``restrict(labels, probs, classes, keep)`` keeps the images of some classes only, so that two
  models with different class lists can be compared on the images of classes both know.

Arrays follow the model head: ``labels`` are indices into ``classes`` (the head's order) and
column ``k`` of ``probs`` is the probability of ``classes[k]``. Results are plain Python data
(floats, ints, strings, lists, dicts) and can be written as JSON as they are.

**Macro F1** here is the mean F1 over the classes that have images in the evaluated set or that
the model predicted at least once. A class absent from the split and never predicted has no F1
to speak of; counting it as 0 (what scikit-learn's ``average="macro"`` does) would lower the
score for every class the split happens to lack. The majority-class baseline uses the same rule:
it predicts the most frequent training class among those that have images in the evaluated set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

# Probabilities saved as float32 or rounded sum to 1 only approximately; a row further off than
# this is not a probability distribution (logits, or top-k only) and is refused.
ROW_SUM_TOL = 1e-3


def compute_metrics(
    labels: ArrayLike,
    probs: ArrayLike,
    classes: Sequence[str],
    *,
    train_counts: Mapping[str, int] | None = None,
    top_pairs: int = 10,
    ece_bins: int = 15,
) -> dict[str, Any]:
    """Score predicted probabilities against true labels.

    Args:
        labels: (N,) true class of each image, as an index into ``classes``.
        probs: (N, K) predicted probabilities, one row per image, rows summing to 1.
        classes: the K class names in the model head's order.
        train_counts: number of training images per class name. The baseline predicts the
            class with the most among those present in ``labels``; without it, the most
            frequent class in ``labels``. Ties go to the class first in head order.
        top_pairs: how many of the most confused pairs of classes to return.
        ece_bins: number of equal-width bins of top-1 confidence for the calibration error.

    Returns:
        ``{"n", "accuracy", "macro_f1", "weighted_f1", "log_loss", "ece", "baseline",
        "per_class", "confusion", "confused_pairs"}``, where ``baseline`` is ``{"class",
        "accuracy", "macro_f1", "without_images"}`` (the classes with more training images
        than the baseline's that were passed over for having none here); ``per_class`` lists ``{"class", "precision", "recall", "f1",
        "support", "predicted"}`` in head order; ``confusion`` is K lists of K counts (rows the
        true class, columns the predicted one); ``confused_pairs`` lists ``{"a", "b", "a_as_b",
        "b_as_a", "count"}`` for pairs confused at least once, most confused first (then by
        name), ``a`` before ``b`` in head order.

    Raises:
        ValueError: the arrays do not fit each other or the classes, a row of ``probs`` is not
            a probability distribution, or an option is out of range.
    """
    from sklearn.metrics import confusion_matrix, log_loss

    if top_pairs < 0:
        raise ValueError(f"top_pairs must be at least 0, got {top_pairs}")
    if ece_bins < 1:
        raise ValueError(f"ece_bins must be at least 1, got {ece_bins}")
    if len(labels) == 0:
        raise ValueError("no images to evaluate")
    labels, probs = _check_arrays(labels, probs, classes)
    probs = _check_probabilities(probs)

    k = len(classes)
    predictions = probs.argmax(axis=1)
    precision, recall, f1, support = _scores(labels, predictions, k)
    confusion = confusion_matrix(labels, predictions, labels=range(k))
    predicted = confusion.sum(axis=0)
    return {
        "n": len(labels),
        "accuracy": float(np.mean(predictions == labels)),
        "macro_f1": _macro_f1(f1, support, predicted),
        "weighted_f1": float(np.average(f1, weights=support)),
        "log_loss": float(log_loss(labels, probs, labels=range(k))),
        "ece": _ece(predictions == labels, probs.max(axis=1), ece_bins),
        "baseline": _baseline(labels, classes, train_counts),
        "per_class": [
            {
                "class": name,
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
                "predicted": int(predicted[i]),
            }
            for i, name in enumerate(classes)
        ],
        "confusion": confusion.tolist(),
        "confused_pairs": _confused_pairs(confusion, classes)[:top_pairs],
    }


def compare(
    current: Mapping[str, Any], other: Mapping[str, Any], *, min_delta: float = 0.0
) -> dict[str, Any]:
    """Compare two results of ``compute_metrics``, say a new model against the one in use.

    The two may have different class lists. Accuracy and macro F1 are only comparable when both
    were computed on the same images; ``restrict`` both to the classes they share first.

    Args:
        current: the result to judge.
        other: the result to judge it against.
        min_delta: a change in F1 of at most this much counts as ``"same"``.

    Returns:
        ``{"accuracy": {"current", "other", "delta"}, "macro_f1": {...}, "per_class": [...],
        "better": [...], "worse": [...], "only_current": [...], "only_other": [...]}``.
        ``per_class`` lists ``{"class", "current_f1", "other_f1", "delta", "verdict"}`` for the
        classes in both results with images in at least one, worst delta first; ``verdict`` is
        ``"better"``, ``"worse"`` or ``"same"``. ``better`` names the improved classes, most
        improved first, ``worse`` the others that changed, worst first. ``only_current`` and
        ``only_other`` name the classes in one result only, in that result's head order.
        Every delta is current minus other.

    Raises:
        ValueError: ``min_delta`` is negative.
    """
    if min_delta < 0:
        raise ValueError(f"min_delta must be at least 0, got {min_delta}")
    mine = {row["class"]: row for row in current["per_class"]}
    theirs = {row["class"]: row for row in other["per_class"]}
    rows = [
        _compare_class(mine[name], theirs[name], min_delta)
        for name in mine
        if name in theirs and (mine[name]["support"] or theirs[name]["support"])
    ]
    rows.sort(key=lambda row: (row["delta"], row["class"]))
    better = sorted(
        (row for row in rows if row["verdict"] == "better"),
        key=lambda row: (-row["delta"], row["class"]),
    )
    return {
        "accuracy": _side_by_side(current, other, "accuracy"),
        "macro_f1": _side_by_side(current, other, "macro_f1"),
        "per_class": rows,
        "better": [row["class"] for row in better],
        "worse": [row["class"] for row in rows if row["verdict"] == "worse"],
        "only_current": [name for name in mine if name not in theirs],
        "only_other": [name for name in theirs if name not in mine],
    }


def restrict(
    labels: ArrayLike, probs: ArrayLike, classes: Sequence[str], keep: Iterable[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Keep only the images whose true class is one of ``keep``.

    Rows are selected, nothing else: probabilities are not renormalised and the class list
    stays the model's, so the model is scored on fewer images exactly as it predicted them.

    Args:
        labels: (N,) true class of each image, as an index into ``classes``.
        probs: (N, K) predicted probabilities.
        classes: the K class names in the model head's order.
        keep: names of the classes whose images to keep; each must be in ``classes``.

    Returns:
        ``(labels, probs, classes)``: (M,) and (M, K) numpy arrays of the M kept images, and
        the class list unchanged.

    Raises:
        ValueError: the arrays do not fit each other or the classes, or ``keep`` names a class
            the model does not have.
    """
    labels, probs = _check_arrays(labels, probs, classes)
    keep = list(keep)
    unknown = [name for name in keep if name not in classes]
    if unknown:
        raise ValueError(
            f"{len(unknown)} of {len(keep)} classes in keep are not among the model's "
            f"{len(classes)}: {', '.join(map(repr, unknown))}"
        )
    index = {name: i for i, name in enumerate(classes)}
    rows = np.isin(labels, [index[name] for name in keep])
    return labels[rows], probs[rows], list(classes)


def _check_arrays(
    labels: ArrayLike, probs: ArrayLike, classes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """The arrays as numpy, after checking their shapes and the labels against ``classes``."""
    labels = np.asarray(labels)
    if labels.size == 0:
        labels = labels.astype(np.int64)  # an empty list comes out as float
    probs = np.asarray(probs, dtype=np.float64)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be (N,) integers, got {labels.dtype} of shape {labels.shape}"
        )
    if probs.ndim != 2:
        raise ValueError(f"probs must have shape (N, K), got {probs.shape}")
    if len(labels) != len(probs):
        raise ValueError(f"labels has {len(labels)} entries but probs has {len(probs)} rows")
    if probs.shape[1] != len(classes):
        raise ValueError(
            f"probs has {probs.shape[1]} columns but {len(classes)} classes were given"
        )
    if len(classes) < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {len(classes)}")
    if len(set(classes)) != len(classes):
        first = next(name for i, name in enumerate(classes) if name in classes[:i])
        raise ValueError(f"classes has a duplicate name: {first!r}")
    outside = (labels < 0) | (labels >= len(classes))
    if outside.any():
        raise ValueError(
            f"label {labels[outside][0]} is out of range for {len(classes)} classes "
            f"(0 to {len(classes) - 1})"
        )
    return labels, probs


def _check_probabilities(probs: np.ndarray) -> np.ndarray:
    """``probs`` with each row scaled to sum to exactly 1, after checking it nearly does."""
    invalid = ~((probs >= 0) & (probs <= 1))  # NaN too
    if invalid.any():
        row, col = np.argwhere(invalid)[0]
        raise ValueError(f"probs row {row} has a value outside [0, 1]: {probs[row, col]}")
    sums = probs.sum(axis=1)
    off = np.abs(sums - 1) > ROW_SUM_TOL
    if off.any():
        row = int(np.argmax(off))
        raise ValueError(f"probs row {row} sums to {sums[row]:.6g}, expected 1")
    # scikit-learn warns about rows that are off by more than float64 rounding.
    return probs / sums[:, None]


def _scores(
    labels: np.ndarray, predictions: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class (K,) precision, recall, F1 and support; 0 where undefined."""
    from sklearn.metrics import precision_recall_fscore_support

    return precision_recall_fscore_support(labels, predictions, labels=range(k), zero_division=0)


def _macro_f1(f1: np.ndarray, support: np.ndarray, predicted: np.ndarray) -> float:
    """Mean F1 over the classes with images or predictions (see the module docstring)."""
    present = (support > 0) | (predicted > 0)
    return float(f1[present].mean())


def confidence_bins(confidence: np.ndarray, bins: int) -> np.ndarray:
    """The bin of each confidence among ``[0, 1/bins), [1/bins, 2/bins), ..., [1 - 1/bins, 1]``
    (calibration error here, the reliability diagram of ``curator report``)."""
    return np.clip((np.asarray(confidence, dtype=float) * bins).astype(int), 0, bins - 1)


def _ece(correct: np.ndarray, confidence: np.ndarray, bins: int) -> float:
    """Expected calibration error over ``bins`` equal-width bins of top-1 confidence
    (``confidence_bins``).

    The error is the sum over bins of (images in bin / N) * |accuracy in bin - mean confidence
    in bin|, which equals |sum over the bin of (correct - confidence)| / N, summed over bins.
    """
    which = confidence_bins(confidence, bins)
    gaps = np.bincount(which, weights=correct - confidence, minlength=bins)
    return float(np.abs(gaps).sum() / len(confidence))


def _baseline(
    labels: np.ndarray, classes: Sequence[str], train_counts: Mapping[str, int] | None
) -> dict[str, Any]:
    """Accuracy and macro F1 of always predicting the most frequent class.

    Only classes with images in the evaluated set are candidates: a class trained on staged
    images alone has none in val or test, and "always predict it" would score 0 whatever the
    model does. Classes passed over that way are listed in ``without_images``.
    """
    k = len(classes)
    present = np.bincount(labels, minlength=k) > 0
    if train_counts is None:
        counts = np.bincount(labels, minlength=k)
    else:
        counts = np.array([train_counts.get(name, 0) for name in classes])
        if counts.max() <= 0:
            raise ValueError(f"train_counts has no images of any of the {k} classes")
    guess = int(np.argmax(np.where(present, counts, -1)))  # the first in head order on a tie
    predictions = np.full_like(labels, guess)
    _, _, f1, support = _scores(labels, predictions, k)
    predicted = np.bincount(predictions, minlength=k)
    return {
        "class": classes[guess],
        "accuracy": float(np.mean(labels == guess)),
        "macro_f1": _macro_f1(f1, support, predicted),
        "without_images": [classes[i] for i in np.argsort(-counts, kind="stable")
                           if not present[i] and counts[i] > counts[guess]],
    }


def _confused_pairs(confusion: np.ndarray, classes: Sequence[str]) -> list[dict[str, Any]]:
    """Every unordered pair of classes mistaken for each other, most confused first."""
    both_ways = np.triu(confusion + confusion.T, k=1)
    pairs = [
        {
            "a": classes[i],
            "b": classes[j],
            "a_as_b": int(confusion[i, j]),
            "b_as_a": int(confusion[j, i]),
            "count": int(both_ways[i, j]),
        }
        for i, j in zip(*np.nonzero(both_ways))
    ]
    pairs.sort(key=lambda pair: (-pair["count"], pair["a"], pair["b"]))
    return pairs


def _compare_class(mine: Mapping[str, Any], theirs: Mapping[str, Any], min_delta: float) -> dict:
    """One class's F1 in two results, and whether it got better."""
    delta = mine["f1"] - theirs["f1"]
    if delta > min_delta:
        verdict = "better"
    elif delta < -min_delta:
        verdict = "worse"
    else:
        verdict = "same"
    return {
        "class": mine["class"],
        "current_f1": mine["f1"],
        "other_f1": theirs["f1"],
        "delta": delta,
        "verdict": verdict,
    }


def _side_by_side(current: Mapping[str, Any], other: Mapping[str, Any], key: str) -> dict:
    """One overall metric from two results, and current minus other."""
    return {"current": current[key], "other": other[key], "delta": current[key] - other[key]}


# -- in the library -------------------------------------------------------------------------------

EVAL_SPLITS = ("val", "test", "benchmark")


def _labelled_members(s, run, split: str) -> list[tuple[int, str, str]]:
    """(image id, class name, path) of a run's build images in one split, by current label."""
    from sqlalchemy import select

    from curator.library.models import ACTIVE, Image, LabelClass, SplitMember

    return [tuple(r) for r in s.execute(
        select(Image.id, LabelClass.name, Image.path)
        .join(SplitMember, SplitMember.image_id == Image.id)
        .join(LabelClass, LabelClass.id == Image.class_id)
        .where(SplitMember.build_id == run.build_id, SplitMember.split == split, Image.status == ACTIVE)
        .order_by(Image.id))]


def _count_by_class(s, run, split: str) -> dict[str, int]:
    from collections import Counter

    return dict(Counter(c for _, c, _ in _labelled_members(s, run, split)))


def _metrics_for(lib, run_name: str, members, train_counts, keep: set[str] | None = None):
    """compute_metrics of one run on ``members`` (only labels it knows, and in ``keep``)."""
    from curator import predict

    ids, probs, classes = predict.probabilities(lib, run_name, [m[0] for m in members])
    label_of = {m[0]: m[1] for m in members}
    index = {c: i for i, c in enumerate(classes)}
    rows = [j for j, i in enumerate(ids) if label_of[i] in index and (keep is None or label_of[i] in keep)]
    if not rows:
        return None
    labels = [index[label_of[ids[j]]] for j in rows]
    return compute_metrics(labels, probs[rows], classes, train_counts=train_counts)


def evaluate(lib, ref: str, split: str = "test") -> dict:
    """Evaluate run ``ref`` on its build's ``split`` (val, test, benchmark or all); store and return it.

    Each split's result has ``metrics`` (``compute_metrics``) and ``comparisons`` with the parent
    run and the production run, both measured on the same images of the classes both know. On
    the benchmark split ``beats_production`` says whether this run's accuracy is higher.

    Raises:
        NotFound: no such run.
        InvalidInput: the split has no labelled images in the run's build.
    """
    import json

    from curator.errors import InvalidInput
    from curator.library.models import Evaluation, Run
    from curator.runs import find_run, production_id

    wanted = EVAL_SPLITS if split == "all" else (split,)
    with lib.session() as s:
        run = find_run(s, ref)
        name, parent = run.name, run.parent.name if run.parent else None
        prod_id = production_id(s)
        production = s.get(Run, prod_id).name if prod_id and prod_id != run.id else None
        members = {sp: _labelled_members(s, run, sp) for sp in wanted}
        train_counts = _count_by_class(s, run, "train")
    out = {}
    for sp in wanted:
        if not members[sp]:
            continue
        metrics = _metrics_for(lib, name, members[sp], train_counts)
        result = {"run": name, "split": sp, "metrics": metrics, "comparisons": {}}
        for role, other in (("parent", parent), ("production", production)):
            if other:
                result["comparisons"][role] = _compare_on_same_images(lib, name, other, members[sp], train_counts)
        if sp == "benchmark":
            comp = result["comparisons"].get("production")
            result["beats_production"] = None if not comp else comp["accuracy"]["delta"] > 0
        out[sp] = result
        with lib.session() as s:
            run_id = find_run(s, name).id
            s.add(Evaluation(run_id=run_id, split=sp, metrics=json.dumps(metrics),
                             comparisons=json.dumps({k: v for k, v in result.items() if k in ("comparisons", "beats_production")})))
    if not out:
        raise InvalidInput(f"run {name}'s build has no labelled images in {' or '.join(wanted)}:"
                           " build splits with --val/--test, or flag images with `curator flag --benchmark`")
    return out


def _compare_on_same_images(lib, name: str, other: str, members, train_counts) -> dict:
    from curator.runs import summary

    shared = set(summary(lib, name)["classes"]) & set(summary(lib, other)["classes"])
    mine = _metrics_for(lib, name, members, train_counts, keep=shared)
    theirs = _metrics_for(lib, other, members, train_counts, keep=shared)
    if mine is None or theirs is None:
        return {"run": other, "note": "no images of classes both runs know"}
    return {"run": other, "images": mine["n"], "shared_classes": len(shared), **compare(mine, theirs)}


def review(lib, ref: str, *, max_confidence: float = 0.5, split: str | None = None,
           limit: int | None = None) -> list[dict]:
    """The build's problem images under run ``ref``: predicted wrongly, or right below ``max_confidence``.

    Uses the predictions stored when the run finished (``curator train`` scores its build);
    wrong ones first, most confident mistakes first, then the unreadable, then the least
    confident right ones (ties by image id). The database filters, orders and cuts to ``limit``.
    """
    from sqlalchemy import and_, case, func, select

    from curator.library.models import Image, LabelClass, Prediction, SplitMember
    from curator.runs import find_run

    unreadable = and_(Prediction.error.is_not(None), Prediction.error != "")
    wrong = Prediction.predicted.is_distinct_from(LabelClass.name)  # an unlabelled image too
    problem = case((unreadable, "unreadable"), (wrong, "wrong"),
                   (Prediction.confidence < max_confidence, "low confidence"))
    confidence = func.coalesce(Prediction.confidence, 0.0)
    with lib.session() as s:
        run = find_run(s, ref)
        rows = s.execute(
            select(Image.id, SplitMember.split, LabelClass.name, Prediction.predicted, Prediction.confidence,
                   problem, Image.path, Prediction.error)
            .join(SplitMember, (SplitMember.image_id == Image.id) & (SplitMember.build_id == run.build_id))
            .join(Prediction, (Prediction.image_id == Image.id) & (Prediction.run_id == run.id))
            .outerjoin(LabelClass, LabelClass.id == Image.class_id)
            .where(problem.is_not(None), *([SplitMember.split == split] if split else []))
            .order_by(case((unreadable, 1), (wrong, 0), else_=2),
                      case((unreadable, confidence), (wrong, -confidence), else_=confidence), Image.id)
            .limit(limit or None)
        ).all()
    keys = ("image_id", "split", "label", "predicted", "confidence", "problem", "path", "error")
    return [dict(zip(keys, row)) for row in rows]
