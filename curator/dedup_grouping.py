"""Duplicate pairs joined into groups, each with its canonical image (``curator.dedup`` finds
the pairs; this module keeps the groups they make up to date).

A group is a connected component of the stored pairs. The canonical image is real before
staged or synthetic, then the one with most pixels, then the oldest. Regrouping keeps group
ids where it can and writes only what changed.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from curator.library.models import DuplicateGroup, DuplicatePair, Image, utcnow

IN_CHUNK = 10_000  # ids in one IN (...): under SQLite's 32,766 and PostgreSQL's 65,535 parameters


def regroup(s: Session) -> tuple[int, int]:
    """Rebuild groups from all stored pairs, keeping existing group ids where possible.

    Only what changed is written: the images whose group changed, the groups whose members
    or canonical image changed (their ``updated_at`` is then now), new groups, and groups
    left without members (deleted). A run that adds a few pairs to a million images writes
    a few rows, not every image.
    """
    members = _components(s)
    old, facts = _grouped_images(s)
    facts.update(_member_facts(s, sorted({i for image_ids in members for i in image_ids} - facts.keys())))
    old_canonical = dict(s.execute(select(DuplicateGroup.id, DuplicateGroup.canonical_id)).all())
    group_of = _assign_groups(members, old)
    new = [k for k, gid in enumerate(group_of) if gid is None]
    now = utcnow()
    for k, gid in zip(new, _insert_groups(s, len(new), now)):
        group_of[k] = gid
    new_of = {i: gid for image_ids, gid in zip(members, group_of) for i in image_ids}
    changed = _move_images(s, old, new_of)
    canonical = {gid: _canonical([facts[i] for i in image_ids]) for image_ids, gid in zip(members, group_of)}
    touched = [{"id": gid, "canonical_id": c, "updated_at": now} for gid, c in canonical.items()
               if gid in changed or c != old_canonical.get(gid)]
    if touched:
        s.execute(update(DuplicateGroup), touched)  # one executemany by primary key
    gone = sorted(old_canonical.keys() - canonical.keys())
    for lo in range(0, len(gone), IN_CHUNK):
        s.execute(delete(DuplicateGroup).where(DuplicateGroup.id.in_(gone[lo:lo + IN_CHUNK])))
    return len(members), len(new_of)


def _move_images(s: Session, old: dict[int, int], new: dict[int, int]) -> set[int]:
    """Set the group of each image whose group changed (``old`` to ``new``, by image id; an
    image in neither is in no group). Returns the groups that lost or gained a member."""
    ids = sorted(old.keys() | new.keys())
    moved = [{"id": i, "dup_group_id": new.get(i)} for i in ids if old.get(i) != new.get(i)]
    if moved:
        s.execute(update(Image), moved)  # one executemany by primary key
    lost = {old[r["id"]] for r in moved if r["id"] in old}
    return lost | {r["dup_group_id"] for r in moved if r["dup_group_id"] is not None}


def _components(s: Session) -> list[list[int]]:
    """The stored pairs' connected components: image ids, ascending, ordered by first id."""
    import numpy as np

    from curator import dedup_index

    pairs = np.array(s.execute(select(DuplicatePair.image_a, DuplicatePair.image_b)).all(), dtype=np.int64).reshape(-1, 2)
    ids = np.unique(pairs)
    comp = dedup_index.groups(len(ids), np.searchsorted(ids, pairs)) if len(ids) else np.array([], np.int64)
    members: dict[int, list[int]] = defaultdict(list)
    for image_id, c in zip(ids.tolist(), comp.tolist()):
        members[c].append(image_id)
    return list(members.values())


def _assign_groups(members: list[list[int]], old: dict[int, int]) -> list[int | None]:
    """Each component's group id: the smallest of its members' old groups not taken by an
    earlier component, or None (a new group)."""
    used: set[int] = set()
    out: list[int | None] = []
    for image_ids in members:
        reuse = min({old[i] for i in image_ids if i in old} - used, default=None)
        if reuse is not None:
            used.add(reuse)
        out.append(reuse)
    return out


def _insert_groups(s: Session, n: int, now) -> list[int]:
    """``n`` new groups (canonical set later), their ids ascending, in one statement."""
    if not n:
        return []
    rows = [{"created_at": now, "updated_at": now} for _ in range(n)]
    return sorted(s.scalars(insert(DuplicateGroup).returning(DuplicateGroup.id), rows).all())


_FACTS = (Image.id, Image.staged, Image.synthetic, Image.width, Image.height, Image.added_at)


def _grouped_images(s: Session) -> tuple[dict[int, int], dict[int, tuple]]:
    """The images in a group now: their group ids, and what the canonical choice needs of
    them (``_FACTS``), by image id."""
    rows = s.execute(select(Image.dup_group_id, *_FACTS).where(Image.dup_group_id.is_not(None))).all()
    return {r[1]: r[0] for r in rows}, {r[1]: tuple(r[1:]) for r in rows}


def _member_facts(s: Session, ids: list[int]) -> dict[int, tuple]:
    """``_FACTS`` of the images ``ids`` (those not in a group yet: few), by id."""
    facts = {}
    for lo in range(0, len(ids), IN_CHUNK):
        rows = s.execute(select(*_FACTS).where(Image.id.in_(ids[lo:lo + IN_CHUNK])))
        facts.update((r[0], tuple(r)) for r in rows)
    return facts


def _canonical(facts: list[tuple]) -> int:
    """Real before staged/synthetic, then the most pixels, then the oldest.

    Args:
        facts: ``(id, staged, synthetic, width, height, added_at)`` of each member.
    """
    best = min(facts, key=lambda f: (f[1] or f[2], -(f[3] or 0) * (f[4] or 0), f[5], f[0]))
    return best[0]
