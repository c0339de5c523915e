"""Per-class confidence thresholds: the lowest top-1 confidence at which a run's answer for a class
reaches a target precision on held-out data. Serving answers "not sure" below it.

For class C, the images of the split the run predicts as C (top-1) are ranked by confidence;
``sklearn.metrics.precision_recall_curve`` gives the precision of "answer C when confidence >=
t" for every t, and the threshold is the smallest t whose precision reaches the target (so
recall is as high as it can be). A class the split never predicts, or that cannot reach the
target, gets the threshold over all classes pooled (``*``), or 1.0 if even that cannot.
"""

from __future__ import annotations

import json

import numpy as np
from sqlalchemy import delete, select

from curator.errors import InvalidInput
from curator.library import Library
from curator.library.models import (
    ACTIVE,
    LABELLED,
    Image,
    LabelClass,
    Prediction,
    SplitMember,
    Threshold,
)
from curator.runs import find_run

POOLED = "*"  # the row for classes without their own threshold


def choose(correct: np.ndarray, confidence: np.ndarray, target: float) -> dict | None:
    """The smallest threshold whose answers reach ``target`` precision, or None.

    Args:
        correct: for each answer (top-1 prediction), whether it was right.
        confidence: its confidence.

    Returns:
        ``{"threshold", "precision", "answered"}``: ``answered`` counts answers at or above it.
    """
    from sklearn.metrics import precision_recall_curve

    if len(correct) == 0 or not correct.any():
        return None
    precision, _, thresholds = precision_recall_curve(correct.astype(int), confidence)
    ok = np.flatnonzero(precision[:-1] >= target)  # the last point (recall 0) has no threshold
    if len(ok) == 0:
        return None
    t = float(thresholds[ok[0]])
    return {"threshold": t, "precision": float(precision[ok[0]]), "answered": int((confidence >= t).sum())}


def compute(lib: Library, ref: str, *, target_precision: float = 0.95, split: str = "val") -> dict:
    """Choose and store a threshold per class of run ``ref`` from its build's ``split``.

    Returns:
        ``{"run", "split", "target_precision", "images", "classes": [{class, threshold,
        precision, recall, support, own}, ...]}``; ``own`` is False where the pooled
        threshold stands in.

    Raises:
        InvalidInput: a target outside (0, 1], or no predictions on the split (run
            ``curator bulk-identify --pool labelled`` or train without ``--no-score``).
    """
    if not 0 < target_precision <= 1:
        raise InvalidInput(f"--precision {target_precision} is not in (0, 1]")
    with lib.session() as s:
        run = find_run(s, ref)
        rows = s.execute(
            select(LabelClass.name, Prediction.predicted, Prediction.confidence)
            .join(Image, Image.id == Prediction.image_id)
            .join(LabelClass, LabelClass.id == Image.class_id)
            .join(SplitMember, (SplitMember.image_id == Image.id) & (SplitMember.build_id == run.build_id))
            .where(Prediction.run_id == run.id, Prediction.error.is_(None), SplitMember.split == split,
                   Image.status == ACTIVE, Image.label_state == LABELLED)).all()
        if not rows:
            raise InvalidInput(f"run {run.name} has no predictions on its {split} images: score them with"
                               f" `curator bulk-identify --run {run.name} --pool labelled`")
        classes = json.loads(run.classes)
        truth = np.array([r[0] for r in rows])
        predicted = np.array([r[1] for r in rows])
        confidence = np.array([r[2] for r in rows], dtype=float)
        correct = truth == predicted
        pooled = choose(correct, confidence, target_precision)
        fallback = pooled["threshold"] if pooled else 1.0
        out = [{"class": POOLED, "threshold": fallback, "precision": pooled and pooled["precision"],
                "recall": _recall(correct, confidence, fallback, len(rows)), "support": len(rows), "own": True}]
        for c in classes:
            mine = predicted == c
            found = choose(correct[mine], confidence[mine], target_precision)
            t = found["threshold"] if found else fallback
            out.append({"class": c, "threshold": t, "precision": found and found["precision"],
                        "recall": _recall(correct[mine], confidence[mine], t, int((truth == c).sum())),
                        "support": int(mine.sum()), "own": found is not None})
        s.execute(delete(Threshold).where(Threshold.run_id == run.id))
        s.add_all(Threshold(run_id=run.id, class_name=r["class"], threshold=r["threshold"],
                            target_precision=target_precision, precision=r["precision"], recall=r["recall"],
                            support=r["support"]) for r in out)
        return {"run": run.name, "split": split, "target_precision": target_precision, "images": len(rows),
                "classes": out}


def _recall(correct: np.ndarray, confidence: np.ndarray, t: float, positives: int) -> float | None:
    """Share of the class's images answered right at or above ``t``."""
    return float((correct & (confidence >= t)).sum() / positives) if positives else None


def load(lib: Library, run_id: int) -> dict[str, float]:
    """A run's stored thresholds by class (``*`` for the rest); empty if none were computed."""
    with lib.session() as s:
        return {c: t for c, t in s.execute(select(Threshold.class_name, Threshold.threshold)
                                           .where(Threshold.run_id == run_id))}
