"""The nearest-neighbour index beside the library: right neighbours on vectors whose geometry is
known, brought up to date in place when images gain or lose vectors, rebuilt from a torn file, and
an inverted file past EXACT_UP_TO that finds what exact search finds. Same on PostgreSQL."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from sqlalchemy import delete, func, insert, select

from curator import embeddings, vector_index
from curator.library.models import Embedder, Embedding, Image

D = 16


def clusters(n_clusters: int, per: int, d: int = D, *, spread: float = 0.15, seed: int = 0) -> np.ndarray:
    """``n_clusters * per`` unit vectors, ``per`` around each of ``n_clusters`` random unit centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    v = np.repeat(centres, per, axis=0) + spread * rng.normal(size=(n_clusters * per, d)) / np.sqrt(d)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def add_images(lib, vectors: np.ndarray, embedder: str = "synthetic") -> list[int]:
    """An image row per vector (no file: the index never reads one) and its float16 vector under
    ``embedder`` (made on first use); returns the new images' ids in the vectors' order."""
    with lib.session() as s:
        e = s.scalar(select(Embedder).where(Embedder.name == embedder))
        if e is None:
            e = Embedder(name=embedder, kind="model", model="synthetic", weights="none", dim=vectors.shape[1])
            s.add(e)
            s.flush()
        shas = [uuid.uuid4().hex * 2 for _ in range(len(vectors))]
        if not shas:
            return []
        s.execute(insert(Image), [dict(sha256=sha, bytes=1, path=f"/synthetic/{sha[:12]}.png", source="test")
                                  for sha in shas])
        by_sha = dict(s.execute(select(Image.sha256, Image.id).where(Image.sha256.in_(shas))).all())
        ids = [by_sha[sha] for sha in shas]
        s.execute(insert(Embedding), [dict(embedder_id=e.id, image_id=i, vector=v.astype(np.float16).tobytes())
                                      for i, v in zip(ids, vectors)])
    return ids


def delete_images(lib, ids) -> None:
    with lib.session() as s:
        s.execute(delete(Image).where(Image.id.in_([int(i) for i in ids])))  # their vectors go with them


def embedder(lib, name: str = "synthetic") -> Embedder:
    with lib.session() as s:
        return embeddings.find_embedder(s, name)


def held(vi) -> list[int]:
    return sorted(vector_index._held_ids(vi).tolist())


def _refuse(*args, **kwargs):
    raise AssertionError("rebuilt: the index should have been brought up to date in place")


