"""Embedding neighbours: more like this (``similar``), unfamiliar images and outliers (``find
--unfamiliar`` / ``--outliers``).

Every score is a cosine similarity of an embedder's unit vectors (``curator.embeddings``):

- ``similar``: an image's mean cosine similarity to the seeds. That is its dot product with the
  seeds' mean vector, so one search of the library's index (``curator.vector_index``) ranks the
  whole library. The mean beat the max of the similarities on sample_data (EfficientNet-Lite0,
  224 px, 3 seeds of one class, 20 draws per class): precision@10 0.80 against 0.78, @20 0.71
  against 0.68. The index holds every image, so ``similar`` over-fetches ``OVERFETCH * k``
  neighbours, keeps those in the pool (in SQL) and widens fourfold until it has ``k`` or has
  read the whole index.
- ``unfamiliar``: how much more an image resembles the other candidates (the pool asked about)
  than the labelled images: the mean similarity to its 20 nearest candidates less that to the
  labelled images (``unfamiliarity``). New classes come first: crowds of look-alikes
  that no labelled image resembles.
- ``outliers``: 1 - the mean similarity to the ``NEIGHBOURS`` nearest other images of the same
  class. Nearest neighbours, not the class's mean vector: a class with two looks (flags drawn
  flat and waving) has a mean between them, far from both, while an image's nearest classmates
  are in its own look; a mislabelled image has none near it.

The functions over arrays come first; the library work (which images, which vectors) after.
``find_ranked`` answers ``curator.filters.find`` for ``unfamiliar`` and ``outliers``: the SQL
filter gives the candidates (``curator.filter_sql.candidates``), the score orders them, then
``offset`` and ``limit`` cut the page. A run is read only when an option needs its predictions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
from sqlalchemy import select

from curator import embeddings, filter_sql, vector_index
from curator.errors import InvalidInput
from curator.library import Library
from curator.library.models import ACTIVE, LABELLED, UNKNOWN, UNLABELLED, Embedder, Image, label_text

POOLS = ("unlabelled", "unknown", "labelled", "all")
OVERFETCH = 4  # neighbours fetched per wanted row, and the widening factor
NEIGHBOURS = 10  # classmates an outlier score averages over
CROWD = 20  # unfamiliar: the nearest candidates and labelled images an image is compared with
CHUNK = 20_000  # candidates scored at a time: vectors in memory stay bounded


# -- scores over arrays ---------------------------------------------------------------------------


def seed_query(seeds: np.ndarray) -> tuple[np.ndarray, float]:
    """The unit query ``(1, D)`` of seed vectors ``(S, D)``, and the mean vector's length: a
    similarity to the query times that length is the mean similarity to the seeds."""
    mean = seeds.mean(axis=0, dtype=np.float32)
    length = float(np.linalg.norm(mean))
    if length == 0:
        raise InvalidInput(f"the {len(seeds)} seed images cancel out (their mean vector is zero): give others")
    return (mean / length)[None, :], length


def nearest_other(index: vector_index.VectorIndex, ids: np.ndarray, vectors: np.ndarray,
                  k: int) -> tuple[np.ndarray, np.ndarray]:
    """Similarities of each row of ``vectors`` ``(N, D)`` to its ``k`` nearest in ``index`` other
    than itself (its id in ``ids``): ``(N, k)`` sims and a mask ``(N, k)`` of the hits found."""
    sims, hits = index.search(vectors, k + 1)
    found = (hits >= 0) & (hits != ids[:, None])
    keep = found & (np.cumsum(found, axis=1) <= k)
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # the kept hits first, in rank order
    return np.take_along_axis(sims, order, axis=1), np.take_along_axis(keep, order, axis=1)


def unfamiliarity(labelled: vector_index.VectorIndex, everyone: vector_index.VectorIndex, ids: np.ndarray,
                  vectors: np.ndarray, population: np.ndarray, k: int = CROWD) -> np.ndarray:
    """How much more each row resembles its own population than the labelled images ``(N,)``: the
    mean similarity to its ``k`` nearest of ``population`` (sorted ids, found through
    ``everyone``, the index of every image) less its similarity to the labelled images
    (``labelled``): the mean of the ``k`` nearest and the nearest, halved. Itself left out.

    A new class is a crowd of pool images that resemble each other and no labelled image; an
    image of a known class has labelled look-alikes as near as its pool ones. The plain distance
    to the nearest labelled image ranked the held-out class at 0-2x its base rate with an
    ImageNet backbone (its look-alikes are labelled: a face emoji among face emoji); this at
    3.3-21x on emoji views, photo crops and digits (k of 5, 10 and 20 and the labelled part as
    the nearest, the mean or both were tried there: benchmarks/RESULTS.md).
    """
    lab_sims, lab_found = nearest_other(labelled, ids, vectors, k)
    lab_mean = np.where(lab_found, lab_sims, 0).sum(axis=1) / np.maximum(lab_found.sum(axis=1), 1)
    lab = (lab_mean + np.where(lab_found[:, 0], lab_sims[:, 0], 0)) / 2  # one labelled copy counts too
    sims, hits = everyone.search(vectors, OVERFETCH * k + 1)
    mine = np.isin(hits, population) & (hits != ids[:, None])
    mine &= np.cumsum(mine, axis=1) <= k
    crowd = np.where(mine, sims, 0).sum(axis=1) / k  # fewer than k near: the crowd is thinner
    return (crowd - lab).astype(np.float32)


def outlyingness(index: vector_index.VectorIndex, ids: np.ndarray, vectors: np.ndarray,
                 k: int = NEIGHBOURS) -> np.ndarray:
    """1 - each row's mean similarity to its ``k`` nearest others in ``index`` (its classmates)
    ``(N,)``; fewer where the class has fewer, NaN where it has none."""
    sims, found = nearest_other(index, ids, vectors, k)
    n = found.sum(axis=1)
    mean = np.where(found, sims, 0).sum(axis=1) / np.maximum(n, 1)
    return np.where(n > 0, 1 - mean, np.nan).astype(np.float32)


def ranked(ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``ids`` and ``scores`` sorted highest score first, ties by image id (a stable page)."""
    order = np.lexsort((ids, -scores))
    return ids[order], scores[order]


