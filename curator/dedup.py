"""Duplicate groups: images that are the same picture, found by pHash, colour and detail, stored.

``find_duplicates`` compares the library's perceptual hashes through a multi-index hash
(``curator.dedup_index``: no all-pairs loop), each image's whole-picture pHash and those of two
inner crops (``curator.crop_hash``: a copy cropped 3-5% a side is found), keeps the pairs whose
colour signatures agree (pHash is grey: a red and a blue version of one part are not
duplicates) and whose 256-bit pHashes agree at the best alignment (64 bits cannot tell two
upscaled 8x8 digits of one hand from a copy), and joins pairs into groups with one canonical
image each: real before staged or synthetic, then the largest, then the oldest
(``curator.dedup_grouping``). Runs are incremental: only images added since the last run with
the same settings are compared (against everything), and only what changed is written back:
after an import, a run reads every image's id and 64-bit hashes and little else, and writes a
few rows. Exact duplicates of the same bytes never get here: an import already made them one
image; two files with the same decoded pixels are found here (distance 0) and marked
``pixels``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from sqlalchemy import case, delete, func, insert, or_, select
from sqlalchemy.orm import Session

from curator.dedup_grouping import IN_CHUNK, regroup
from curator.defaults import (
    DEFAULT_COLOR_THRESHOLD,
    DEFAULT_DETAIL_THRESHOLD,
    DEFAULT_MIN_SIMILARITY,
    DEFAULT_THRESHOLD,
)
from curator.errors import InvalidInput
from curator.library import Library
from curator.library.models import (
    ACTIVE,
    LABELLED,
    DedupRun,
    DuplicateGroup,
    DuplicatePair,
    Image,
    ImageLocation,
    LabelClass,
    Subclass,
    utcnow,
)

@dataclass
class DedupSummary:
    run_id: int
    full: bool
    images: int = 0
    compared: int = 0
    candidate_pairs: int = 0
    new_pairs: int = 0
    groups: int = 0
    images_in_groups: int = 0
    conflicts: int = 0
    seconds: float = 0.0
    embedding_pairs: int = 0  # with --embeddings: pairs at or above --min-similarity (before the forest)
    embedding_unlike_in_detail: int = 0  # ... that the 256-bit check turned away
    unlike_in_color: int = 0  # candidate pairs the colour check turned away
    unlike_in_detail: int = 0  # ... and the 256-bit check (curator.crop_hash)
    hashed: int = 0  # images imported before crop hashes existed, hashed from their files first

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Hashes:
    ids: np.ndarray  # (N,) int64 image ids, ascending
    phash: np.ndarray  # (N,) int64 pHashes (the 64 bits read as signed)
    inner: np.ndarray  # (N, len(crop_hash.CUTS)) int64 pHashes of inner crops (its pHash where none)


def _load(s: Session) -> _Hashes:
    """Every active image's id and pHash, ordered by id.

    Colour signatures are not read here: only the images in a candidate pair need theirs
    (``_color_distances``), a few thousand of a million.
    """
    import numpy as np

    from curator import crop_hash

    stmt = (select(Image.id, Image.phash, Image.crop_phashes)
            .where(Image.status == ACTIVE, Image.phash.is_not(None)).order_by(Image.id))
    rows = _driver_rows(s, stmt)
    table = np.array([r[:2] for r in rows], dtype=np.int64).reshape(-1, 2)
    phash = table[:, 1].copy()
    return _Hashes(table[:, 0].copy(), phash, crop_hash.inner_hashes([r[2] for r in rows], phash))


def _driver_rows(s: Session, stmt) -> list[tuple]:
    """``stmt``'s rows as the driver's plain tuples, read through its own cursor.

    SQLAlchemy's result rows cost a few microseconds each: seconds at a million images. The
    statement's parameters are constants of ours, rendered into the SQL.
    """
    conn = s.connection()
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql)
        return cursor.fetchall()
    finally:
        cursor.close()


def color_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The colour difference of signatures ``a[k]`` and ``b[k]``: the share of pixels (0-1) in
    another bin in the channel where most moved.

    The worst channel, not the mean of the three: encoding and resampling noise spreads over
    the three channels, while a colour variant (a skin tone, a red part made blue) moves one or
    two of them a lot, and the mean diluted it. On the images of benchmarks/phash_calibration.py
    it tripled the gap between re-encodes and resizes (99th percentile) and the nearest skin
    tones of sample_data/ (0.026 to 0.078), and put the worst re-encode below those skin tones
    (0.164 and 0.174; the mean had 0.105 and 0.097).

    Args:
        a, b: (N, 24) histogram shares, as ``curator.image_probe.color_signature`` stores them
            (8 bins of R, then G, then B; each channel sums to 1).

    Returns:
        (N,) distances, 0-1.
    """
    import numpy as np

    per_channel = np.abs(a - b).reshape(len(a), 3, 8).sum(axis=2) / 2
    return per_channel.max(axis=1)


