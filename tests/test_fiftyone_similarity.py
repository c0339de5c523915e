"""`browse`'s similarity index on FiftyOne's real database: the stored vectors on the samples, a
Brain index over them that sorts by similarity as the geometry says, refreshed when new vectors
arrive (no rebuild), and the `unfamiliar` / `outliers` saved views.

The vectors are written straight into the library for an embedder of known geometry (as in
tests/test_embedding_pairs.py), so which images are nearest is known exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from conftest import as_json, error
from curator import embeddings, filters
from curator import fiftyone_similarity as fsim
from curator import fiftyone_internals
from curator import fiftyone_sync as fs
from curator.library.inserts import insert_new
from curator.library.models import Embedder, Embedding

fo = pytest.importorskip("fiftyone")

DIM = 16
KEY, FIELD = fsim.names("geo")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _near(base: np.ndarray, cos: float, seed: int) -> np.ndarray:
    """A unit vector at cosine ``cos`` from unit ``base``."""
    other = np.random.default_rng(seed).normal(size=DIM)
    other = _unit(other - other @ base * base)
    return cos * base + np.sqrt(1 - cos ** 2) * other


def geometry(lib) -> dict[str, np.ndarray]:
    """Each image's vector by file name: k2, k3, k4 at cosine 0.98, 0.9, 0.75 from k1; p1 at
    0.99 from w1; every other image at random (16-d: far from each other)."""
    rng = np.random.default_rng(7)
    vecs = {name: _unit(rng.normal(size=DIM)) for name in sorted(lib.by_name)}
    for name, cos in (("k2.png", 0.98), ("k3.png", 0.9), ("k4.png", 0.75)):
        vecs[name] = _near(vecs["k1.png"], cos, len(name) + int(cos * 100))
    vecs["p1.png"] = _near(vecs["w1.png"], 0.99, 3)
    return vecs


def store(lib, vecs: dict[str, np.ndarray], names) -> None:
    """Store the vectors of ``names`` under the embedder ``geo`` (made on first use)."""
    with lib.session() as s:
        e = s.scalar(select(Embedder).where(Embedder.name == "geo")) or embeddings._add(
            s, name="geo", kind="model", model="geometry", weights="geometry.pt", dim=DIM)
        insert_new(s, Embedding, [{"embedder_id": e.id, "image_id": lib.by_name[n],
                                   "vector": vecs[n].astype(np.float16).tobytes()} for n in names])


def nearest(lib, name: str, k: int) -> list[str]:
    """The app's "sort by similarity" from one sample: the k nearest, itself first, by file name."""
    dataset = fs.open_dataset(lib, create=False)
    sample_id = dataset.match(fo.ViewField("curator_id") == lib.by_name[name]).first().id
    return [p.rsplit("/", 1)[1] for p in dataset.sort_by_similarity(sample_id, k=k, brain_key=KEY).values("filepath")]


def view_ids(lib, view: str) -> list[int]:
    return fs.open_dataset(lib, create=False).load_saved_view(view).values("curator_id")


def test_the_index_sorts_by_the_stored_vectors_and_the_embedding_views_are_saved(known):
    vecs = geometry(known)
    store(known, vecs, known.by_name)
    result = fs.sync(known)
    with known.session() as s:
        fingerprint = list(embeddings.fingerprint(s, embeddings.find_embedder(s, "geo")))
    assert result["similarity"] == {"embedder": "geo", "brain_key": KEY, "field": FIELD, "fingerprint": fingerprint,
                                    "samples": 18, "written": 18}
    dataset = fs.open_dataset(known, create=False)
    assert dataset.list_brain_runs() == [KEY]
    config = dataset.get_brain_info(KEY).config
    assert (config.method, config.embeddings_field, config.model, config.metric) == ("sklearn", FIELD, None, "cosine")
    # the vectors on the samples are the library's (unit length, float32)
    stored = dict(zip(*dataset.values(["curator_id", FIELD])))
    with known.session() as s:
        ids, expected = embeddings.vectors(s, embeddings.find_embedder(s, "geo"), list(stored))
    assert np.array_equal(np.stack([stored[i] for i in ids.tolist()]), expected) and expected.dtype == np.float32
    assert nearest(known, "k1.png", 4) == ["k1.png", "k2.png", "k3.png", "k4.png"]
    assert nearest(known, "w1.png", 2) == ["w1.png", "p1.png"]
    # the saved views are find's answers, in order
    for view in ("unfamiliar", "outliers"):
        found = [r["image_id"] for r in filters.find(known, filters.Query(embedder="geo", **{view: True}))["rows"]]
        assert found and view_ids(known, view) == found, view
        assert dataset.get_saved_view_info(view)["description"] == f"curator find --{view} --embedder geo"
    assert known.by_name["p1.png"] not in view_ids(known, "unfamiliar")[:2]  # a copy of w1: familiar


def test_new_vectors_reach_the_index_without_a_rebuild(known, cli):
    vecs = geometry(known)
    store(known, vecs, [n for n in known.by_name if not n.startswith("p")])  # the pool not embedded yet
    first = fs.sync(known)["similarity"]
    assert (first["samples"], first["written"]) == (13, 13)
    dataset = fs.open_dataset(known, create=False)
    built = dataset.get_brain_info(KEY).timestamp
    assert "p1.png" not in nearest(known, "w1.png", 18)  # not in the index yet
    store(known, vecs, [n for n in known.by_name if n.startswith("p")])
    again = fs.sync(known)["similarity"]
    assert (again["samples"], again["written"]) == (18, 5)
    assert nearest(known, "w1.png", 2) == ["w1.png", "p1.png"]
    assert fs.open_dataset(known, create=False).get_brain_info(KEY).timestamp == built  # the same index
    assert fs.sync(known)["similarity"]["written"] == 0  # nothing new: nothing read
    # the CLI: the index in the summary, an unknown embedder is a one-line error
    out = cli("browse", "--no-launch", "--embedder", "geo")
    assert out.exit_code == 0 and f"Similarity index {KEY} (embedder geo): 18 samples" in out.output
    assert as_json(cli("browse", "--no-launch", "--json"))["similarity"]["brain_key"] == KEY
    assert error(cli("browse", "--no-launch", "--embedder", "nope")).startswith("Error: no embedder or run named 'nope'")


def test_write_vectors_stores_what_set_values_stores(known):
    # FiftyOne's internals: sync writes a VectorField's bytes itself (set_values is 3x slower);
    # FiftyOne reads them back as the same arrays, as it reads what its own set_values stored
    fs.sync(known)
    dataset = fs.open_dataset(known, create=False)
    ids = dataset.values("id")
    vectors = _unit(np.random.default_rng(0).normal(size=(len(ids), 1280))).astype(np.float32)
    for field in ("ours", "theirs"):
        dataset.add_sample_field(field, fo.VectorField)
    fiftyone_internals.write_vectors(dataset, "ours", ids, vectors)
    dataset.set_values("theirs", list(vectors))
    ours, theirs = dataset.values(["ours", "theirs"])
    assert all(np.array_equal(a, b) and a.dtype == b.dtype == np.float32 for a, b in zip(ours, theirs))
    assert np.array_equal(np.stack(ours), vectors)
    assert dataset.exists("ours").count() == len(ids)
