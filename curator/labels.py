"""Changing what the library says about images: labels, unknown, reject/restore, flags, notes,
and renaming or merging classes. Every change appends a history row; nothing is overwritten
silently, and an image already carrying the requested value is left alone (no row).

Each change first locks the rows of the images it changes (see `lock`), so two sessions
labelling the same images at once on PostgreSQL take turns and lose no update.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from curator import history
from curator.classes import (
    LabelSpec,
    get_subclass,
    images_under,
    parse_label,
    resolve,
    validate_name,
    write_lock,
)
from curator.errors import ClassNotFound, InvalidInput
from curator.library import Library
from curator.library.models import (
    ACTIVE,
    FLAGS,
    LABELLED,
    REJECTED,
    UNKNOWN,
    Image,
    LabelClass,
    Subclass,
    label_text,
)


LOCK_CHUNK = 10_000  # ids per locking query (drivers cap the parameters of one statement)


def apply_to(lib, refs: list[str], of: str | None, action, **options) -> Change:
    """Select images (ids, paths, sha256 prefixes, or every image labelled ``of``) and apply one
    action of this module to them in one transaction, then fold the tallies the change wrote
    (``curator.tallies``: the next count reads a few rows, even after relabelling 100k images).

    Args:
        action: ``label``, ``relabel``, ``mark_unknown``, ``reject``, ``restore``, ``set_flags``...
            called as ``action(session, images, **options)``.
    """
    from curator import catalog, tallies

    with lib.session() as s:
        change = action(s, catalog.select_images(s, refs, of), **options)
    tallies.settle_library(lib, at=tallies.WRITER_SETTLE_AT)
    return change


def lock(session: Session, images: list[Image]) -> None:
    """Lock the rows of ``images`` until the transaction ends and reload them, where the
    database has row locks (PostgreSQL: ``SELECT ... FOR NO KEY UPDATE``).

    A second session changing the same images waits for the first to commit, then sees its
    changes: no update is lost and history's old values are the ones replaced. Rows are locked
    in id order, so two sessions cannot deadlock on them. SQLite has no row locks: there
    ``write_lock`` takes the library's one write lock now, rather than at the first real change,
    after the images were read (another writer waits for it, up to the busy timeout).

    Class and sub-class names are read again too: a rename committed while this session waited
    shows in the old values its history records.
    """
    if not images:
        return
    write_lock(session)
    sqlite = session.get_bind().dialect.name == "sqlite"
    ids = sorted({image.id for image in images})
    for start in range(0, len(ids), LOCK_CHUNK):
        chunk = select(Image).where(Image.id.in_(ids[start:start + LOCK_CHUNK])).order_by(Image.id)
        if not sqlite:
            chunk = chunk.with_for_update(key_share=True)
        session.scalars(chunk.execution_options(populate_existing=True)).all()
    for obj in list(session.identity_map.values()):
        if isinstance(obj, (LabelClass, Subclass)) and not session.is_modified(obj):
            session.expire(obj, ["name"])


@dataclass
class Change:
    """What a labelling call did: ids of images changed, and how many needed no change."""

    action: str
    changed: list[int] = field(default_factory=list)
    unchanged: int = 0

    def add(self, image: Image, did_change: bool) -> None:
        if did_change:
            self.changed.append(image.id)
        else:
            self.unchanged += 1


def apply_label(
    session: Session,
    image: Image,
    state: str,
    cls: LabelClass | None = None,
    sub: Subclass | None = None,
    *,
    action: str,
    source: str = "cli",
    detail: str | None = None,
) -> bool:
    """Set one image's label and record the change. Returns False if it already had that label."""
    old = image.label
    image.label_state, image.label_class, image.subclass = state, cls, sub
    new = image.label
    if new == old:
        return False
    history.record(session, image, action, "label", old, new, source=source, detail=detail)
    return True


def _set_label(session, images, spec: LabelSpec, action, *, create, source, detail) -> Change:
    write_lock(session)  # SQLite: before the class is looked up (another session may rename it)
    try:  # a share lock on the target: no rename or merge of it until this commits
        cls, sub = resolve(session, spec, create=create, lock="share")
    except ClassNotFound as e:  # only here can --create help
        hint = f"add it with `curator classes add {spec}` or pass --create"
        raise ClassNotFound(f"{e}; {hint}") from None
    lock(session, images)
    change = Change(action)
    detail_of = detail.get if isinstance(detail, dict) else lambda _: detail
    for image in images:
        change.add(image, apply_label(session, image, spec.state, cls, sub, action=action,
                                      source=source, detail=detail_of(image.id)))
    return change


