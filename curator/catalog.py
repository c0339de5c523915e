"""Finding images and describing them: lookup by id, path or sha256 prefix; show; library stats."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from curator import history, tallies
from curator.classes import images_under, parse_label
from curator.errors import ImageNotFound, InvalidInput
from curator.library import Library, schema
from curator.library.models import (
    ACTIVE,
    FLAGS,
    LABELLED,
    UNKNOWN,
    UNLABELLED,
    Image,
    ImageLocation,
    ImportBatch,
    LabelClass,
    Subclass,
)

_HEX = re.compile(r"^[0-9a-fA-F]{6,64}$")


def find_image(session: Session, ref: str) -> Image:
    """The image a reference names: an id, a path it was imported from, or a sha256 prefix.

    Raises:
        ImageNotFound: nothing matches, or a sha256 prefix matches several images.
    """
    ref = ref.strip()
    if ref.isdigit():
        # A sha256 prefix can be all digits too; an id wins when both match.
        image = session.get(Image, int(ref)) or _by_sha256_prefix(session, ref)
        if image is None:
            raise ImageNotFound(f"no image with id {ref}")
        return image
    for path in {ref, str(Path(ref).expanduser().resolve())}:
        image = session.scalar(
            select(Image).join(ImageLocation).where(ImageLocation.path == path)
        )
        if image is not None:
            return image
    image = _by_sha256_prefix(session, ref)
    if image is None:
        raise ImageNotFound(
            f"no image matches '{ref}' (give an image id, an imported path or a sha256 prefix)"
        )
    return image


def _by_sha256_prefix(session: Session, ref: str) -> Image | None:
    """The one image whose sha256 starts with ``ref`` (6+ hex digits), or None."""
    if not _HEX.match(ref):
        return None
    found = session.scalars(
        select(Image).where(Image.sha256.like(ref.lower() + "%")).limit(2)
    ).all()
    if len(found) > 1:
        raise ImageNotFound(f"sha256 prefix '{ref}' matches several images: give more of it")
    return found[0] if found else None


def select_images(session: Session, refs: list[str] = (), of: str | None = None) -> list[Image]:
    """Images named by references, plus every image under the label ``of`` (``class[/sub]``,
    ``unknown`` or ``unlabelled``). Duplicates are dropped; order is by first mention.

    Raises:
        InvalidInput: neither references nor ``of`` were given.
    """
    refs = [r for r in refs if r.strip() and not r.lstrip().startswith("#")]
    if not refs and of is None:
        raise InvalidInput("name some images: IDs/paths/sha256 prefixes, --file FILE (- for stdin) or --of LABEL")
    images = [find_image(session, r) for r in refs]
    if of is not None:
        images += images_under(session, parse_label(of))
    return list({im.id: im for im in images}.values())


def describe(image: Image) -> dict:
    """An image as a plain dict (what ``curator show`` prints)."""
    return {
        "id": image.id,
        "label": image.label,
        "class": image.label_class.name if image.label_class else None,
        "subclass": image.subclass.name if image.subclass else None,
        "status": image.status,
        "reject_reason": image.reject_reason,
        "staged": image.staged,
        "synthetic": image.synthetic,
        "benchmark": image.benchmark,
        "note": image.note,
        "path": image.path,
        "sha256": image.sha256,
        "phash": f"{image.phash & (2**64 - 1):016x}" if image.phash is not None else None,
        "width": image.width,
        "height": image.height,
        "format": image.format,
        "mode": image.mode,
        "bytes": image.bytes,
        "exif_orientation": image.exif_orientation,
        "source": image.source,
        "batch": image.batch_id,
        "added_at": image.added_at.isoformat(timespec="seconds"),
        "locations": [
            {"path": loc.path, "folder_label": loc.folder_label} for loc in image.locations
        ],
    }


def show(lib: Library, ref: str, *, history_rows: int = 10) -> dict:
    """One image in full, with its most recent history rows."""
    with lib.session() as s:
        image = find_image(s, ref)
        return {**describe(image), "history": history.events(s, image)[-history_rows:]}


def image_history(lib: Library, ref: str) -> list[dict]:
    """Every change made to the image ``ref`` names (see ``find_image``), oldest first."""
    with lib.session() as s:
        return history.events(s, find_image(s, ref))


def stats(lib: Library) -> dict:
    """The library as a whole: counts by state, status, flag and format, sizes, batches.

    Read from the tallies (``curator.tallies``), which hold the image groups and the rows of
    the big tables; only the small tables are counted.
    """
    tallies.settle_library(lib)
    with lib.session() as s:
        count = lambda table: int(s.scalar(select(func.count()).select_from(table)) or 0)  # noqa: E731
        images = _image_groups(s)
        size, formats = images.pop("_bytes"), images.pop("_formats")
        locations = tallies.rows(s, "image_locations")
        return {
            "library": lib.display,
            "folder": str(lib.folder),
            "schema": schema.current_revision(lib.engine),
            **images,
            "classes": count(LabelClass),
            "subclasses": count(Subclass),
            "locations": locations,
            "duplicate_locations": locations - images["images"],
            "bytes": size,
            "formats": formats,
            "import_batches": count(ImportBatch),
            "history_rows": tallies.rows(s, "label_events"),
        }


def _image_groups(s: Session) -> dict:
    """Image counts by status, label state (active), flag (active) and format (active), and
    the bytes of all, from the image tallies (a few rows per class)."""
    out = {"images": 0, "active": 0, "rejected": 0, **dict.fromkeys((LABELLED, UNKNOWN, UNLABELLED), 0),
           **dict.fromkeys(FLAGS, 0), "_bytes": 0}
    formats: dict[str | None, int] = {}
    for state, _, _, status, staged, synthetic, benchmark, fmt, n, size in tallies.image_groups(s):
        n = int(n)
        out["images"] += n
        out["_bytes"] += int(size or 0)
        if status != ACTIVE:
            out["rejected"] += n
            continue
        out["active"] += n
        out[state] += n
        for flag, on in zip(FLAGS, (staged, synthetic, benchmark)):
            out[flag] += n if on else 0
        formats[fmt] = formats.get(fmt, 0) + n
    out["_formats"] = {k or "unreadable": v for k, v in sorted(formats.items(), key=str)}
    return out