def test_nearest_neighbours_are_the_known_ones(library):
    v = clusters(3, 10)
    ids = np.array(add_images(library, v))
    vi = vector_index.open_index(library, embedder(library))
    assert vi.path == library.folder / "embeddings" / f"{embedder(library).id}.faiss"
    meta = json.loads(vi.path.with_suffix(".json").read_text())
    with library.session() as s:
        last = s.scalar(select(func.max(Embedding.id)))
    assert meta == {"kind": "exact", "dim": D, "fingerprint": [30, int(ids.sum()), last]}
    sims, found = vi.search(v, 10)
    assert (found[:, 0] == ids).all() and np.allclose(sims[:, 0], 1, atol=1e-2)  # each finds itself
    for row, i in enumerate(ids):  # and the other nine of its cluster, nearest first
        assert set(found[row]) == set(ids[row // 10 * 10:row // 10 * 10 + 10])
        exact = v[row] @ v[np.searchsorted(ids, found[row])].T
        assert np.allclose(sims[row], exact, atol=1e-2) and (np.diff(sims[row]) <= 1e-6).all()
    sims, found = vi.search(v[0], 100)  # past the end: all there is
    assert found.shape == (1, 30) and set(found[0]) == set(ids)


def test_an_index_with_no_vectors_answers_nothing_then_fills(library):
    add_images(library, np.zeros((0, D), np.float32))
    vi = vector_index.open_index(library, embedder(library))
    sims, found = vi.search(np.ones(D, np.float32), 5)
    assert vi.size == 0 and (found == -1).all()
    ids = add_images(library, clusters(2, 3))
    vi = vector_index.open_index(library, embedder(library))
    assert held(vi) == ids and vi.meta["dim"] == D


def test_refresh_adds_new_images_and_removes_deleted_ones_in_place(library, monkeypatch):
    v = clusters(4, 10)
    ids = add_images(library, v)
    vi = vector_index.open_index(library, embedder(library))
    built = vi.path.stat().st_mtime_ns
    monkeypatch.setattr(vector_index, "_build", _refuse)
    assert vector_index.open_index(library, embedder(library)).path.stat().st_mtime_ns == built  # up to date: not saved

    gone = [ids[3], ids[17], ids[-1]]  # the newest too: SQLite may give its id to the next image
    delete_images(library, gone)
    fresh = clusters(2, 5, seed=1)
    new = add_images(library, fresh)
    vi = vector_index.open_index(library, embedder(library))
    want = sorted(set(ids) - set(gone) | set(new))
    assert held(vi) == want and vi.meta["kind"] == "exact"
    with library.session() as s:
        now = list(embeddings.fingerprint(s, embedder(library)))
        assert vi.meta["fingerprint"] == now == [len(want), sum(want), s.scalar(select(func.max(Embedding.id)))]
    sims, found = vi.search(fresh, 1)
    assert list(found[:, 0]) == new and np.allclose(sims[:, 0], 1, atol=1e-2)  # the new vectors, not the old
    assert set(vi.search(v[3], 50)[1][0]) == set(want)  # the deleted are gone (an id given again is the new image)
    assert held(vector_index._load(vi.path)) == want  # what was saved


@pytest.mark.parametrize("tear", [
    lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    lambda p: p.write_bytes(b"not an index"),
    lambda p: p.with_suffix(".json").write_text("{"),
    lambda p: p.with_suffix(".json").unlink(),
])
def test_a_torn_index_is_built_again(library, tear):
    ids = add_images(library, clusters(2, 8))
    path = vector_index.open_index(library, embedder(library)).path
    tear(path)
    vi = vector_index.open_index(library, embedder(library))
    assert held(vi) == ids and held(vector_index._load(path)) == ids


def test_past_exact_up_to_an_inverted_file_finds_what_exact_search_finds(library, monkeypatch):
    monkeypatch.setattr(vector_index, "EXACT_UP_TO", 300)
    v = clusters(25, 40, d=32, spread=0.6)
    ids = np.array(add_images(library, v))
    vi = vector_index.open_index(library, embedder(library))
    assert (vi.meta["kind"], vi.meta["trained_on"], vi.size) == ("ivf", 1000, 1000)
    queries = v[::10]
    _, found = vi.search(queries, 10)
    exact = ids[np.argsort(-(queries @ v.T), axis=1)[:, :10]]
    recall = np.mean([len(set(f) & set(x)) / 10 for f, x in zip(found, exact)])
    assert recall >= 0.9, recall

    build = vector_index._build
    monkeypatch.setattr(vector_index, "_build", _refuse)  # grown by less than REBUILD_GROWTH: in place
    delete_images(library, ids[:50])
    new = add_images(library, clusters(5, 20, d=32, seed=2))
    vi = vector_index.open_index(library, embedder(library))
    assert (vi.meta["kind"], vi.meta["trained_on"]) == ("ivf", 1000)
    assert held(vi) == sorted([*ids[50:].tolist(), *new])
    monkeypatch.setattr(vector_index, "_build", build)
    delete_images(library, ids[50:])  # down to 100: exact again
    vi = vector_index.open_index(library, embedder(library))
    assert vi.meta["kind"] == "exact" and held(vi) == new


def test_a_runs_embedder_and_a_models_keep_separate_files(library):
    a = add_images(library, clusters(2, 4), "a")
    b = add_images(library, clusters(2, 4, seed=3), "b")
    ia, ib = (vector_index.open_index(library, embedder(library, n)) for n in ("a", "b"))
    assert ia.path != ib.path and held(ia) == a and held(ib) == b


def test_an_embedder_made_in_a_transaction_still_open_opens_its_index(library):
    """`find --unfamiliar --embedder RUN` makes the run's embedder row in find's transaction and
    opens the index before that commits: the index's own session cannot see the row yet."""
    with library.session() as s:
        e = Embedder(name="fresh", kind="model", model="synthetic", weights="none", dim=D)
        s.add(e)
        s.flush()
        vi = vector_index.open_index(library, e)
    assert vi.size == 0
