"""Crop-tolerant perceptual hashes: near duplicates that were cropped a little, and a finer check.

A 64-bit pHash moves 10-24 bits when 3-5% is cut off each side of an image (measured on emoji
views, photo crops, grey photos, faces and digits: ``benchmarks/phash_calibration.py``), so
``dedup`` missed a third to a half of such crops at its 8 bits. Two things are stored per image
at import (migration 0010):

- ``images.crop_phashes``: the 64-bit pHash of the image with ``CUTS`` (3% and 5%) cut off each
  side. A copy cropped by 3-5% a side is within 8 bits of one of its original's inner hashes, or
  its own inner hash of the original (both ways are searched), on every kind measured.
- ``images.fine_hashes``: 256-bit pHashes (a 16x16 DCT) of the whole image and of the same inner
  crops. A candidate pair found by the 64-bit hashes is kept only when some alignment of the two
  is within ``DEFAULT_DETAIL_THRESHOLD`` of 256 bits: 64 bits cannot tell two upscaled 8x8
  handwritten digits of one writer's hand, or two views of one emoji, from a copy (they chained
  1,797 digits into groups of 137); 256 bits can.

Images imported before 0010 have neither; ``dedup`` computes them from the files first
(``backfill``, once), and an image whose file is gone is compared by its 64-bit pHash alone.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

CUTS = (0.03, 0.05)  # the share cut off each side for the inner hashes
FINE_BYTES = 32  # a 256-bit pHash
CROP_BYTES = 8 * len(CUTS)
FINE_ALL_BYTES = FINE_BYTES * (1 + len(CUTS))


def signatures(grey) -> tuple[bytes, bytes]:
    """``(crop_phashes, fine_hashes)`` of a grey PIL image (reduced to about 64 px a side).

    crop_phashes: ``len(CUTS)`` big-endian 64-bit pHashes of the inner crops; fine_hashes: the
    256-bit pHash of the whole image, then of each inner crop.
    """
    import imagehash

    w, h = grey.size
    crops = [grey.crop((round(w * c), round(h * c), w - round(w * c), h - round(h * c))) for c in CUTS]
    inner = b"".join(np.packbits(imagehash.phash(c).hash.flatten()).tobytes() for c in crops)
    fine = b"".join(np.packbits(imagehash.phash(g, hash_size=16).hash.flatten()).tobytes() for g in [grey, *crops])
    return inner, fine


def inner_hashes(blobs: list, phash: np.ndarray) -> np.ndarray:
    """(N, len(CUTS)) int64 inner-crop pHashes from ``crop_phashes`` values (bytes-like or None);
    an image without them repeats its own pHash."""
    out = np.repeat(phash.reshape(-1, 1), len(CUTS), axis=1)
    has = np.array([blob is not None and len(blob) == CROP_BYTES for blob in blobs], dtype=bool)
    if has.any():  # one buffer, one conversion: a million rows in a fraction of a second
        joined = b"".join(blob for blob, ok in zip(blobs, has) if ok)
        out[has] = np.frombuffer(joined, dtype=">u8").astype(np.uint64).view(np.int64).reshape(-1, len(CUTS))
    return out


def candidate_pairs(phash: np.ndarray, inner: np.ndarray, threshold: int, *, new_from: int = 0) -> np.ndarray:
    """Every pair of images that some alignment puts within ``threshold`` bits: whole against
    whole, an inner crop against the other's whole, or two inner crops.

    Args:
        phash: (N,) int64 pHashes; inner: (N, len(CUTS)) from ``inner_hashes``.
        new_from: images from this index on are new; pairs of two older images are left out.

    Returns:
        (P, 3) int64 rows ``(i, j, bits)``, ``i < j``, the fewest bits of any alignment, sorted.
    """
    from curator import dedup_index

    table = np.column_stack([phash, inner])
    # An image's hashes once each: 10,000 blank images are 10,000 hashes, not 40,000.
    keep = np.ones(table.shape, dtype=bool)
    for c in range(1, table.shape[1]):
        keep[:, c] = (table[:, :c] != table[:, [c]]).all(axis=1)
    owner = np.nonzero(keep)[0]
    hashes = table[keep]  # row-major: the new images' hashes come after the older ones'
    found = dedup_index.near_pairs(hashes, threshold, new_from=int(keep[:new_from].sum()))
    i, j, bits = owner[found[:, 0]], owner[found[:, 1]], found[:, 2]
    mine = i != j
    i, j, bits = np.minimum(i, j)[mine], np.maximum(i, j)[mine], bits[mine]
    order = np.lexsort((bits, j, i))
    i, j, bits = i[order], j[order], bits[order]
    first = np.ones(len(i), dtype=bool)
    first[1:] = (i[1:] != i[:-1]) | (j[1:] != j[:-1])
    return np.column_stack([i[first], j[first], bits[first]]).astype(np.int64)


def detail_distances(a: list[bytes | None], b: list[bytes | None], *, chunk: int = 50_000) -> np.ndarray:
    """The fewest of 256 bits between ``a[k]`` and ``b[k]`` (``fine_hashes``) over the
    alignments whole/whole, inner/whole and whole/inner; NaN where either has none."""
    n = len(a)
    out = np.full(n, np.nan)
    has = np.array([x is not None and len(x) == FINE_ALL_BYTES and y is not None and len(y) == FINE_ALL_BYTES
                    for x, y in zip(a, b)], dtype=bool)
    rows = np.nonzero(has)[0]
    for lo in range(0, len(rows), chunk):
        part = rows[lo:lo + chunk]
        fa = np.frombuffer(b"".join(a[k] for k in part), dtype=np.uint8).reshape(len(part), -1, FINE_BYTES)
        fb = np.frombuffer(b"".join(b[k] for k in part), dtype=np.uint8).reshape(len(part), -1, FINE_BYTES)
        best = _bits(fa[:, 0] ^ fb[:, 0])
        for c in range(1, fa.shape[1]):
            best = np.minimum(best, np.minimum(_bits(fa[:, c] ^ fb[:, 0]), _bits(fa[:, 0] ^ fb[:, c])))
        out[part] = best
    return out


def _bits(x: np.ndarray) -> np.ndarray:
    return np.unpackbits(x, axis=1).sum(axis=1)


def backfill(lib, *, on_progress: Callable[[int, int], None] | None = None, chunk: int = 2000,
             workers: int | None = None) -> tuple[int, int]:
    """Compute the crop hashes of active images imported before they existed: read from their
    files on every core (``curator.image_probe.worker_pool``), ``chunk`` at a time, each chunk
    committed (an interrupted run keeps what it did).

    An image whose file is gone or unreadable gets empty ones (``b""``): it is compared by its
    64-bit pHash alone and not tried again.

    Returns:
        (images hashed, images whose file could not be read).
    """
    import os

    from sqlalchemy import func, select, update

    from curator import image_probe
    from curator.library.models import ACTIVE, Image
    from curator.locations import readable_paths

    def todo(after: int):
        return Image.status == ACTIVE, Image.phash.is_not(None), Image.crop_phashes.is_(None), Image.id > after

    with lib.session() as s:
        total = s.scalar(select(func.count()).select_from(Image).where(*todo(0)))
    if not total:
        return 0, 0
    done = failed = last = 0
    with image_probe.worker_pool(workers or os.cpu_count() or 1) as pool:
        while done + failed < total:
            with lib.session() as s:
                ids = s.scalars(select(Image.id).where(*todo(last)).order_by(Image.id).limit(chunk)).all()
                if not ids:
                    break
                last = ids[-1]
                paths, _ = readable_paths(s, ids)
                for image_id, hashes in zip(ids, pool.map(_hashes_of, [paths.get(i) for i in ids], chunksize=16)):
                    done, failed = (done + 1, failed) if hashes[0] else (done, failed + 1)
                    s.execute(update(Image).where(Image.id == image_id).values(
                        crop_phashes=hashes[0], fine_hashes=hashes[1]))
            if on_progress:
                on_progress(done + failed, total)
    return done, failed


def _hashes_of(path: str | None) -> tuple[bytes, bytes]:
    """(crop_phashes, fine_hashes) of the file at ``path``; empty where it is gone or unreadable."""
    from curator import image_probe

    try:
        with open(path, "rb") as f:  # type: ignore[arg-type]  None: gone, a TypeError here
            meta = image_probe.hash_bytes(f.read())
        return meta["crop_phashes"], meta["fine_hashes"]
    except Exception:  # noqa: BLE001 - gone or unreadable now: its pHash alone decides
        return b"", b""
