"""`dedup --embeddings`: near duplicates by embedding, grouped with the pHash pairs, kept in one split.

The vectors are written straight into the library for an embedder of known geometry, so which
pairs are near is known exactly; the images are real files (distinct pHashes). Their pictures are
unrelated, so the 256-bit detail check (curator.crop_hash) would turn every such pair away: these
tests switch it off (``OFF``) but the one that shows it.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from curator import dedup, embeddings, ingest, splits
from curator.library.inserts import insert_new
from curator.library.models import DuplicatePair, Embedding, Image

from conftest import as_json, error, write_image

DIM = 16
OFF = {"detail_threshold": 256}  # the vectors alone decide


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _store(lib, vectors: dict[int, np.ndarray], name: str = "geo") -> None:
    with lib.session() as s:
        e = embeddings._add(s, name=name, kind="model", model="geometry", weights=None, dim=DIM)
        insert_new(s, Embedding, [{"embedder_id": e.id, "image_id": i, "vector": _unit(v).astype(np.float16).tobytes()}
                                  for i, v in vectors.items()])


def _near(base: np.ndarray, cos: float, seed: int) -> np.ndarray:
    """A unit vector at cosine ``cos`` from unit ``base``."""
    other = np.random.default_rng(seed).normal(size=DIM)
    other = _unit(other - other @ base * base)
    return cos * base + np.sqrt(1 - cos ** 2) * other


@pytest.fixture
def geo(library, tmp_path):
    """24 labelled images in two classes (distinct pixels); vectors: 1~2 at 0.97, 3~4 at 0.93,
    every other image at random (16-d: far from each other)."""
    for k in range(24):
        write_image(tmp_path / "imgs" / ("cat" if k % 2 else "dog") / f"{k:02d}.png", seed=500 + k)
    ingest.import_paths(library, [tmp_path / "imgs"], labels_from_folders=True)
    with library.session() as s:
        ids = list(s.scalars(select(Image.id).order_by(Image.id)))
    rng = np.random.default_rng(0)
    vecs = {i: _unit(rng.normal(size=DIM)) for i in ids}
    a, b, c, d = ids[:4]
    vecs[b], vecs[d] = _near(vecs[a], 0.97, 1), _near(vecs[c], 0.93, 2)
    _store(library, vecs)
    library.ids = ids
    return library


def _pairs(lib) -> dict[frozenset, DuplicatePair]:
    with lib.session() as s:
        return {frozenset((p.image_a, p.image_b)): p for p in s.scalars(select(DuplicatePair))}


def test_pairs_at_or_above_the_similarity_are_stored_as_embedding_pairs(geo):
    a, b, c, d = geo.ids[:4]
    summary = dedup.find_duplicates(geo, embeddings="geo", min_similarity=0.95, **OFF)
    pairs = _pairs(geo)
    assert set(pairs) == {frozenset((a, b))} and summary.embedding_pairs == 1
    p = pairs[frozenset((a, b))]
    assert p.kind == "embedding" and p.similarity == pytest.approx(0.97, abs=0.005) and 0 <= p.distance <= 64
    dedup.find_duplicates(geo, embeddings="geo", min_similarity=0.9, **OFF)  # other settings: all again
    assert set(_pairs(geo)) == {frozenset((a, b)), frozenset((c, d))}
    groups = {frozenset(m["id"] for m in g["members"]) for g in dedup.list_groups(geo)}
    assert groups == {frozenset((a, b)), frozenset((c, d))}


def test_pairs_of_unrelated_pictures_are_turned_away_by_the_detail_check(geo):
    summary = dedup.find_duplicates(geo, embeddings="geo", min_similarity=0.95)
    assert (summary.embedding_pairs, summary.embedding_unlike_in_detail, len(_pairs(geo))) == (1, 1, 0)


def test_incremental_run_compares_only_what_was_embedded_since(geo, tmp_path):
    a = geo.ids[0]
    dedup.find_duplicates(geo, embeddings="geo", min_similarity=0.95, **OFF)
    again = dedup.find_duplicates(geo, embeddings="geo", min_similarity=0.95, **OFF)
    assert again.embedding_pairs == 0 and len(_pairs(geo)) == 1  # nothing new, pairs kept
    new = write_image(tmp_path / "late" / "x.png", seed=999)
    ingest.import_paths(geo, [new])
    with geo.session() as s:
        new_id = s.scalar(select(Image.id).where(Image.path == str(new)))
        e = embeddings.find_embedder(s, "geo")
        base = embeddings.vectors(s, e, [a])[1][0]
        insert_new(s, Embedding, [{"embedder_id": e.id, "image_id": new_id,
                                   "vector": _unit(_near(base, 0.99, 7)).astype(np.float16).tobytes()}])
    third = dedup.find_duplicates(geo, embeddings="geo", min_similarity=0.95, **OFF)
    assert third.embedding_pairs >= 1
    with geo.session() as s:
        assert s.get(Image, new_id).dup_group_id == s.get(Image, a).dup_group_id is not None


def test_a_plain_dedup_keeps_the_embedding_pairs_and_splits_keep_the_group_together(geo):
    a, b = geo.ids[:2]
    dedup.find_duplicates(geo, embeddings="geo", min_similarity=0.95, **OFF)
    dedup.find_duplicates(geo, threshold=6, full=True, **OFF)  # pHash pairs redone; embedding pairs stay
    assert frozenset((a, b)) in _pairs(geo)
    for seed in range(4):  # whatever the seed, the pair lands in one split
        name = f"s{seed}"
        splits.build(geo, min_count=5, val=0.3, test=0.3, seed=seed, name=name)
        assert splits.check(geo, name) == []
        with geo.session() as s:
            from curator.library.models import SplitBuild, SplitMember

            build = s.scalar(select(SplitBuild).where(SplitBuild.name == name))
            got = dict(s.execute(select(SplitMember.image_id, SplitMember.split)
                                 .where(SplitMember.build_id == build.id, SplitMember.image_id.in_([a, b]))).all())
        assert len(set(got.values())) == 1, got


def test_cli_dedup_with_embeddings(geo, cli):
    out = cli("dedup", "--embeddings", "geo", "--min-similarity", "0.95")
    assert out.exit_code == 0 and "1 near in embedding, 1 of them unlike in detail" in out.stdout
    assert as_json(cli("dedup", "--embeddings", "geo", "--min-similarity", "0.9", "--detail-threshold", "256",
                       "--json"))["embedding_pairs"] == 2
    assert "no embedder or run named 'nope'" in error(cli("dedup", "--embeddings", "nope"))
    assert "--min-similarity 1.5 is out of range" in error(cli("dedup", "--embeddings", "geo", "--min-similarity", "1.5"))


def test_two_embedders_keep_their_own_pairs(geo):
    a, b, c, d = geo.ids[:4]
    with geo.session() as s:
        e = embeddings.find_embedder(s, "geo")
        ids, vecs = embeddings.vectors(s, e, geo.ids)
    other = {int(i): v for i, v in zip(ids, vecs)}
    other[d] = _near(other[c], 0.99, 5)  # the second embedder sees c~d as near copies
    _store(geo, other, name="geo2")
    dedup.find_duplicates(geo, embeddings="geo", min_similarity=0.95, **OFF)
    dedup.find_duplicates(geo, embeddings="geo2", min_similarity=0.95, **OFF)
    assert {frozenset((a, b)), frozenset((c, d))} <= set(_pairs(geo))
    dedup.find_duplicates(geo, embeddings="geo", min_similarity=0.96, **OFF)  # geo's settings change: geo2's pairs stay
    assert frozenset((c, d)) in _pairs(geo) and frozenset((a, b)) in _pairs(geo)
