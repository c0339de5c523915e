"""Nearest neighbours of an embedder's vectors: a faiss index kept beside the library.

``<library folder>/embeddings/<embedder id>.faiss`` holds every image's vector of one embedder
(whatever the library's database: SQLite or PostgreSQL), with ``.json`` beside it saying what
it holds. ``open_index`` brings it up to date before a search: it compares the database's
(count, sum of image ids, newest write) with the file's, and when they differ adds the vectors
of the images that are new to it, removes those gone (deleted images) and replaces those
written since (a deleted image's id given to a new image), in chunks; nothing is recomputed.

Up to ``EXACT_UP_TO`` vectors the index is exact (float32 inner products, BLAS); past
that, an inverted file of ``4 * sqrt(N)`` lists with 8-bit scalar-quantised vectors, searched
``nprobe`` lists deep (chosen by benchmarks/vector_index.py: 1M 512-d vectors in ~0.5 GiB).
It is trained on the vectors it first holds and rebuilt when it has grown fourfold since, or
crossed from exact to inverted. Searches are cosine similarities (vectors are unit length).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curator import atomic, embeddings
from curator.library import Library
from curator.library.models import Embedder

EXACT_UP_TO = 100_000
NPROBE = 32
TRAIN_SAMPLE = 100_000
REBUILD_GROWTH = 4.0
CHUNK = 20_000
FEW = 16  # queries searched on one thread
EXACT_WORK = 1e9  # memory_index: vectors x queries searched exactly
IVF_FROM = 10_000  # memory_index: fewer vectors are always searched exactly


@dataclass
class VectorIndex:
    """A loaded index: ``search`` answers image ids and cosine similarities."""

    index: object  # faiss.Index with ids (IndexIDMap2 or IndexIVF)
    meta: dict
    path: Path | None = None

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest of each query row: (similarities (Q, k), image ids (Q, k), -1 past the end)."""
        import faiss

        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(k, self.size))
        if self.size == 0:
            return np.zeros((len(q), k), np.float32), np.full((len(q), k), -1, np.int64)
        params = faiss.SearchParametersIVF(nprobe=NPROBE) if self.meta["kind"] == "ivf" else None
        threads = faiss.omp_get_max_threads()
        if len(q) < FEW:  # OpenMP threads waiting on busy cores cost more than one query takes
            faiss.omp_set_num_threads(1)
        try:
            return self.index.search(q, k, params=params)
        finally:
            faiss.omp_set_num_threads(threads)


def folder(lib: Library) -> Path:
    return lib.folder / "embeddings"


def open_index(lib: Library, e: Embedder, *, on_progress: Callable[[int, int], None] | None = None) -> VectorIndex:
    """Embedder ``e``'s index, brought up to date with the database (and saved) if it was not."""
    path = folder(lib) / f"{e.id}.faiss"
    with lib.session() as s:
        e = s.get(Embedder, e.id) or e  # or made by the caller's transaction, not committed yet
        now = embeddings.fingerprint(s, e)
        current = _load(path, mapped=True)
        if current is not None and current.meta.get("fingerprint") == list(now):
            return current
        current = current and _load(path)  # to change it: read whole, not mapped
        d = embeddings.dim(s, e)
        if current is None or _rebuild(current, now[0], d):
            current = _build(s, e, now[0], d, on_progress)
        else:
            saved = current.meta.get("fingerprint") or []
            _sync(s, e, current, saved[2] if len(saved) > 2 else None, on_progress)
    current.meta["fingerprint"] = list(now)
    _save(current, path)
    return current


def memory_index(ids: np.ndarray, vectors: np.ndarray, *, queries: int = 0) -> VectorIndex:
    """An index of ``vectors`` held in memory only (e.g. the labelled images' for ``--unfamiliar``).

    Exact up to ``EXACT_UP_TO`` vectors unless ``queries`` searches would make exact work past
    ``EXACT_WORK`` (vectors x queries): a million pool images against 10,000 labelled ones take
    minutes exact, an eighth of that through inverted lists."""
    n, d = vectors.shape
    if n <= EXACT_UP_TO and (n < IVF_FROM or n * queries <= EXACT_WORK):
        vi = VectorIndex(_exact(d), {"kind": "exact", "dim": d})
    else:
        vi = VectorIndex(_ivf(d, n, vectors), {"kind": "ivf", "dim": d, "trained_on": n})
    vi.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
    return vi


def _exact(d: int):
    import faiss

    return faiss.IndexIDMap2(faiss.IndexFlatIP(d))