def label(session: Session, images: list[Image], label: str, *, create: bool = False,
          source: str = "cli", detail: str | None = None) -> Change:
    """Label images that have no class yet (unlabelled or unknown).

    Raises:
        InvalidInput: an image already has a different class: that is a relabel.
    """
    spec = parse_label(label)
    lock(session, images)
    for image in images:
        if image.label_state == LABELLED and image.label != str(spec):
            raise InvalidInput(
                f"image {image.id} is already labelled {image.label}:"
                " use `curator relabel` to change a label"
            )
    return _set_label(session, images, spec, "label", create=create, source=source, detail=detail)


def relabel(session: Session, images: list[Image], label: str, *, create: bool = False,
            source: str = "cli", detail: str | None = None) -> Change:
    """Give images a new label, whatever they had."""
    return _set_label(session, images, parse_label(label), "relabel", create=create,
                      source=source, detail=detail)


def accept(session: Session, images: list[Image], label: str, *, source: str = "model",
           detail: str | dict[int, str] | None = None) -> Change:
    """Take a model's prediction as the label (a model-assisted label, recorded as ``accept``).

    ``detail`` is one text for every image, or each image's own (``{image id: text}``: the run
    and that image's confidence), so a batch of one class is one call.
    """
    return _set_label(session, images, parse_label(label), "accept", create=True, source=source, detail=detail)


def tag(session: Session, images: list[Image], name: str, *, source: str = "cli", detail: str | None = None) -> Change:
    """Add tag ``name`` (a saved selection) to images that do not have it yet."""
    from curator.library.models import ImageTag

    if not name.strip() or len(name) > 200:
        raise InvalidInput(f"a tag needs 1 to 200 characters, not {len(name.strip())}")
    lock(session, images)
    ids = [image.id for image in images]
    have = {i for start in range(0, len(ids), 500)  # only the images given: never every tagged one
            for i in session.scalars(select(ImageTag.image_id).where(
                ImageTag.tag == name, ImageTag.image_id.in_(ids[start:start + 500])))}
    change = Change("tag")
    for image in images:
        if image.id in have:
            change.add(image, False)
            continue
        session.add(ImageTag(image_id=image.id, tag=name, source=source))
        history.record(session, image, "tag", "tag", None, name, source=source, detail=detail)
        change.add(image, True)
    return change


def mark_unknown(session: Session, images: list[Image], *, source: str = "cli") -> Change:
    """Mark images unknown: good images whose class nobody knows yet (kept, never trained on)."""
    return _set_label(session, images, LabelSpec(UNKNOWN), "unknown", create=False,
                      source=source, detail=None)


def reject(session: Session, images: list[Image], reason: str = "rejected by user", *,
           source: str = "cli") -> Change:
    """Reject images (bad quality, not a subject...): kept with the reason, used for nothing."""
    if not reason.strip():
        raise InvalidInput("give a reason for the rejection with --reason")
    lock(session, images)
    change = Change("reject")
    for image in images:
        # An unreadable file keeps the reason it was rejected for at import.
        if image.status == REJECTED and (image.reject_reason == reason or image.width is None):
            change.add(image, False)
            continue
        old = _status(image)
        image.status, image.reject_reason = REJECTED, reason
        history.record(session, image, "reject", "status", old, _status(image), source=source)
        change.add(image, True)
    return change


def restore(session: Session, images: list[Image], *, source: str = "cli") -> Change:
    """Make rejected images active again.

    Raises:
        InvalidInput: an image was never readable (corrupt, truncated...): nothing to restore.
    """
    lock(session, images)
    for image in images:
        if image.status == REJECTED and image.width is None:
            raise InvalidInput(
                f"image {image.id} could not be read at import ({image.reject_reason}):"
                " it cannot be restored; re-import a good copy instead"
            )
    change = Change("restore")
    for image in images:
        if image.status == ACTIVE:
            change.add(image, False)
            continue
        old = _status(image)
        image.status, image.reject_reason = ACTIVE, None
        history.record(session, image, "restore", "status", old, ACTIVE, source=source)
        change.add(image, True)
    return change


def _status(image: Image) -> str:
    return f"rejected: {image.reject_reason}" if image.status == REJECTED else image.status


def set_flags(session: Session, images: list[Image], *, source: str = "cli",
              **flags: bool | None) -> Change:
    """Set or clear ``staged``, ``synthetic`` and ``benchmark`` (None leaves a flag alone)."""
    unknown = set(flags) - set(FLAGS)
    if unknown:
        raise InvalidInput(f"no flag {sorted(unknown)[0]}: flags are {', '.join(FLAGS)}")
    wanted = {k: v for k, v in flags.items() if v is not None}
    if not wanted:
        raise InvalidInput("name a flag to set: --staged/--no-staged, --synthetic/--no-synthetic, --benchmark/--no-benchmark")
    lock(session, images)
    for image in images:
        after = {name: wanted.get(name, getattr(image, name)) for name in ("staged", "synthetic")}
        if all(after.values()):
            raise InvalidInput(
                f"image {image.id} would be both staged and synthetic: an image is one or the other"
                " (clear one with --no-staged or --no-synthetic)"
            )
    change = Change("flag")
    for image in images:
        did = False
        for name, value in wanted.items():
            if getattr(image, name) != value:
                history.record(session, image, "flag", name, str(getattr(image, name)).lower(),
                               str(value).lower(), source=source)
                setattr(image, name, value)
                did = True
        change.add(image, did)
    return change


