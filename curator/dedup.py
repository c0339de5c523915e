"""Duplicate groups: images that are the same picture, found by pHash and colour, stored.

``find_duplicates`` compares the library's perceptual hashes through a multi-index hash
(``curator.dedup_index``: no all-pairs loop), keeps the pairs whose colour signatures agree too
(pHash is grey: a red and a blue version of one part are not duplicates), and joins pairs into
groups with one canonical image each: real before staged or synthetic, then the largest, then
the oldest. Runs are incremental: only images added since the last run with the same settings
are compared (against everything). Exact duplicates of the same bytes never get here: an
import already made them one image; two files with the same decoded pixels are found here
(distance 0) and marked ``pixels``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from curator.defaults import DEFAULT_COLOR_THRESHOLD, DEFAULT_THRESHOLD
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

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Hashes:
    ids: np.ndarray
    phash: np.ndarray
    color: np.ndarray  # (N, 24) colour histogram shares; rows without a signature are ignored
    has_color: np.ndarray


def _load(session: Session) -> _Hashes:
    import numpy as np

    rows = session.execute(
        select(Image.id, Image.phash, Image.color_sig)
        .where(Image.status == ACTIVE, Image.phash.is_not(None))
        .order_by(Image.id)
    ).all()
    color = np.zeros((len(rows), 24), dtype=np.float32)
    has = np.zeros(len(rows), dtype=bool)
    for i, (_, _, sig) in enumerate(rows):
        if sig is not None and len(sig) == 48:
            color[i] = np.frombuffer(sig, dtype="<u2") / 65535.0
            has[i] = True
    return _Hashes(
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.int64),
        color,
        has,
    )


def color_distance(h: _Hashes, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Share of pixels in other colour bins (0-1, mean over channels); NaN where one is missing."""
    import numpy as np

    d = np.abs(h.color[i] - h.color[j]).sum(axis=1) / 6
    return np.where(h.has_color[i] & h.has_color[j], d, np.nan)


def find_duplicates(
    lib: Library,
    *,
    threshold: int = DEFAULT_THRESHOLD,
    color_threshold: float = DEFAULT_COLOR_THRESHOLD,
    full: bool = False,
) -> DedupSummary:
    """Find near and pixel-identical duplicates among active images and store the groups.

    Args:
        threshold: the largest pHash Hamming distance (bits, 0-16) that counts as a duplicate.
        color_threshold: the largest colour difference (0-1: share of pixels in other colour
            bins) that counts.
        full: compare everything again; also implied when the settings changed since the
            last run (earlier pairs found with other settings are dropped).
    """
    import numpy as np

    from curator import dedup_index

    if not 0 <= threshold <= 16:
        raise InvalidInput(f"--threshold {threshold} is out of range: give 0 to 16 bits (8 is the default)")
    if not 0 <= color_threshold <= 1:
        raise InvalidInput(f"--color-threshold {color_threshold} is out of range: give 0 to 1 (0.09 is the default)")
    started = time.perf_counter()
    with lib.session() as s:
        last = s.scalar(select(DedupRun).where(DedupRun.finished_at.is_not(None)).order_by(DedupRun.id.desc()))
        same = last is not None and (last.threshold, last.color_threshold) == (threshold, color_threshold)
        full = full or not same
        if full:
            s.execute(delete(DuplicatePair))
        run = DedupRun(threshold=threshold, color_threshold=color_threshold)
        s.add(run)
        s.flush()
        h = _load(s)
        new_from = 0 if full else int(np.searchsorted(h.ids, last.last_image_id, side="right"))
        summary = DedupSummary(run.id, full, images=len(h.ids), compared=len(h.ids) - new_from)
        pairs = dedup_index.near_pairs(h.phash, threshold, new_from=new_from)
        summary.candidate_pairs = len(pairs)
        summary.new_pairs = _store_pairs(s, lib, h, pairs, color_threshold, run.id)
        summary.groups, summary.images_in_groups = _regroup(s)
        summary.conflicts = len(label_conflicts(s))
        run.last_image_id = int(h.ids[-1]) if len(h.ids) else 0
        run.compared, run.new_pairs, run.groups = summary.compared, summary.new_pairs, summary.groups
        run.finished_at = utcnow()
    summary.seconds = time.perf_counter() - started
    return summary


