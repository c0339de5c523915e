"""Suspect labels: labelled images whose label is probably wrong, by confident learning.

The method is ``curator.confident_learning``'s (confident learning, prune by noise rate, in
passes over blocks of rows). ``suspects`` gets the out-of-sample probabilities with k-fold
throw-away runs: the images of a run's build are split into ``folds`` parts; each part is
predicted by a model trained on the others, with the run's own options. The probabilities go
to a temporary file beside the run as each slice of a fold is predicted, so memory stays
bounded whatever the build's size (``rank_and_store``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from curator import atomic
from curator.confident_learning import ProbabilityFile, in_memory, label_issues, ranked
from curator.errors import InvalidInput

SAVED = "suspects.json"  # the last result, in the run's folder
SLICE = 16384  # images predicted at a time: their (SLICE, K) float32 probabilities in memory


def find_label_issues(labels, probs) -> np.ndarray:
    """Which labels confident learning (prune by noise rate) calls wrong.

    Args:
        labels: (N,) given labels, indices into the K classes.
        probs: (N, K) out-of-sample predicted probabilities.

    Returns:
        (N,) bool: True where the label is probably wrong.
    """
    labels, read = in_memory(labels, probs)
    return label_issues(labels, read, np.shape(probs)[1])["issues"]


def rank(labels, probs, issues) -> list[dict]:
    """The flagged images, least self-confident first: index, suspected class index and score.

    ``score`` is the probability of the given label (lower: more suspect); ``suspected`` is the
    most likely other class.
    """
    labels, probs = np.asarray(labels, dtype=int), np.asarray(probs, dtype=float)
    flagged = np.flatnonzero(issues)
    others = probs[flagged]
    others[np.arange(len(flagged)), labels[flagged]] = -1
    suspected, score = np.zeros(len(labels), dtype=int), probs[np.arange(len(labels)), labels]
    suspected[flagged] = others.argmax(1)
    return ranked(issues, suspected, score)


# -- in the library ----------------------------------------------------------------------------


def _fold_of(sha256: str, folds: int, seed: int) -> int:
    from curator.split_rules import seeded_hash

    return seeded_hash(sha256, seed) % folds


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
    from curator import train

    if folds < 2:
        raise InvalidInput(f"--folds {folds}: confident learning needs out-of-sample predictions from at least 2 folds")
    run, rows = labelled_rows(lib, ref)
    if len(rows) < folds:
        raise InvalidInput(f"run {run.name}'s build has {len(rows)} labelled images, fewer than --folds {folds}")
    # The fold models start from scratch (or the run's --weights), never from the run itself:
    # it has seen every held-out label.
    cfg = replace(train.TrainConfig.from_json(run.params), lr=None, head_epochs=None, seed=seed)
    cfg.epochs = epochs or cfg.epochs
    parts = fold_parts(rows, folds, seed)
    return rank_and_store(lib, run, rows, _fold_probabilities(lib, run, parts, cfg, on_fold), folds=folds)


def labelled_rows(lib, ref: str) -> tuple:
    """Run ``ref`` (detached) and its build's active labelled train and val images of its
    classes, by id: ``(image id, sha256, path, class name)`` each."""
    from sqlalchemy import select

    from curator.library.models import ACTIVE, LABELLED, Image, LabelClass, SplitMember
    from curator.runs import find_run

    with lib.session() as s:
        run = find_run(s, ref)
        s.expunge(run)
        known = set(json.loads(run.classes))
        rows = s.execute(
            select(Image.id, Image.sha256, Image.path, LabelClass.name)
            .join(SplitMember, (SplitMember.image_id == Image.id) & (SplitMember.build_id == run.build_id))
            .join(LabelClass, LabelClass.id == Image.class_id)
            .where(SplitMember.split.in_(("train", "val")), Image.status == ACTIVE, Image.label_state == LABELLED)
            .order_by(Image.id)).all()
    return run, [tuple(r) for r in rows if r[3] in known]  # tuples: a third of the memory of rows


def fold_parts(rows, folds: int, seed: int) -> list[list[int]]:
    """The image ids of each fold, by id; an image's fold follows from its sha256 and ``seed``."""
    parts = [[] for _ in range(folds)]
    for r in rows:
        parts[_fold_of(r[1], folds, seed)].append(r[0])
    return parts


def rank_and_store(lib, run, rows, predictions: Iterable[tuple[list[int], np.ndarray]], *, folds: int) -> dict:
    """Gather out-of-sample probabilities, rank by confident learning, keep the result beside the run.

    Args:
        run: the run (its classes are the columns).
        rows: ``labelled_rows``' images.
        predictions: ``(image ids, (len(ids), K) probabilities)`` as they come, any order and
            size; images that never come (unreadable) are left out.

    Returns:
        ``suspects``' result.
    """
    from curator.runs import run_folder

    classes = json.loads(run.classes)
    index = {c: i for i, c in enumerate(classes)}
    ids = np.array([r[0] for r in rows])  # by id: an image's position is found by bisection
    folder = run_folder(lib, run)
    folder.mkdir(parents=True, exist_ok=True)
    with ProbabilityFile([index[r[3]] for r in rows], len(classes), folder=folder) as store:
        for images, probs in predictions:
            store.write(np.searchsorted(ids, images), probs)
        gathered = store.kept()
        kept = gathered.pop("kept")
        found = [(rows[kept[x["index"]]], x) for x in ranked(**label_issues(**gathered))]
    result = {"run": run.name, "folds": folds, "images": len(kept), "suspects": [
        {"image_id": row[0], "path": row[2], "label": row[3], "suspected": classes[x["suspected"]],
         "score": round(x["score"], 4)} for row, x in found]}
    _save(folder / SAVED, result)
    return result


def _fold_probabilities(lib, run, parts: list[list[int]], cfg, on_fold):
    """Each fold's held-out images' probabilities, ``SLICE`` images at a time, training the fold first."""
    from curator import predict

    for f, held in enumerate(parts):
        name = f"suspects-{run.name}-fold{f + 1}"
        _train_fold(lib, run, name, sorted(i for g, part in enumerate(parts) if g != f for i in part), cfg)
        for start in range(0, len(held), SLICE):
            ids, probs, _ = predict.probabilities(lib, name, held[start:start + SLICE])
            yield ids, probs
        if on_fold:
            on_fold(f + 1, len(parts))


def _save(path, result: dict) -> None:
    """Keep the last result beside the run (FiftyOne's ``suspects`` view reads it), atomically."""
    atomic.write_text(path, json.dumps(result))


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
