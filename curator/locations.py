"""Where an image's file is now: the readable path of each image, and moving a whole tree.

An image keeps every path its bytes were imported from (``ImageLocation``); ``Image.path`` is
the one commands read. When a folder moves, ``readable_paths`` falls back to the first other
location that exists, and ``relocate`` rewrites every path under an old prefix to a new one
(``curator relocate OLD NEW``). A location whose new path is already a location of the same
image (the moved folder was imported again) is merged into it; one that is another image's
path refuses the whole move, which then changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import delete, func, literal, or_, select, update
from sqlalchemy.orm import Session

from curator.errors import InvalidInput, NotFound
from curator.library import Library
from curator.library.models import Image, ImageLocation

CHUNK = 500  # ids per IN list


def readable_paths(session: Session, image_ids: Iterable[int]) -> tuple[dict[int, str], list[int]]:
    """The path to read each image from: ``Image.path`` if it exists, else the first of its
    locations that exists.

    Returns:
        ``(paths, missing)``: ``{image id: path}`` for the images that have a readable file,
        and the ids (in the order given) of those that have none. Ids of no image are left out.
    """
    ids = list(dict.fromkeys(image_ids))
    paths: dict[int, str] = {}
    gone: list[int] = []
    for chunk in _chunks(ids):
        for image_id, path in session.execute(select(Image.id, Image.path).where(Image.id.in_(chunk))):
            if os.path.exists(path):
                paths[image_id] = path
            else:
                gone.append(image_id)
    for chunk in _chunks(gone):
        rows = session.execute(select(ImageLocation.image_id, ImageLocation.path)
                               .where(ImageLocation.image_id.in_(chunk)).order_by(ImageLocation.id))
        for image_id, path in rows:
            if image_id not in paths and os.path.exists(path):
                paths[image_id] = path
    gone_set = set(gone)
    return paths, [i for i in ids if i in gone_set and i not in paths]


def missing_warning(missing: int) -> str | None:
    """The line a command shows when images had no readable file; None when none."""
    if not missing:
        return None
    return (f"{missing} images missing: no file at any of their paths; run `curator relocate OLD NEW`"
            " if their folder moved, or import them again from where they are now")


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i:i + CHUNK]


# -- relocate ----------------------------------------------------------------------------------


@dataclass
class RelocateSummary:
    """What ``relocate`` did (or, with ``dry_run``, would do)."""

    old: str
    new: str
    images: int = 0  # images whose Image.path moved
    locations: int = 0  # locations rewritten
    merged: int = 0  # locations dropped: their new path was already a location of the same image
    exist: int = 0  # of the locations rewritten, how many have a file at their new path
    dry_run: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def relocate(lib: Library, old_prefix: str | os.PathLike, new_prefix: str | os.PathLike, *,
             dry_run: bool = False) -> RelocateSummary:
    """Rewrite every image path and location under ``old_prefix`` to ``new_prefix``, in one
    transaction, reading the locations in chunks.

    Raises:
        InvalidInput: the prefixes are the same, or a new path is already another image's location.
        NotFound: no path is under ``old_prefix``.
    """
    old, new = _prefix(old_prefix), _prefix(new_prefix)
    if old == new:
        raise InvalidInput(f"{old} is where the paths are already: give the folder they moved to")
    if new.startswith(old.rstrip(os.sep) + os.sep):
        raise InvalidInput(f"cannot relocate {old} into a folder inside it ({new}):"
                           " relocate each of its sub-folders instead")
    out = RelocateSummary(old, new, dry_run=dry_run)
    with lib.session() as s:
        out.images = s.scalar(select(func.count()).where(_under(Image.path, old)))
        merge = _plan(s, old, new, out)
        out.merged = len(merge)
        if not (out.images or out.locations or out.merged):
            raise NotFound(f"no image path is under {old}: nothing to relocate"
                           " (`curator show ID` lists an image's paths)")
        if dry_run:
            return out
        for chunk in _chunks(merge):
            s.execute(delete(ImageLocation).where(ImageLocation.id.in_(chunk)))
        for table in (ImageLocation, Image):
            s.execute(update(table).where(_under(table.path, old))
                      .values(path=literal(new) + func.substr(table.path, len(old) + 1)),
                      execution_options={"synchronize_session": False})
    return out


def _plan(s: Session, old: str, new: str, out: RelocateSummary) -> list[int]:
    """Count the locations to move and the new paths that exist; the ids of those to merge.

    Raises InvalidInput at the first new path that is another image's location."""
    merge: list[int] = []
    last = 0
    while True:
        rows = s.execute(select(ImageLocation.id, ImageLocation.image_id, ImageLocation.path)
                         .where(_under(ImageLocation.path, old), ImageLocation.id > last)
                         .order_by(ImageLocation.id).limit(CHUNK)).all()
        if not rows:
            return merge
        last = rows[-1][0]
        moved = {loc_id: new + path[len(old):] for loc_id, _, path in rows}
        taken = dict(s.execute(select(ImageLocation.path, ImageLocation.image_id)
                               .where(ImageLocation.path.in_(list(moved.values())))).all())
        for loc_id, image_id, _ in rows:
            target = moved[loc_id]
            if target in taken and taken[target] != image_id:
                raise InvalidInput(f"{target} is already a path of image {taken[target]}, not of image {image_id}:"
                                   f" nothing moved; import {new} again instead (`curator import {new}`)")
            if target in taken:
                merge.append(loc_id)
            else:
                out.locations += 1
                out.exist += os.path.exists(target)


def _under(column, prefix: str):
    """``column`` is ``prefix`` or a path inside it (never ``/a/bc`` for ``/a/b``)."""
    return or_(column == prefix, column.startswith(prefix.rstrip(os.sep) + os.sep, autoescape=True))


def _prefix(path: str | os.PathLike) -> str:
    """An absolute path as import writes them (resolved), whether or not it exists now."""
    return str(Path(path).expanduser().resolve())
