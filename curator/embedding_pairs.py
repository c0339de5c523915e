"""Near duplicates by embedding: the pairs pHash misses (crops, colour variants, re-renders).

``dedup --embeddings E`` asks the embedder's index (``curator.vector_index``) for each active
image's nearest neighbours and keeps the pairs at or above ``min_similarity`` (cosine). They are
stored as duplicate pairs of kind ``embedding`` beside the pHash pairs, and ``curator.dedup``
groups both kinds together, so ``build-splits`` and ``splits check`` keep a group in one split.

Incremental like the pHash pass: the images compared with these settings are remembered in a
file beside the index (``<embedder id>.dedup.npy``); a later run asks only for the images that
got a vector since, against all of them. Other settings compare everything again (the pairs
this embedder found are replaced; another embedder's stay).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sqlalchemy import delete, select

from curator import atomic, embeddings, vector_index
from curator.library import Library
from curator.library.models import DedupRun, DuplicatePair, Embedder

NEIGHBOURS = 10  # per image: a family of near copies larger than this is still joined by its chain
CHUNK = 2000  # query vectors per search


def _state_path(lib: Library, e: Embedder) -> Path:
    return vector_index.folder(lib) / f"{e.id}.dedup.npy"


def _compared(lib: Library, e: Embedder, min_similarity: float) -> np.ndarray | None:
    """The image ids an earlier run with the same ``min_similarity`` compared, or None."""
    path = _state_path(lib, e)
    meta = path.with_suffix(".json")
    try:
        if json.loads(meta.read_text()).get("min_similarity") == min_similarity:
            return np.load(path)
    except (OSError, ValueError):
        pass
    return None


def remember(lib: Library, e: Embedder, min_similarity: float, ids: np.ndarray) -> None:
    """Record the images compared (after the pairs are committed)."""
    path = _state_path(lib, e)
    atomic.write(path, lambda tmp: np.save(tmp, ids))
    atomic.write_text(path.with_suffix(".json"), json.dumps({"min_similarity": min_similarity}))


def find_pairs(lib: Library, s, e: Embedder, index: vector_index.VectorIndex, min_similarity: float, *,
               full: bool = False, on_progress: Callable[[int, int], None] | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of active images at or above ``min_similarity``, for the images not compared yet.

    Args:
        index: ``e``'s index, brought up to date before ``s``'s transaction began (a rebuild
            inside it would hold the library's write lock for minutes at a million images).

    Returns:
        (pairs (P, 2) image ids, smaller first; their similarities (P,); every id compared).
    """
    ids = embeddings.image_ids(s, e, active=True)
    before = None if full else _compared(lib, e, min_similarity)
    if before is None:
        mine = select(DedupRun.id).where(DedupRun.embedder == e.name)  # another embedder's pairs stay
        s.execute(delete(DuplicatePair).where(DuplicatePair.kind == "embedding", DuplicatePair.run_id.in_(mine)))
        new = ids
    else:
        new = np.setdiff1d(ids, before, assume_unique=True)
    found_a, found_b, found_s = [], [], []
    for lo in range(0, len(new), CHUNK):
        got, vecs = embeddings.vectors(s, e, new[lo:lo + CHUNK].tolist())
        sims, nbrs = index.search(vecs, NEIGHBOURS + 1)
        a = np.repeat(got, sims.shape[1])
        b, sim = nbrs.ravel(), sims.ravel()
        keep = (sim >= min_similarity) & (b != a) & (b >= 0)
        keep[keep] = np.isin(b[keep], ids, assume_unique=False)
        found_a.append(np.minimum(a[keep], b[keep]))
        found_b.append(np.maximum(a[keep], b[keep]))
        found_s.append(sim[keep])
        if on_progress:
            on_progress(lo + len(got), len(new))
    if not found_a:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32), ids
    pairs = np.stack([np.concatenate(found_a), np.concatenate(found_b)], axis=1)
    sims = np.concatenate(found_s)
    pairs, first = np.unique(pairs, axis=0, return_index=True)
    return pairs, np.minimum(sims[first], 1.0), ids
