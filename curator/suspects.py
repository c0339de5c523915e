"""Suspect labels: labelled images whose label is probably wrong, by confident learning.

``find_label_issues`` is confident learning (Northcutt, Jiang and Chuang, JAIR 2021) over
out-of-sample probabilities, written here from the paper (cleanlab, its reference code, is
AGPL: a peer to benchmark against, not a dependency):

1. Per class j, a threshold ``t[j]``: the mean probability of j over images labelled j.
2. The confident joint ``C[i][j]``: images labelled i whose most likely class among those at or
   above their threshold is j.
3. Calibrated so row i sums to the number of images labelled i, normalised to a joint
   ``Q``; for each pair i != j, the ``round(Q[i][j] * N)`` images labelled i with the largest
   margin ``p[j] - p[i]`` are taken to really be j ("prune by noise rate"), except images whose
   most likely class is their label (the model agrees with it).

``suspects`` gets the out-of-sample probabilities with k-fold throw-away runs: the images of a
run's build are split into ``folds`` parts; each part is predicted by a model trained on the
others, with the run's own options.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from curator.errors import InvalidInput

SAVED = "suspects.json"  # the last result, in the run's folder


def find_label_issues(labels, probs) -> np.ndarray:
    """Which labels confident learning (prune by noise rate) calls wrong.

    Args:
        labels: (N,) given labels, indices into the K classes.
        probs: (N, K) out-of-sample predicted probabilities.

    Returns:
        (N,) bool: True where the label is probably wrong.
    """
    labels, probs = np.asarray(labels, dtype=int), np.asarray(probs, dtype=float)
    n, k = probs.shape
    if len(labels) != n:
        raise InvalidInput(f"{len(labels)} labels but {n} rows of probabilities")
    counts = np.bincount(labels, minlength=k)
    thresholds = np.array([probs[labels == j, j].mean() if counts[j] else 1.0 for j in range(k)])
    above = probs >= thresholds - 1e-6
    confident = np.where(above.any(1), np.where(above, probs, -1).argmax(1), -1)  # the likeliest confident class
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
            if j != i and prune[i, j] > 0:  # each (i, j) picks its own top margins; picks may overlap
                margin = probs[members, j] - probs[members, i]
                issues[members[np.argsort(-margin, kind="stable")[:prune[i, j]]]] = True
        if len(members) and issues[members].all():  # never call every image of a class wrong
            issues[members[probs[members, i].argmax()]] = False
    issues[probs.argmax(1) == labels] = False  # the model itself agrees with the label
    return issues


def rank(labels, probs, issues) -> list[dict]:
    """The flagged images, least self-confident first: index, suspected class index and score.

    ``score`` is the probability of the given label (lower: more suspect); ``suspected`` is the
    most likely other class.
    """
    labels, probs = np.asarray(labels, dtype=int), np.asarray(probs, dtype=float)
    others = probs.copy()
    others[np.arange(len(labels)), labels] = -1
    out = [{"index": int(i), "suspected": int(others[i].argmax()), "score": float(probs[i, labels[i]])}
           for i in np.flatnonzero(issues)]
    return sorted(out, key=lambda r: (r["score"], r["index"]))


# -- in the library ----------------------------------------------------------------------------


def _fold_of(sha256: str, folds: int, seed: int) -> int:
    import hashlib

    return int.from_bytes(hashlib.blake2b(f"{seed}:{sha256}".encode(), digest_size=8).digest(), "big") % folds


def _fold_build(lib, run, name: str, train_ids: list[int]) -> None:
    """A build holding only ``train_ids`` as training images, with the run's class list."""
    from sqlalchemy import insert

    from curator.library.models import SplitBuild, SplitMember

    with lib.session() as s:
        build = SplitBuild(name=name, params=json.dumps({"suspects_of": run.name}), classes=run.classes,
                           report=json.dumps({"note": f"k-fold training set for `curator suspects --run {run.name}`"}))
        s.add(build)
        s.flush()
        s.execute(insert(SplitMember), [{"build_id": build.id, "image_id": i, "split": "train"} for i in train_ids])


