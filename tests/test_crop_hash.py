"""Crop-tolerant pHashes (curator.crop_hash): real emoji cropped 3-5% a side are grouped with
their originals, a finer 256-bit check turns away look-alikes, and older libraries get the
hashes from their files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import select, update

from curator import crop_hash, dedup, image_probe, ingest
from curator.dedup_index import hamming
from curator.library.models import Image

from conftest import SAMPLE
from test_dedup import add_hashed, groups_by_path

# Real emoji of sample_data/ whose 64-bit pHash moves 10-18 bits when cropped as below (on all of
# sample_data's library, 80% of such crops are grouped now and 34% were: crop_hash_calibration.py).
ORIGINALS = [
    "animal-bird/baby-chick-1f424-google.png", "animal-mammal/bear-1f43b-google.png",
    "country-flag/flag-ck-1f1e8-1f1f0-twitter.png", "drink/beers-1f37b-twitter.png",
    "face-smiling/grin-1f601-twitter.png", "food-fruit/banana-1f34c-twitter.png",
    "hand-fingers-open/raised-back-of-hand/raised-back-of-hand-1f91a-1f3fc-google.png",
    "person/adult/adult-1f9d1-1f3fc-twitter.png", "transport-ground/articulated-lorry-1f69b-google.png",
    "unknown/rosette-1f3f5-fe0f-twitter.png",
]
CUT = (0.05, 0.03, 0.04, 0.05)  # the share cut off the left, top, right and bottom


@pytest.fixture
def crops(tmp_path) -> dict[str, str]:
    """Each original copied, and cropped by 3-5% on each side (``CUT``): crop -> original."""
    out = {}
    for rel in ORIGINALS:
        original = tmp_path / "in" / Path(rel).name
        original.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE / "library" / rel, original)
        img = PILImage.open(original)
        w, h = img.size
        crop = original.with_name(original.stem + "-crop.png")
        img.crop((round(w * CUT[0]), round(h * CUT[1]), w - round(w * CUT[2]), h - round(h * CUT[3]))).save(crop)
        out[str(crop)] = str(original)
    return out


def phash_of(lib, path: str) -> int:
    with lib.session() as s:
        return s.scalar(select(Image.phash).where(Image.path == path))


def test_crops_of_real_images_are_grouped_with_their_originals(library, crops):
    ingest.import_paths(library, [Path(next(iter(crops))).parent])
    far = [c for c, o in crops.items() if hamming(np.int64(phash_of(library, c)), np.int64(phash_of(library, o))) > 8]
    assert far == list(crops)  # the whole-image pHash alone misses every one
    summary = dedup.find_duplicates(library)
    assert groups_by_path(library) == {frozenset(p) for p in crops.items()}
    assert summary.hashed == 0  # imported with their crop hashes


def test_near_in_phash_but_not_in_detail_is_not_a_duplicate(library):
    ids = add_hashed(library, {"a": 0x1234, "b": 0x1234, "c": 0x1234})
    fine = np.zeros((3, 1 + len(crop_hash.CUTS), crop_hash.FINE_BYTES), dtype=np.uint8)
    fine[1, :, :4] = 0xFF  # b: 32 of 256 bits from a, at every alignment
    fine[2, :, :13] = 0xFF  # c: 104 bits from a, 72 from b
    with library.session() as s:
        for k, name in enumerate("abc"):
            s.execute(update(Image).where(Image.id == ids[name]).values(
                crop_phashes=np.full(len(crop_hash.CUTS), 0x1234, dtype=">u8").tobytes(), fine_hashes=fine[k].tobytes()))
    summary = dedup.find_duplicates(library)
    assert (summary.candidate_pairs, summary.unlike_in_detail, summary.new_pairs) == (3, 2, 1)
    loose = dedup.find_duplicates(library, detail_threshold=256)
    assert loose.full and loose.groups == 1 and loose.images_in_groups == 3


def test_a_library_from_before_crop_hashes_gets_them_from_its_files(library, crops):
    ingest.import_paths(library, [Path(next(iter(crops))).parent])
    gone = next(iter(crops))
    with library.session() as s:  # as migration 0010 leaves an older library
        s.execute(update(Image).values(crop_phashes=None, fine_hashes=None))
    Path(gone).unlink()
    seen = []
    summary = dedup.find_duplicates(library, on_progress=lambda done, total: seen.append((done, total)))
    assert summary.hashed == 2 * len(crops) - 1 and seen[-1] == (2 * len(crops), 2 * len(crops))
    expected = {frozenset(p) for p in crops.items()}
    found = groups_by_path(library)
    assert found - {frozenset((gone, crops[gone]))} == expected - {frozenset((gone, crops[gone]))}
    with library.session() as s:
        assert s.scalar(select(Image.fine_hashes).where(Image.path == crops[gone])) is not None
        assert s.scalar(select(Image.fine_hashes).where(Image.path == gone)) == b""  # not tried again
    seen.clear()
    assert dedup.find_duplicates(library, on_progress=lambda *a: seen.append(a)).hashed == 0 and seen == []


def test_candidate_pairs_search_every_alignment_once_per_image_pair():
    blank = np.zeros(4, dtype=np.int64)
    pairs = crop_hash.candidate_pairs(blank, np.zeros((4, 2), dtype=np.int64), 8)
    assert pairs.tolist() == [[0, 1, 0], [0, 2, 0], [0, 3, 0], [1, 2, 0], [1, 3, 0], [2, 3, 0]]
    # b's whole image is 20 bits from a's, but a's inner crop is 2 bits from b's whole image.
    a, b = 0, (1 << 20) - 1
    inner = np.array([[b ^ 3, 1 << 40], [b, b]], dtype=np.int64)
    assert crop_hash.candidate_pairs(np.array([a, b], dtype=np.int64), inner, 8).tolist() == [[0, 1, 2]]
    # Incremental: a pair of two old images is not searched again; a new one against both.
    three = np.array([a, b, a], dtype=np.int64)
    inner3 = np.vstack([inner, [[b ^ 1, a]]])
    assert crop_hash.candidate_pairs(three, inner3, 8, new_from=2).tolist() == [[0, 2, 0], [1, 2, 1]]


def test_signatures_have_the_stored_sizes():
    img = PILImage.open(SAMPLE / "library" / ORIGINALS[0]).convert("L")
    inner, fine = crop_hash.signatures(img)
    assert (len(inner), len(fine)) == (crop_hash.CROP_BYTES, crop_hash.FINE_ALL_BYTES)
    meta = image_probe.hash_bytes((SAMPLE / "library" / ORIGINALS[0]).read_bytes())  # composited on white first
    assert (len(meta["crop_phashes"]), len(meta["fine_hashes"])) == (crop_hash.CROP_BYTES, crop_hash.FINE_ALL_BYTES)