def _ivf(d: int, n: int, sample: np.ndarray):
    import faiss

    nlist = max(16, int(4 * math.sqrt(n)))
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    index.train(np.ascontiguousarray(sample[: max(TRAIN_SAMPLE, 40 * nlist)], dtype=np.float32))
    quantizer.this.disown()  # the index frees it: freed by Python as well was a double free at exit
    index.own_fields = True
    return index


def _rebuild(current: VectorIndex, n: int, d: int | None) -> bool:
    meta = current.meta
    if meta.get("dim") != d:
        return True
    if meta["kind"] == "exact":
        return n > EXACT_UP_TO
    return n > REBUILD_GROWTH * meta.get("trained_on", n) or n <= EXACT_UP_TO // 2


def _build(s, e: Embedder, n: int, d: int | None, on_progress) -> VectorIndex:
    d = d or 1
    if n <= EXACT_UP_TO:
        vi = VectorIndex(_exact(d), {"kind": "exact", "dim": d})
        _add_all(vi, embeddings.batches(s, e, size=CHUNK), n, on_progress)
        return vi
    sample = _sample(s, e, min(n, max(TRAIN_SAMPLE, 40 * int(4 * math.sqrt(n)))))
    vi = VectorIndex(_ivf(d, n, sample), {"kind": "ivf", "dim": d, "trained_on": n})
    del sample
    _add_all(vi, embeddings.batches(s, e, size=CHUNK), n, on_progress)
    return vi


def _sample(s, e: Embedder, m: int) -> np.ndarray:
    """``m`` vectors spread over the library (every n/m-th id) to train the inverted lists on."""
    ids = embeddings.image_ids(s, e)
    step = max(1, len(ids) // m)
    return embeddings.vectors(s, e, ids[::step][:m].tolist())[1]


def _add_all(vi: VectorIndex, chunks, n: int, on_progress) -> None:
    done = 0
    for ids, vecs in chunks:
        vi.index.add_with_ids(vecs, ids)
        done += len(ids)
        if on_progress:
            on_progress(done, n)


def _held_ids(vi: VectorIndex) -> np.ndarray:
    import faiss

    if vi.meta["kind"] == "exact":
        return faiss.vector_to_array(vi.index.id_map).astype(np.int64)
    invlists, out = vi.index.invlists, []
    for lst in range(vi.index.nlist):
        size = invlists.list_size(lst)
        if size:
            out.append(faiss.rev_swig_ptr(invlists.get_ids(lst), size).copy())
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)


def _sync(s, e: Embedder, vi: VectorIndex, last, on_progress) -> None:
    """Add the vectors the index lacks, remove the ids the database no longer has, and replace
    those written since the index was saved (``last``: the fingerprint's newest write then)."""
    held, wanted = _held_ids(vi), embeddings.image_ids(s, e)
    gone = np.setdiff1d(held, wanted, assume_unique=True)
    rewritten = np.intersect1d(embeddings.written_since(s, e, last), held)  # an id reused
    drop = np.union1d(gone, rewritten)
    if len(drop):
        vi.index.remove_ids(drop.astype(np.int64))
    new = np.setdiff1d(wanted, np.setdiff1d(held, drop, assume_unique=True), assume_unique=True)
    for i in range(0, len(new), CHUNK):
        ids, vecs = embeddings.vectors(s, e, new[i:i + CHUNK].tolist())
        vi.index.add_with_ids(vecs, ids)
        if on_progress:
            on_progress(i + len(ids), len(new))


def _load(path: Path, *, mapped: bool = False) -> VectorIndex | None:
    """The index saved at ``path``; ``mapped``: an inverted file's lists mapped from the file,
    read-only (a search reads the lists it probes: 1M vectors open in milliseconds, not seconds)."""
    import faiss

    meta_path = path.with_suffix(".json")
    if not (path.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mapped and meta.get("kind") == "ivf" else 0
        return VectorIndex(faiss.read_index(str(path), flags), meta, path)
    except (RuntimeError, ValueError, OSError):  # a torn or foreign file: built again
        return None


def _save(vi: VectorIndex, path: Path) -> None:
    """Write beside, then rename: a reader never sees half a file, two writers leave one whole."""
    import faiss

    # The index first: a reader that sees the old description checks it again.
    atomic.write(path, lambda tmp: faiss.write_index(vi.index, str(tmp)))
    atomic.write_text(path.with_suffix(".json"), json.dumps(vi.meta))
    vi.path = path