# -- which embedder -------------------------------------------------------------------------------


def pick_embedder(s, ref: str | None) -> Embedder:
    """``embeddings.find_embedder``, refusing one with no vectors yet with the command to run."""
    e = embeddings.find_embedder(s, ref)
    if not embeddings.has_any(s, e):
        raise InvalidInput(f"embedder {e.name} has no embeddings yet: {embed_hint(s, e, 'all')}")
    return e


def embed_hint(s, e: Embedder, pool: str) -> str:
    """The command that gives ``pool``'s images a vector under ``e``."""
    if e.kind == "run":
        run = e.name.removeprefix("run:")
        return (f"run `curator bulk-identify --run {run}{'' if pool == UNLABELLED else f' --pool {pool}'}`"
                f" or `curator embed --weights {embeddings.LITE0}`")
    weights = "--pretrained" if e.weights == "pretrained" else f"--weights {e.weights}"
    name = "" if e.name == embeddings.default_name(e.model, e.weights) else f" --name {e.name}"
    size = f" --size {e.input_size}" if e.input_size else ""
    return f"run `curator embed --model {e.model} {weights}{size} --pool {pool}{name}`"


# -- similar: more like these ---------------------------------------------------------------------


def similar(lib: Library, seeds: Sequence[str], *, embedder: str | None = None, pool: str = UNLABELLED,
            k: int = 50) -> dict:
    """The ``k`` images of ``pool`` most like the seed images, by mean cosine similarity to them.

    Args:
        seeds: image references (ids, imported paths, sha256 prefixes), as ``curator show`` takes.
        embedder: whose vectors (``embeddings.find_embedder``; default the newest ``embed`` one).
        pool: ``unlabelled``, ``unknown``, ``labelled`` or ``all`` (every active image).

    Returns:
        A result shaped like ``curator.filters.find``'s, so ``filters.act`` acts on it: rows of
        ``image_id``, ``path``, ``label``, ``similarity``... highest similarity first, seeds left out.

    Raises:
        ImageNotFound: a reference matches no image.
        NotFound: no such embedder (or none at all yet).
        InvalidInput: a bad pool or k, or a seed with no vector under the embedder.
    """
    from curator.catalog import find_image

    if pool not in POOLS:
        raise InvalidInput(f"--pool {pool}: use one of {', '.join(POOLS)}")
    if k < 1:
        raise InvalidInput(f"--k {k}: give 1 or more")
    if not seeds:
        raise InvalidInput("name one or more seed images: ids, imported paths or sha256 prefixes")
    with lib.session() as s:
        seed_ids = list(dict.fromkeys(find_image(s, ref).id for ref in seeds))
        e = pick_embedder(s, embedder)
        found, vectors = embeddings.vectors(s, e, seed_ids)
        if len(found) < len(seed_ids):
            lacking = next(i for i in seed_ids if i not in set(found.tolist()))
            raise InvalidInput(f"image {lacking} has no embedding under {e.name}: {embed_hint(s, e, 'all')}")
    query, length = seed_query(vectors)
    ids, sims = _nearest_in_pool(lib, vector_index.open_index(lib, e), query, set(seed_ids), pool, k)
    rows = show(lib, ids, None)
    for row, sim in zip(rows, sims):
        row["similarity"] = round(float(sim) * length, 4)
    return {"run": None, "embedder": e.name, "detail": f"curator similar, embedder {e.name}", "notes": [],
            "query": {"seeds": seed_ids, "embedder": e.name, "pool": pool, "k": k}, "total": len(rows),
            "rows": rows, "classes": {}}


