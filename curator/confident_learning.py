"""Confident learning over out-of-sample probabilities, in passes over blocks of rows.

Confident learning (Northcutt, Jiang and Chuang, JAIR 2021), written here from the paper
(cleanlab, its reference code, is AGPL: a peer to benchmark against, not a dependency):

1. Per class j, a threshold ``t[j]``: the mean probability of j over images labelled j.
2. The confident joint ``C[i][j]``: images labelled i whose most likely class among those at or
   above their threshold is j.
3. Calibrated so row i sums to the number of images labelled i, normalised to a joint
   ``Q``; for each pair i != j, the ``round(Q[i][j] * N)`` images labelled i with the largest
   margin ``p[j] - p[i]`` are taken to really be j ("prune by noise rate"), except images whose
   most likely class is their label (the model agrees with it).

The (N, K) probabilities are never held whole: ``label_issues`` reads them through
``read(a, b)``, the rows of the a-th to b-th images in class order (grouped by given label,
stable: image order within a class), about ``budget`` values at a time, in two passes: one
for the thresholds' confident classes, one class at a time for the margins. An array in memory
reads through ``in_memory``; ``ProbabilityFile`` keeps them on disk as float32, written as each
fold's predictions arrive (300,000 images x 1,000 classes: 1.2 GB on disk). The means, the
comparisons and the margins are float64 of the same values, in the same order, as over the
whole array, and each pair's largest margins are chosen with ties to the earlier image as a
stable sort would, so the result does not depend on ``budget``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence

import numpy as np

from curator.errors import InvalidInput

BUDGET = 1 << 22  # values in one working block (32 MiB as float64; a few such arrays at once)
TOL = 1e-6  # a probability this far below its class's threshold still counts as at or above it

Reader = Callable[[int, int], np.ndarray]


def in_memory(labels, probs) -> tuple[np.ndarray, Reader]:
    """The labels as an (N,) int array and a reader in class order over the (N, K) ``probs``."""
    labels, probs = np.asarray(labels, dtype=int), np.asarray(probs)
    if probs.ndim != 2 or len(labels) != len(probs):
        raise InvalidInput(f"{len(labels)} labels but {len(probs)} rows of probabilities")
    if probs.dtype != np.float32:
        probs = probs.astype(float, copy=False)
    order = np.argsort(labels, kind="stable")
    return labels, lambda a, b: probs[order[a:b]]


def label_issues(labels, read: Reader, k: int, *, own=None, budget: int = BUDGET) -> dict[str, np.ndarray]:
    """Which labels confident learning (prune by noise rate) calls wrong.

    Args:
        labels: (N,) given labels, indices into the K classes.
        read: ``read(a, b)`` gives the (b - a, K) float32 or float64 probabilities of images a
            to b in class order (``np.argsort(labels, kind="stable")``); a new array each time.
        k: the number of classes K.
        own: (N,) the probability of each image's label, in image order, where the caller has
            it already (one pass fewer); else read.
        budget: the most values held in one block.

    Returns:
        ``{"issues", "suspected", "score"}``, each (N,) in image order: True where the label is
        probably wrong; the most likely other class; the probability of the given label.
    """
    labels = np.asarray(labels, dtype=int)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    counts = np.bincount(labels, minlength=k)
    starts = np.concatenate(([0], np.cumsum(counts)))
    chunk = max(1, budget // max(k, 1))
    own = _own_probabilities(sorted_labels, read, chunk) if own is None else np.asarray(own, dtype=float)[order]
    thresholds = np.array([own[starts[j]:starts[j + 1]].mean() if counts[j] else 1.0 for j in range(k)])
    confident, likeliest, suspected = _row_pass(sorted_labels, read, thresholds, chunk)
    prune = _prune_counts(sorted_labels, confident, counts, k)
    issues = np.zeros(len(labels), dtype=bool)
    for i in np.flatnonzero(prune.any(1)):
        _prune_class(issues, read, i, starts[i], starts[i + 1], prune[i], budget)
    for i in np.flatnonzero(counts):  # never call every image of a class wrong
        s, e = starts[i], starts[i + 1]
        if issues[s:e].all():
            issues[s + own[s:e].argmax()] = False
    issues[likeliest == sorted_labels] = False  # the model itself agrees with the label
    out = {"issues": issues, "suspected": suspected, "score": own}
    for key, values in out.items():  # class order -> image order
        out[key] = np.empty_like(values)
        out[key][order] = values
    return out


def ranked(issues, suspected, score) -> list[dict]:
    """The flagged images, least self-confident first: ``{"index", "suspected", "score"}``."""
    flagged = np.flatnonzero(issues)
    flagged = flagged[np.lexsort((flagged, np.asarray(score)[flagged]))]
    return [{"index": int(i), "suspected": int(suspected[i]), "score": float(score[i])} for i in flagged]


def _blocks(a: int, b: int, size: int):
    for start in range(a, b, size):
        yield start, min(start + size, b)


def _own_probabilities(sorted_labels, read: Reader, chunk: int) -> np.ndarray:
    own = np.empty(len(sorted_labels))
    for a, b in _blocks(0, len(sorted_labels), chunk):
        own[a:b] = read(a, b)[np.arange(b - a), sorted_labels[a:b]]  # float32 -> float64: exact
    return own


def _row_pass(sorted_labels, read: Reader, thresholds, chunk: int):
    """Per image: the likeliest class at or above its threshold (-1: none), the likeliest class
    and the likeliest class other than the label."""
    n = len(sorted_labels)
    confident, likeliest, suspected = (np.empty(n, dtype=int) for _ in range(3))
    for a, b in _blocks(0, n, chunk):
        probs = read(a, b)
        above = probs >= thresholds - TOL  # float32 rows compare as float64
        confident[a:b] = np.where(above.any(1), np.where(above, probs, -1).argmax(1), -1)
        likeliest[a:b] = probs.argmax(1)
        probs[np.arange(b - a), sorted_labels[a:b]] = -1
        suspected[a:b] = probs.argmax(1)
    return confident, likeliest, suspected


def _prune_counts(sorted_labels, confident, counts, k: int) -> np.ndarray:
    """(K, K): how many images labelled i to take as really j, from the calibrated joint."""
    joint = np.zeros((k, k))
    sure = confident >= 0
    np.add.at(joint, (sorted_labels[sure], confident[sure]), 1)
    rows = joint.sum(1, keepdims=True)
    calibrated = np.divide(joint, rows, out=np.zeros_like(joint), where=rows > 0) * counts[:, None]
    q = calibrated / max(calibrated.sum(), 1e-12)
    prune = np.rint(q * len(sorted_labels)).astype(int)
    np.fill_diagonal(prune, 0)
    return prune


def _prune_class(issues, read: Reader, i: int, s: int, e: int, prune_row, budget: int) -> None:
    """Flag, for each j, the ``prune_row[j]`` images of class i (images s to e in class order)
    with the largest margin p[j] - p[i], ties to the earlier image.

    The class's images are read once per block of columns, a block of rows at a time; each
    column keeps its best ``prune_row[j]`` so far (in image order) and takes the next rows'
    better ones, so a class of 100,000 images and 1,000 columns needs no (N, K) sort.
    """
    wanted = np.flatnonzero(prune_row)
    keep = np.minimum(prune_row, e - s)
    width = max(1, min(len(wanted), budget // (2 * (keep.max() + 1))))
    rows = max(1, min(budget // (2 * width), budget // len(prune_row)))  # rows are read whole: K values
    for c in range(0, len(wanted), width):
        cols = wanted[c:c + width]
        best = np.full((keep[cols].max(), len(cols)), np.inf), np.full((keep[cols].max(), len(cols)), -1)
        for a, b in _blocks(s, e, rows):
            probs = read(a, b).astype(float, copy=False)
            key = probs[:, [i]] - probs[:, cols]  # minus the margin: smallest first
            best = _smallest(np.vstack((best[0], key)), np.vstack((best[1], np.repeat(np.arange(a, b), len(cols))
                                                                     .reshape(b - a, len(cols)))), keep[cols])
        issues[best[1][best[1] >= 0]] = True


def _smallest(key, pos, n):
    """Per column j, the ``n[j]`` rows of least ``key``, ties to the earlier row, as (key, pos)
    arrays of ``n.max()`` rows in row order (padded with inf and -1); ``key`` has more rows."""
    cut = np.take_along_axis(np.partition(key, np.unique(n - 1), axis=0), (n - 1)[None, :], axis=0)
    below, tied = key < cut, key == cut  # all of below, and the earliest of the tied
    chosen = below | (tied & (np.cumsum(tied, axis=0, dtype=np.int32) <= n - below.sum(0)))
    slot = np.cumsum(chosen, axis=0) - 1
    out = np.full((n.max(), key.shape[1]), np.inf), np.full((n.max(), key.shape[1]), -1)
    r, c = np.nonzero(chosen)
    out[0][slot[r, c], c], out[1][slot[r, c], c] = key[r, c], pos[r, c]
    return out


class ProbabilityFile:
    """(N, K) float32 probabilities in a temporary file, rows in class order, filled as they come.

    Args:
        labels: (N,) given labels of every image that may get probabilities, in image order.
        k: the number of classes K.
        folder: where the file goes (it is removed on ``close``).
    """

    def __init__(self, labels: Sequence[int], k: int, folder=None):
        labels = np.asarray(labels, dtype=int)
        self.labels, self.k, self.row_bytes = labels, k, 4 * k
        self.slot = np.empty(len(labels), dtype=np.int64)  # image -> row of the file
        self.slot[np.argsort(labels, kind="stable")] = np.arange(len(labels))
        self.present = np.zeros(len(labels), dtype=bool)  # by image
        self.own = np.zeros(len(labels))  # the probability of the label, by image
        self.file = tempfile.TemporaryFile(dir=folder, prefix="probabilities-")

    def write(self, images: Sequence[int], probs) -> None:
        """Store the (len(images), K) ``probs`` of ``images`` (positions in image order)."""
        probs = np.ascontiguousarray(probs, dtype=np.float32)
        if probs.shape != (len(images), self.k):
            raise InvalidInput(f"{probs.shape} probabilities for {len(images)} images of {self.k} classes")
        fd = self.file.fileno()
        for image, row in zip(images, probs):
            os.pwrite(fd, row.tobytes(), int(self.slot[image]) * self.row_bytes)
        images = np.asarray(images, dtype=int)
        self.present[images] = True
        self.own[images] = probs[np.arange(len(images)), self.labels[images]]

    def kept(self) -> dict:
        """``label_issues``' arguments for the images that got probabilities (``labels``, ``read``,
        ``k``, ``own``) and ``kept``, their positions in image order."""
        kept = np.flatnonzero(self.present)
        slots = np.sort(self.slot[kept])
        return {"kept": kept, "labels": self.labels[kept], "read": lambda a, b: self._read(slots[a:b]), "k": self.k,
                "own": self.own[kept]}

    def _read(self, slots: np.ndarray) -> np.ndarray:
        out = np.empty((len(slots), self.k), dtype=np.float32)
        starts = np.flatnonzero(np.diff(slots, prepend=-2) != 1).tolist()  # runs of contiguous rows
        for a, b in zip(starts, starts[1:] + [len(slots)]):
            os.preadv(self.file.fileno(), [out[a:b]], int(slots[a]) * self.row_bytes)
        return out

    def close(self) -> None:
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