def _color_distances(s: Session, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``color_distance`` between images ``a[k]`` and ``b[k]`` (ids); NaN where either has no
    signature."""
    import numpy as np

    ids = np.unique(np.concatenate([a, b]))
    color, has = _color_signatures(s, ids)
    i, j = np.searchsorted(ids, a), np.searchsorted(ids, b)
    return np.where(has[i] & has[j], color_distance(color[i], color[j]), np.nan)


def _color_signatures(s: Session, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(len(ids), 24) colour histogram shares of the images ``ids`` (ascending), and whether
    each has a signature (rows without one are zeros)."""
    import numpy as np

    color = np.zeros((len(ids), 24), dtype=np.float32)
    has = np.zeros(len(ids), dtype=bool)
    for image_id, sig in _blobs(s, Image.color_sig, ids.tolist()).items():
        if len(sig) == 48:
            k = np.searchsorted(ids, image_id)
            color[k], has[k] = np.frombuffer(sig, dtype="<u2") / 65535.0, True
    return color, has


def _blobs(s: Session, column, ids: list[int]) -> dict[int, bytes]:
    """``column`` (a binary column of images) of the images ``ids`` that have one, by id, read
    ``IN_CHUNK`` ids at a time."""
    out: dict[int, bytes] = {}
    for lo in range(0, len(ids), IN_CHUNK):
        chunk = ids[lo:lo + IN_CHUNK]
        rows = s.execute(select(Image.id, column).where(Image.id.in_(chunk), column.is_not(None)))
        out.update((i, bytes(v)) for i, v in rows)
    return out


def find_duplicates(
    lib: Library,
    *,
    threshold: int = DEFAULT_THRESHOLD,
    color_threshold: float = DEFAULT_COLOR_THRESHOLD,
    full: bool = False,
    embeddings: str | None = None,
    min_similarity: float = DEFAULT_MIN_SIMILARITY,
    detail_threshold: int = DEFAULT_DETAIL_THRESHOLD,
    on_progress: Callable[[int, int], None] | None = None,
) -> DedupSummary:
    """Find near and pixel-identical duplicates among active images and store the groups.

    Args:
        threshold: the largest pHash Hamming distance (bits, 0-16) that counts as a duplicate.
        color_threshold: the largest colour difference that counts (``color_distance``, 0-1:
            the share of pixels in other colour bins, in the channel where most moved).
        detail_threshold: the largest distance (of 256 bits, best alignment) between two
            images' fine pHashes that counts (``curator.crop_hash``); pairs where either has
            none are judged by the 64-bit pHash and colour alone.
        on_progress: called with (done, total) while images imported before crop hashes
            existed are hashed from their files (once per library).
        full: compare everything again; also implied when the settings changed since the
            last run (earlier pairs found with other settings are dropped).
        embeddings: an embedder (``curator.embeddings.find_embedder``): also pair the images
            whose vectors are at least ``min_similarity`` alike (cosine), as pairs of kind
            ``embedding`` grouped with the pHash pairs (``curator.embedding_pairs``).
    """
    import numpy as np

    if not 0 <= threshold <= 16:
        raise InvalidInput(f"--threshold {threshold} is out of range: give 0 to 16 bits (8 is the default)")
    if not 0 <= color_threshold <= 1:
        raise InvalidInput(f"--color-threshold {color_threshold} is out of range: give 0 to 1 ({DEFAULT_COLOR_THRESHOLD} is the default)")
    if not 0 <= detail_threshold <= 256:
        raise InvalidInput(f"--detail-threshold {detail_threshold} is out of range: give 0 to 256 bits"
                           f" ({DEFAULT_DETAIL_THRESHOLD} is the default)")
    if not 0 < min_similarity <= 1:
        raise InvalidInput(f"--min-similarity {min_similarity} is out of range: give more than 0, at most 1"
                           f" ({DEFAULT_MIN_SIMILARITY} is the default)")
    from curator import crop_hash

    started = time.perf_counter()
    hashed, _ = crop_hash.backfill(lib, on_progress=on_progress)
    embedder, index = _embedder(lib, embeddings)
    with lib.session() as s:
        last = s.scalar(select(DedupRun).where(DedupRun.finished_at.is_not(None)).order_by(DedupRun.id.desc()))
        settings = (threshold, color_threshold, detail_threshold)
        same = last is not None and (last.threshold, last.color_threshold, last.detail_threshold) == settings
        full = full or not same
        if full:
            s.execute(delete(DuplicatePair).where(DuplicatePair.kind != "embedding"))
        run = DedupRun(threshold=threshold, color_threshold=color_threshold, detail_threshold=detail_threshold,
                       embedder=embedder and embedder.name, min_similarity=embedder and min_similarity)
        s.add(run)
        s.flush()
        h = _load(s)
        new_from = 0 if full else int(np.searchsorted(h.ids, last.last_image_id, side="right"))
        summary = DedupSummary(run.id, full, images=len(h.ids), compared=len(h.ids) - new_from, hashed=hashed)
        pairs = crop_hash.candidate_pairs(h.phash, h.inner, threshold, new_from=new_from)
        summary.candidate_pairs = len(pairs)
        summary.new_pairs = _store_pairs(s, h, pairs, color_threshold, detail_threshold, run.id, summary)
        compared = embedder and _embedding_pass(s, lib, h, embedder, index, min_similarity, detail_threshold, full,
                                                run.id, summary)
        summary.groups, summary.images_in_groups = regroup(s)
        summary.conflicts = conflict_count(s)
        run.last_image_id = int(h.ids[-1]) if len(h.ids) else 0
        run.compared, run.new_pairs, run.groups = summary.compared, summary.new_pairs, summary.groups
        run.finished_at = utcnow()
    if embedder is not None:
        from curator import embedding_pairs

        embedding_pairs.remember(lib, embedder, min_similarity, compared)
    summary.seconds = time.perf_counter() - started
    return summary


def _embedder(lib: Library, ref: str | None):
    """The embedder ``--embeddings`` names and its index, brought up to date before the run's
    transaction begins; (None, None) without one."""
    if ref is None:
        return None, None
    from curator import embeddings, vector_index

    with lib.session() as s:
        e = embeddings.find_embedder(s, ref)
    return e, vector_index.open_index(lib, e)


def _embedding_pass(s: Session, lib: Library, h: _Hashes, e, index, min_similarity: float, detail_threshold: int,
                    full: bool, run_id: int, summary: DedupSummary) -> np.ndarray:
    """Store the pairs of kind ``embedding`` alike in detail too (their pHash distance and colour
    difference for the record; no colour check: colour variants are what this pass is for; a
    pair already stored by pHash stays as it is). Returns the ids compared."""
    import numpy as np

    from curator import dedup_index, embedding_pairs
    from curator.library.inserts import insert_new

    pairs, sims, compared = embedding_pairs.find_pairs(lib, s, e, index, min_similarity, full=full)
    summary.embedding_pairs = len(pairs)
    alike = ~(_detail_distances(s, pairs[:, 0], pairs[:, 1]) > detail_threshold)  # NaN: the vectors decide
    summary.embedding_unlike_in_detail = int((~alike).sum())
    pairs, sims = pairs[alike], sims[alike]
    if not len(pairs):
        return compared
    k = np.searchsorted(h.ids, pairs)
    k = np.minimum(k, len(h.ids) - 1)
    known = (h.ids[k] == pairs).all(axis=1)
    bits = np.where(known, dedup_index.hamming(h.phash[k[:, 0]], h.phash[k[:, 1]]), 64)
    weight = np.column_stack([np.searchsorted(compared, pairs), np.round((1 - sims) * 1000).astype(np.int64)])
    forest, _ = _spanning_forest(weight, sims, len(compared))
    chosen = {(int(a), int(b)) for a, b in compared[forest[:, :2]]}
    keep = np.array([(int(a), int(b)) in chosen for a, b in pairs], dtype=bool)
    cdist = _color_distances(s, pairs[keep, 0], pairs[keep, 1])
    insert_new(s, DuplicatePair, [
        {"image_a": int(a), "image_b": int(b), "kind": "embedding", "distance": int(d), "run_id": run_id,
         "color_distance": None if np.isnan(c) else round(float(c), 4), "similarity": round(float(v), 4)}
        for (a, b), d, c, v in zip(pairs[keep], bits[keep], cdist, sims[keep])])
    return compared


def _store_pairs(s: Session, h: _Hashes, pairs: np.ndarray, color_threshold: float, detail_threshold: int,
                 run_id: int, summary: DedupSummary) -> int:
    """Keep the candidates alike in colour and in detail (NaN, no signature: the 64-bit pHash
    decides), then the spanning forest of them; returns the pairs stored."""
    import numpy as np

    from curator import dedup_index

    if not len(pairs):
        return 0
    a, b = h.ids[pairs[:, 0]], h.ids[pairs[:, 1]]
    cdist = _color_distances(s, a, b)
    color_ok = ~(cdist > color_threshold)
    summary.unlike_in_color = int((~color_ok).sum())
    detail = np.full(len(pairs), np.nan)
    detail[color_ok] = _detail_distances(s, a[color_ok], b[color_ok])
    detail_ok = ~(detail > detail_threshold)
    summary.unlike_in_detail = int((color_ok & ~detail_ok).sum())
    keep = color_ok & detail_ok
    pairs, cdist = _spanning_forest(pairs[keep], cdist[keep], len(h.ids))
    i, j, dist = pairs[:, 0], pairs[:, 1], pairs[:, 2]
    whole = dedup_index.hamming(h.phash[i], h.phash[j])  # 0 with another alignment is no pixel match
    rows = [
        {"image_a": int(a), "image_b": int(b), "distance": int(d), "run_id": run_id,
         "kind": "pixels" if w == 0 and _same_pixels(s, int(a), int(b)) else "phash",
         "color_distance": None if np.isnan(c) else round(float(c), 4)}
        for a, b, d, w, c in zip(h.ids[i], h.ids[j], dist, whole, cdist)
    ]
    if rows:  # the checks may drop every candidate: an empty executemany inserts DEFAULT VALUES
        s.execute(insert(DuplicatePair), rows)  # one executemany, not an ORM object a pair
    return len(rows)


def _detail_distances(s: Session, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``crop_hash.detail_distances`` of images ``a[k]`` and ``b[k]`` (ids)."""
    from curator import crop_hash

    fine = _blobs(s, Image.fine_hashes, sorted(set(a.tolist()) | set(b.tolist())))
    return crop_hash.detail_distances([fine.get(x) for x in a.tolist()], [fine.get(x) for x in b.tolist()])


def _spanning_forest(pairs: np.ndarray, cdist: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The closest pairs that still join every group: at most n-1 of them.

    Groups only need a spanning forest. Without this, 10,000 blank images would be 50 million
    stored pairs and as many pixel comparisons.
    """
    import numpy as np

    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree

    if len(pairs) < 2:
        return pairs, cdist
    weight = pairs[:, 2] + 1.0  # csgraph reads a 0 weight as "no edge"
    tree = minimum_spanning_tree(coo_matrix((weight, (pairs[:, 0], pairs[:, 1])), shape=(n, n))).tocoo()
    a, b = np.minimum(tree.row, tree.col), np.maximum(tree.row, tree.col)
    index = {(x, y): k for k, (x, y) in enumerate(zip(pairs[:, 0].tolist(), pairs[:, 1].tolist()))}
    chosen = np.array([index[(x, y)] for x, y in zip(a.tolist(), b.tolist())], dtype=np.int64)
    chosen.sort()
    return pairs[chosen], cdist[chosen]


def _same_pixels(s: Session, a: int, b: int) -> bool:
    """Decode both images in full and compare every pixel (only for pHash distance 0)."""
    from PIL import Image as PILImage

    from curator.locations import readable_paths

    ia, ib = s.get(Image, a), s.get(Image, b)
    if (ia.width, ia.height) != (ib.width, ib.height):
        return False
    paths, missing = readable_paths(s, [a, b])
    if missing:  # a file gone from every path since import: pHash evidence stands
        return False
    try:
        with PILImage.open(paths[a]) as x, PILImage.open(paths[b]) as y:
            return x.convert("RGBA").tobytes() == y.convert("RGBA").tobytes()
    except OSError:  # a file moved or vanished since import: pHash evidence stands
        return False


# -- reading groups back ---------------------------------------------------------------------


def _member(image: Image, canonical_id: int | None) -> dict:
    return {
        "id": image.id, "path": image.path, "label": image.label, "canonical": image.id == canonical_id,
        "staged": image.staged, "synthetic": image.synthetic, "width": image.width,
        "height": image.height, "status": image.status,
    }


def describe_group(s: Session, group: DuplicateGroup) -> dict:
    images = s.scalars(select(Image).where(Image.dup_group_id == group.id).order_by(Image.id)).all()
    ids = [im.id for im in images]
    pairs = s.execute(select(DuplicatePair).where(DuplicatePair.image_a.in_(ids))).scalars().all()
    labels = sorted({im.label for im in images if im.label_state == LABELLED})
    return {
        "group": group.id,
        "canonical": group.canonical_id,
        "members": [_member(im, group.canonical_id) for im in images],
        "labels": labels,
        "conflict": len(labels) > 1,
        "pairs": [{"a": p.image_a, "b": p.image_b, "kind": p.kind, "distance": p.distance,
                   "color_distance": p.color_distance} for p in pairs],
    }


def list_groups(lib: Library, group: int | None = None) -> list[dict]:
    """Every duplicate group (or the one asked for), members canonical first."""
    with lib.session() as s:
        if group is None:
            return [describe_group(s, g) for g in s.scalars(select(DuplicateGroup).order_by(DuplicateGroup.id))]
        found = s.get(DuplicateGroup, group)
        if found is None:
            raise InvalidInput(f"no duplicate group {group}: list them with `curator duplicates`")
        return [describe_group(s, found)]


@dataclass
class Conflicts:
    groups: list[dict] = field(default_factory=list)  # groups whose members carry different labels
    locations: list[dict] = field(default_factory=list)  # same bytes filed under another label


def label_conflicts(s: Session) -> list[dict]:
    """Groups whose labelled members carry different labels: the first thing to fix."""
    groups = _conflicting()
    return [describe_group(s, s.get(DuplicateGroup, gid)) for gid in s.scalars(select(groups.c.id).order_by(groups.c.id))]


def _conflicting():
    """The ids of the groups whose labelled members carry different labels, as a subquery.

    A sub-class belongs to one class, so two labels differ in their class or their sub-class.
    """
    sub = func.coalesce(Image.subclass_id, 0)
    return (select(Image.dup_group_id.label("id"))
            .where(Image.dup_group_id.is_not(None), Image.label_state == LABELLED)
            .group_by(Image.dup_group_id)
            .having(or_(func.min(Image.class_id) != func.max(Image.class_id), func.min(sub) != func.max(sub)))
            .subquery("conflicting"))


def conflict_count(s: Session) -> int:
    """How many groups' labelled members carry different labels (one query, nothing read)."""
    return int(s.scalar(select(func.count()).select_from(_conflicting())) or 0)


def all_conflicts(lib: Library) -> Conflicts:
    """Group label conflicts, plus paths whose folder said another label than their image has
    (compared in SQL: only the disagreeing paths are read), in the order they were imported."""
    label = case((Image.label_state == LABELLED, LabelClass.name + func.coalesce("/" + Subclass.name, "")),
                 else_=Image.label_state)  # models.label_text, in SQL
    disagree = (select(ImageLocation.image_id, ImageLocation.path, ImageLocation.folder_label, label)
                .join(Image, Image.id == ImageLocation.image_id)
                .outerjoin(LabelClass, LabelClass.id == Image.class_id)
                .outerjoin(Subclass, Subclass.id == Image.subclass_id)
                .where(ImageLocation.folder_label.is_not(None), ImageLocation.folder_label != label)
                .order_by(ImageLocation.id))
    with lib.session() as s:
        return Conflicts(groups=label_conflicts(s), locations=[
            {"image": image_id, "path": path, "folder_label": folder, "label": now}
            for image_id, path, folder, now in s.execute(disagree)])
