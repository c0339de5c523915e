"""The library's embeddings in its FiftyOne dataset: a similarity index the app sorts by.

One embedder at a time, the one ``browse --embedder E`` names or else the one ``find
--unfamiliar`` uses by default (``curator.embeddings.find_embedder``), and only when it has
vectors. Each sample whose image has a vector under it carries that vector (unit length,
float32) in the field ``embedding_<E>``, and the FiftyOne Brain similarity index
``similarity_<E>`` (scikit-learn backend, cosine) is registered over that field with
``compute_similarity(..., embeddings=False, embeddings_field=...)``: from the stored vectors,
with no model and nothing recomputed.

That index reads its vectors from the field each time it is loaded (the app loads it for "sort
by similarity"), so a refresh only writes the vectors of samples that lack one: the samples the
sync added, and every sample again after ``curator embed`` or ``bulk-identify`` stored new
vectors (``embeddings.fingerprint`` changed; it is kept in ``dataset.info["similarity"]``).
When neither happened, nothing is read. A sample that leaves the dataset takes its vector
with it. Choosing another embedder drops the last one's field and index.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from curator import embeddings
from curator.errors import NotFound
from curator.library import Library
from curator.library.models import Embedder

CHUNK = 2000  # vectors read from the library and written to the dataset at a time (~10 MB at 1280-d)
INFO = "similarity"  # dataset.info key


def names(embedder: str) -> tuple[str, str]:
    """(brain key, sample field) for an embedder's name: Python identifiers, as FiftyOne wants."""
    slug = re.sub(r"\W+", "_", embedder).strip("_").lower() or "embedder"
    return f"similarity_{slug}", f"embedding_{slug}"


def pick(lib: Library, ref: str | None) -> tuple[Embedder | None, list[str]]:
    """The embedder whose vectors the dataset shows, detached, or None (no vectors); and notes.

    Raises:
        NotFound: ``ref`` names no embedder or run.
    """
    with lib.session() as s:
        try:
            e = embeddings.find_embedder(s, ref)
        except NotFound:
            if ref is not None:
                raise
            return None, []
        if not embeddings.has_any(s, e):
            from curator.similarity import embed_hint

            return None, ([f"embedder {e.name} has no embeddings yet, so no similarity index:"
                           f" {embed_hint(s, e, 'all')}"] if ref is not None else [])
        s.expunge(e)
        return e, []


def refresh(lib: Library, dataset, e: Embedder | None, sample_ids: dict[int, str], *, added: int = 0,
            say: Callable[[str], None] = lambda msg: None) -> dict | None:
    """Bring the dataset's vectors and similarity index up to date with ``e``'s (none: drop them).

    Args:
        sample_ids: the dataset's sample id of each image it holds.
        added: how many samples this sync added (they have no vector yet).

    Returns:
        ``{"embedder", "brain_key", "field", "fingerprint", "samples", "written"}``: ``samples``
        holding a vector, ``written`` this time; None without an embedder, or when no sample
        the dataset holds has a vector under it (then there is no index).
    """
    info = dataset.info.get(INFO) or {}
    if info and (e is None or info["embedder"] != e.name):
        _drop(dataset, info)
        info = {}
    if e is None:
        return None
    key, field = names(e.name)
    with lib.session() as s:
        fingerprint = list(embeddings.fingerprint(s, e))
    if info.get("fingerprint") == fingerprint and not added and key in dataset.list_brain_runs():
        return {**info, "written": 0}
    if key not in dataset.list_brain_runs():
        _index(dataset, key, field)  # before the vectors: registering it then reads none of them
    written, held = _write(lib, dataset, e, field, sample_ids, say)
    if written:
        dataset.clear_cache()  # an index this process loaded before: the next use reads the field again
    if not held:
        return _drop(dataset, {"brain_key": key, "field": field})
    info = {"embedder": e.name, "brain_key": key, "field": field, "fingerprint": fingerprint, "samples": held}
    dataset.info = {**dataset.info, INFO: info}
    dataset.save()
    return {**info, "written": written}


def _write(lib: Library, dataset, e: Embedder, field: str, sample_ids: dict[int, str], say) -> tuple[int, int]:
    """Write the vectors of the samples that lack one, CHUNK at a time: (written, now held)."""
    from curator.fiftyone_internals import write_vectors

    have = set(dataset.exists(field).values("curator_id"))
    missing = [i for i in sample_ids if i not in have]
    written = 0
    for at in range(0, len(missing), CHUNK):
        with lib.session() as s:
            ids, vectors = embeddings.vectors(s, e, missing[at:at + CHUNK])
        write_vectors(dataset, field, [sample_ids[i] for i in ids.tolist()], vectors)
        written += len(ids)
        if written:
            say(f"writing {e.name} vectors: {written}")
    return written, len(have & sample_ids.keys()) + written


def _index(dataset, key: str, field: str) -> None:
    """Register the similarity index over ``field``: no model; it reads the field when loaded."""
    import fiftyone as fo
    import fiftyone.brain as fob

    if not dataset.has_sample_field(field):
        dataset.add_sample_field(field, fo.VectorField)
    fob.compute_similarity(dataset, embeddings=False, embeddings_field=field, brain_key=key,
                           backend="sklearn", metric="cosine", progress=False)


def _drop(dataset, info: dict) -> None:
    """Remove an embedder's index and field (another embedder is shown now, none, or no vectors)."""
    if info.get("brain_key") in dataset.list_brain_runs():
        dataset.delete_brain_run(info["brain_key"])
    if info.get("field") and dataset.has_sample_field(info["field"]):
        dataset.delete_sample_field(info["field"])
    dataset.info = {k: v for k, v in dataset.info.items() if k != INFO}
    dataset.save()