def _store_pairs(s: Session, lib: Library, h: _Hashes, pairs: np.ndarray, color_threshold, run_id) -> int:
    import numpy as np

    if not len(pairs):
        return 0
    cdist = color_distance(h, pairs[:, 0], pairs[:, 1])
    keep = ~(cdist > color_threshold)  # NaN (no signature) keeps the pair: pHash alone decides
    pairs, cdist = _spanning_forest(pairs[keep], cdist[keep], len(h.ids))
    i, j, dist = pairs[:, 0], pairs[:, 1], pairs[:, 2]
    rows = []
    for a, b, d, c in zip(h.ids[i], h.ids[j], dist, cdist):
        kind = "pixels" if d == 0 and _same_pixels(s, int(a), int(b)) else "phash"
        rows.append(DuplicatePair(image_a=int(a), image_b=int(b), kind=kind, distance=int(d),
                                  color_distance=None if np.isnan(c) else round(float(c), 4),
                                  run_id=run_id))
    s.add_all(rows)
    s.flush()
    return len(rows)


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


def _regroup(s: Session) -> tuple[int, int]:
    """Rebuild groups from all stored pairs, keeping existing group ids where possible."""
    import numpy as np

    from curator import dedup_index

    pairs = np.array(s.execute(select(DuplicatePair.image_a, DuplicatePair.image_b)).all(), dtype=np.int64).reshape(-1, 2)
    ids = np.unique(pairs)
    comp = dedup_index.groups(len(ids), np.searchsorted(ids, pairs)) if len(ids) else np.array([], np.int64)
    members: dict[int, list[int]] = defaultdict(list)
    for image_id, c in zip(ids.tolist(), comp.tolist()):
        members[c].append(image_id)
    old = dict(s.execute(select(Image.id, Image.dup_group_id).where(Image.dup_group_id.is_not(None))).all())
    s.execute(update(Image).values(dup_group_id=None))
    used: set[int] = set()
    for image_ids in members.values():
        reuse = sorted({old[i] for i in image_ids if i in old} - used)
        group = s.get(DuplicateGroup, reuse[0]) if reuse else DuplicateGroup()
        if not reuse:
            s.add(group)
            s.flush()
        used.add(group.id)
        s.execute(update(Image).where(Image.id.in_(image_ids)).values(dup_group_id=group.id))
        group.canonical_id = _canonical(s, image_ids)
        group.updated_at = utcnow()
    s.execute(delete(DuplicateGroup).where(DuplicateGroup.id.not_in(used) if used else True))
    return len(members), len(ids)


def _canonical(s: Session, image_ids: list[int]) -> int:
    """Real before staged/synthetic, then the most pixels, then the oldest."""
    images = s.scalars(select(Image).where(Image.id.in_(image_ids))).all()
    best = min(images, key=lambda im: (im.staged or im.synthetic, -(im.width or 0) * (im.height or 0), im.added_at, im.id))
    return best.id


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


def list_groups(s: Session, group: int | None = None) -> list[dict]:
    """Every duplicate group (or the one asked for), members canonical first."""
    q = select(DuplicateGroup).order_by(DuplicateGroup.id)
    if group is not None:
        found = s.get(DuplicateGroup, group)
        if found is None:
            raise InvalidInput(f"no duplicate group {group}: list them with `curator duplicates`")
        return [describe_group(s, found)]
    return [describe_group(s, g) for g in s.scalars(q)]


@dataclass
class Conflicts:
    groups: list[dict] = field(default_factory=list)  # groups whose members carry different labels
    locations: list[dict] = field(default_factory=list)  # same bytes filed under another label


def label_conflicts(s: Session) -> list[dict]:
    """Groups whose labelled members carry different labels: the first thing to fix."""
    labels: dict[int, set] = defaultdict(set)
    for gid, cls, sub in s.execute(
        select(Image.dup_group_id, Image.class_id, Image.subclass_id)
        .where(Image.dup_group_id.is_not(None), Image.label_state == LABELLED)
    ):
        labels[gid].add((cls, sub))
    return [describe_group(s, s.get(DuplicateGroup, gid))
            for gid in sorted(g for g, found in labels.items() if len(found) > 1)]


def all_conflicts(s: Session) -> Conflicts:
    """Group label conflicts, plus paths whose folder said another label than their image has."""
    out = Conflicts(groups=label_conflicts(s))
    rows = s.execute(
        select(ImageLocation, Image).join(Image).where(ImageLocation.folder_label.is_not(None))
    ).all()
    for loc, image in rows:
        if loc.folder_label != image.label:
            out.locations.append({"image": image.id, "path": loc.path,
                                  "folder_label": loc.folder_label, "label": image.label})
    return out