def set_note(session: Session, image: Image, note: str | None, *, source: str = "cli") -> Change:
    """Replace an image's free-text note (empty clears it)."""
    note = (note or "").strip() or None
    lock(session, [image])
    change = Change("note")
    if image.note != note:
        history.record(session, image, "note", "note", image.note, note, source=source)
        image.note = note
        change.add(image, True)
    else:
        change.add(image, False)
    return change


def rename(lib: Library, old: str, new: str, *, source: str = "cli") -> Change:
    """Rename a class (``old``) or a sub-class (``class/sub``); every image's history records it.

    Raises:
        InvalidInput: the new name is taken (merge instead).
    """
    with lib.session() as s:
        return _rename(s, old, new, source=source)


def _rename(session: Session, old: str, new: str, *, source: str = "cli") -> Change:
    """``rename`` in the caller's transaction."""
    spec = parse_label(old)
    if spec.state != LABELLED:
        raise InvalidInput(f"'{old}' is a label state, not a class: it cannot be renamed")
    write_lock(session)
    cls, sub = resolve(session, spec, lock="update")  # labelling into it waits until this commits
    if sub is not None and new.startswith(f"{cls.name}/"):
        new = new.partition("/")[2]  # `rename kangaroo/joey kangaroo/young` is fine too
    new = validate_name(new, "sub-class" if sub else "class")
    target = sub or cls
    if new == target.name:
        return Change("rename", unchanged=len(images_under(session, spec)))
    siblings = cls.subclasses if sub else session.query(LabelClass).all()
    if any(t.name == new and t is not target for t in siblings):
        what = label_text(LABELLED, cls.name, new) if sub else new
        raise InvalidInput(f"'{what}' already exists: use `curator classes merge {old} {what}`")
    images = _locked_under(session, spec, cls, sub)
    before = {im.id: im.label for im in images}
    target.name = new
    change = Change("rename")
    for image in images:
        history.record(session, image, "rename", "label", before[image.id], image.label,
                       source=source, detail=f"{spec} renamed")
        change.add(image, True)
    return change


def _locked_under(session: Session, spec: LabelSpec, cls: LabelClass, sub: Subclass | None) -> list[Image]:
    """The images under a class (or sub-class) whose row ``resolve(lock="update")`` holds,
    locked; less any that a session which held their rows first has moved out meanwhile."""
    images = images_under(session, spec)
    lock(session, images)
    return [im for im in images if im.label_state == LABELLED and im.class_id == cls.id
            and (sub is None or im.subclass_id == sub.id)]


def merge(lib: Library, src: str, dst: str, *, source: str = "cli") -> Change:
    """Move every image under ``src`` to ``dst`` and delete ``src``.

    Class into class keeps sub-classes (created under ``dst`` as needed); anything else gives
    each image exactly the label ``dst``.
    """
    with lib.session() as s:
        return _merge(s, src, dst, source=source)


def _merge(session: Session, src: str, dst: str, *, source: str = "cli") -> Change:
    """``merge`` in the caller's transaction."""
    s, d = parse_label(src), parse_label(dst)
    if s.state != LABELLED or d.state != LABELLED:
        raise InvalidInput("merge takes two labels: SRC and DST, each CLASS or CLASS/SUBCLASS")
    if s == d or (s.sub is None and s.cls == d.cls):
        raise InvalidInput(f"cannot merge {src} into {dst}: pick a label outside it")
    write_lock(session)
    # both rows locked for update, in name order: two merges the other way round cannot deadlock
    found = {spec: resolve(session, spec, lock="update") for spec in sorted((s, d), key=str)}
    (src_cls, src_sub), (dst_cls, dst_sub) = found[s], found[d]
    if s.sub is None and d.sub is None:
        for sub in src_cls.subclasses:  # keep every sub-class, even one with no images yet
            get_subclass(session, dst_cls, sub.name, create=True)
    images = _locked_under(session, s, src_cls, src_sub)
    change = Change("merge")
    for image in images:
        sub = dst_sub
        if s.sub is None and d.sub is None and image.subclass is not None:
            sub = get_subclass(session, dst_cls, image.subclass.name, create=True)
        change.add(image, apply_label(session, image, LABELLED, dst_cls, sub, action="merge",
                                      source=source, detail=f"{s} merged into {d}"))
    session.flush()
    session.delete(src_sub or src_cls)
    return change