def suspects(lib, ref: str = "latest", *, folds: int = 5, epochs: int | None = None, seed: int = 0,
             on_fold=None) -> dict:
    """Rank the labelled train and val images of run ``ref``'s build by how suspect their label is.

    Each of ``folds`` parts is predicted by a throw-away run trained on the other parts (named
    ``suspects-RUN-foldN``; their builds likewise), with the run's options (``epochs`` may
    shorten them). Re-running reuses fold runs that already exist. Fold runs have purpose
    ``suspects``: they never count as the latest run.

    Returns:
        ``{"run", "folds", "images", "suspects": [{image_id, path, label, suspected, score}, ...]}``.
    """
    from sqlalchemy import select

    from curator import predict, train
    from curator.library.models import ACTIVE, LABELLED, Image, LabelClass, SplitMember
    from curator.runs import find_run, run_folder

    if folds < 2:
        raise InvalidInput(f"--folds {folds}: confident learning needs out-of-sample predictions from at least 2 folds")
    with lib.session() as s:
        run = find_run(s, ref)
        s.expunge(run)
        classes = json.loads(run.classes)
        rows = s.execute(
            select(Image.id, Image.sha256, Image.path, LabelClass.name)
            .join(SplitMember, (SplitMember.image_id == Image.id) & (SplitMember.build_id == run.build_id))
            .join(LabelClass, LabelClass.id == Image.class_id)
            .where(SplitMember.split.in_(("train", "val")), Image.status == ACTIVE, Image.label_state == LABELLED)
            .order_by(Image.id)).all()
    index = {c: i for i, c in enumerate(classes)}
    rows = [r for r in rows if r[3] in index]
    if len(rows) < folds:
        raise InvalidInput(f"run {run.name}'s build has {len(rows)} labelled images, fewer than --folds {folds}")
    fold = {r[0]: _fold_of(r[1], folds, seed) for r in rows}
    # The fold models start from scratch (or the run's --weights), never from the run itself:
    # it has seen every held-out label.
    cfg = replace(train.TrainConfig.from_json(run.params), lr=None, head_epochs=None, seed=seed)
    cfg.epochs = epochs or cfg.epochs
    probs_by_id: dict[int, np.ndarray] = {}
    for f in range(folds):
        name = f"suspects-{run.name}-fold{f + 1}"
        _train_fold(lib, run, name, [i for i, g in fold.items() if g != f], cfg)
        ids, p, _ = predict.probabilities(lib, name, [i for i, g in fold.items() if g == f])
        probs_by_id.update(zip(ids, p))
        if on_fold:
            on_fold(f + 1, folds)
    kept = [r for r in rows if r[0] in probs_by_id]
    labels = np.array([index[r[3]] for r in kept])
    probs = np.stack([probs_by_id[r[0]] for r in kept])
    found = rank(labels, probs, find_label_issues(labels, probs))
    result = {"run": run.name, "folds": folds, "images": len(kept), "suspects": [
        {"image_id": kept[x["index"]][0], "path": kept[x["index"]][2], "label": kept[x["index"]][3],
         "suspected": classes[x["suspected"]], "score": round(x["score"], 4)} for x in found]}
    _save(run_folder(lib, run) / SAVED, result)
    return result


def _save(path, result: dict) -> None:
    """Keep the last result beside the run (FiftyOne's ``suspects`` view reads it), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)


def _train_fold(lib, run, name: str, train_ids: list[int], cfg) -> None:
    """Train (or finish, or reuse) the throw-away run of one fold."""
    from sqlalchemy import select

    from curator import train
    from curator.library.models import SUSPECTS_PURPOSE, Run, SplitBuild

    with lib.session() as s:
        status = s.scalar(select(Run.status).where(Run.name == name))
        has_build = s.scalar(select(SplitBuild.id).where(SplitBuild.name == name)) is not None
    if status == "done":
        return
    if status is not None:
        train.resume(lib, name)
        return
    if not has_build:
        _fold_build(lib, run, name, train_ids)
    train.train(lib, name, cfg, name=name, throwaway=True, purpose=SUSPECTS_PURPOSE)