def _nearest_in_pool(lib: Library, index, query: np.ndarray, exclude: set[int], pool: str,
                     k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest ids of ``pool`` to ``query`` (not in ``exclude``) and their similarities."""
    fetch = OVERFETCH * k + len(exclude)
    while True:
        sims, hits = index.search(query, fetch)
        sims, hits = sims[0], hits[0]
        read = (hits >= 0) & ~np.isin(hits, list(exclude))
        with lib.session() as s:
            kept = np.isin(hits, list(_in_pool(s, hits[read].tolist(), pool))) & read
        exhausted = fetch >= index.size or (hits < 0).any()
        if kept.sum() >= k or exhausted:
            ids, sims = ranked(hits[kept], sims[kept])
            return ids[:k], sims[:k]
        fetch *= OVERFETCH


def _in_pool(s, ids: list[int], pool: str) -> set[int]:
    where = [Image.status == ACTIVE] + ([] if pool == "all" else [Image.label_state == pool])
    found: set[int] = set()
    for i in range(0, len(ids), embeddings.CHUNK):
        found.update(s.scalars(select(Image.id).where(Image.id.in_(ids[i:i + embeddings.CHUNK]), *where)))
    return found


# -- find --unfamiliar / --outliers ---------------------------------------------------------------

RUN_OPTIONS = ("run", "predicted", "min_confidence", "max_confidence", "split")


def find_ranked(lib: Library, q) -> dict:
    """``curator.filters.find`` for ``q.unfamiliar`` or ``q.outliers`` (``q`` checked there):
    ``q``'s matches ordered by the embedding score, most unfamiliar (or outlying) first.

    The run is read only when an option needs its predictions (``--run``, ``--class``,
    confidences, ``--split``, ``--low-count``...): a library with ``curator embed`` vectors and
    no run answers. Matches with no vector under the embedder are left out, with a note.
    """
    from curator import filters
    from curator.runs import pick_run

    with lib.session() as s:
        filters.check_names(s, q)
        run, notes = None, []
        if any(getattr(q, name) is not None for name in RUN_OPTIONS) or q.low_count or q.synthetic_dependent:
            run, notes = pick_run(s, q.run, LABELLED if q.outliers else filters.query_pool(q))
            filters.check_predicted(s, q, run)
        e = pick_embedder(s, q.embedder)
        stmt = filter_sql.candidates(q, run)
        if q.outliers:
            stmt = stmt.where(Image.label_state == LABELLED)
        elif q.label is None and not q.unknown:
            stmt = stmt.where(Image.label_state == UNLABELLED)
        candidates = np.fromiter(s.scalars(stmt), dtype=np.int64)
        ids, scores = _outliers(s, e, candidates) if q.outliers else unfamiliar_scores(lib, s, e, candidates)
        if len(ids) < len(candidates):
            pool = LABELLED if q.outliers else UNKNOWN if q.unknown or q.label == UNKNOWN else UNLABELLED
            notes.append(f"{len(candidates) - len(ids)} of {len(candidates)} matches have no embedding under"
                         f" {e.name}{' or no classmate with one' if q.outliers else ''}: {embed_hint(s, e, pool)}")
        run_name, name = (run.name if run else None), e.name
    ids, scores = ranked(ids, scores)
    stop = None if q.limit is None else q.offset + q.limit
    rows = show(lib, ids[q.offset:stop], run)
    for row, score in zip(rows, scores[q.offset:stop]):
        row["score"] = round(float(score), 4)
    detail = f"curator find --{'outliers' if q.outliers else 'unfamiliar'}, embedder {name}"
    return {"run": run_name, "embedder": name, "detail": detail + (f", run {run_name}" if run_name else ""),
            "notes": notes, "query": asdict(q), "total": len(ids), "rows": rows, "classes": {}}


def _labelled_ids(s, class_id: int | None = None) -> list[int]:
    where = [Image.status == ACTIVE, Image.label_state == LABELLED]
    return list(s.scalars(select(Image.id).where(*where, *([] if class_id is None else [Image.class_id == class_id]))))


def unfamiliar_scores(lib: Library, s, e: Embedder, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(candidates with a vector, their ``unfamiliarity``): the candidates are the population."""
    ref_ids, ref = embeddings.vectors(s, e, _labelled_ids(s))
    if not len(ref_ids):
        raise InvalidInput(f"no labelled image has an embedding under {e.name}: {embed_hint(s, e, LABELLED)}")
    labelled = vector_index.memory_index(ref_ids, ref, queries=len(candidates))
    del ref
    everyone = vector_index.open_index(lib, e)
    population = np.sort(candidates)
    out_ids, out = [], []
    for i in range(0, len(candidates), CHUNK):
        ids, vectors = embeddings.vectors(s, e, candidates[i:i + CHUNK].tolist())
        out_ids.append(ids)
        out.append(unfamiliarity(labelled, everyone, ids, vectors, population))
    return _joined(out_ids, out)


def _outliers(s, e: Embedder, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(candidates scored, their outlyingness) within each one's class.

    Two queries find every labelled classmate; vectors are read for classes together, about
    ``CHUNK`` images at a time, so memory stays bounded and a thousand small classes cost a
    few reads, not two queries each."""
    classes: set[int] = set()
    for i in range(0, len(candidates), embeddings.CHUNK):
        chunk = candidates[i:i + embeddings.CHUNK].tolist()
        classes.update(s.scalars(select(Image.class_id).where(Image.id.in_(chunk)).distinct()))
    members: dict[int, list[int]] = {c: [] for c in classes}
    ordered = sorted(members)
    for i in range(0, len(ordered), 500):  # one query per 500 classes, not one per class
        stmt = select(Image.id, Image.class_id).where(Image.status == ACTIVE, Image.label_state == LABELLED,
                                                       Image.class_id.in_(ordered[i:i + 500]))
        for image_id, class_id in s.execute(stmt):
            members[class_id].append(image_id)
    wanted, out_ids, out = set(candidates.tolist()), [], []
    batch: list[int] = []
    for c in ordered + [None]:
        if c is not None:
            batch.append(c)
        if batch and (c is None or sum(len(members[b]) for b in batch) >= CHUNK):
            got, vecs = embeddings.vectors(s, e, [i for b in batch for i in members[b]])
            where = {image_id: j for j, image_id in enumerate(got.tolist())}
            for b in batch:
                rows = [where[i] for i in members[b] if i in where]
                scored = [j for j in rows if int(got[j]) in wanted]
                if len(rows) >= 2 and scored:
                    out_ids.append(got[scored])
                    out.append(_class_outlyingness(got[rows], vecs[rows], got[scored], vecs[scored]))
            batch = []
    return _joined(out_ids, out)


SMALL_CLASS = 4096  # classmates compared all at once (a matrix product); more: through an index


def _class_outlyingness(ref_ids: np.ndarray, ref: np.ndarray, ids: np.ndarray, vectors: np.ndarray,
                        k: int = NEIGHBOURS) -> np.ndarray:
    """``outlyingness`` of ``vectors`` among their class ``ref`` (which holds them)."""
    if len(ref) > SMALL_CLASS:
        return outlyingness(vector_index.memory_index(ref_ids, ref, queries=len(ids)), ids, vectors, k)
    sims = vectors @ ref.T
    sims[ids[:, None] == ref_ids[None, :]] = -np.inf  # itself
    k = min(k, len(ref) - 1)
    top = -np.partition(-sims, k - 1, axis=1)[:, :k]
    return (1 - top.mean(axis=1)).astype(np.float32)


def _joined(ids: list[np.ndarray], scores: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(ids), np.concatenate(scores)


def show(lib: Library, ids: np.ndarray, run) -> list[dict]:
    """The rows shown for ``ids``, in their order: as ``find`` shows them (no prediction
    without a run)."""
    if not len(ids):
        return []
    found, ids = {}, ids.tolist()
    with lib.session() as s:
        for i in range(0, len(ids), embeddings.CHUNK):
            found.update((r.image_id, r) for r in s.execute(filter_sql.shown(ids[i:i + embeddings.CHUNK], run)))
    return [_row(found[i]) for i in ids if i in found]


def _row(r) -> dict:
    label = label_text(r.label_state, r.class_name, r.subclass_name)
    return {"image_id": r.image_id, "path": r.path, "label": label, "predicted": r.predicted,
            "confidence": r.confidence, "top_k": json.loads(r.top_k) if r.top_k else [], "split": r.split,
            "staged": r.staged, "synthetic": r.synthetic}
