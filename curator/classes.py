"""Classes and sub-classes: names, lookup, creation, rename, merge, and per-class counts.

A label is written ``class`` or ``class/subclass``; ``unknown`` and ``unlabelled`` are states,
not classes, and no class or sub-class may take those names (nor ``labelled``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import false, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from curator.defaults import DEFAULT_MIN_COUNT
from curator.errors import ClassNotFound, InvalidInput
from curator.library import Library
from curator.library.models import (
    ACTIVE,
    LABEL_STATES,
    LABELLED,
    UNKNOWN,
    UNLABELLED,
    Image,
    ImageTally,
    LabelClass,
    Subclass,
    label_text,
)

RESERVED = set(LABEL_STATES)  # names no class or sub-class may take
STATE_LABELS = (UNKNOWN, UNLABELLED)  # labels that name a state; `labelled` needs a class


@dataclass(frozen=True)
class LabelSpec:
    """A parsed label: a state, and for ``labelled`` a class and optional sub-class."""

    state: str
    cls: str | None = None
    sub: str | None = None

    def __str__(self) -> str:
        return label_text(self.state, self.cls, self.sub)


def validate_name(name: str, what: str = "class") -> str:
    """Check a class or sub-class name and return it stripped."""
    name = name.strip()
    if not name:
        raise InvalidInput(f"a {what} name cannot be empty")
    if len(name) > 200:  # the column's size: SQLite would store more, PostgreSQL refuses it
        raise InvalidInput(f"a {what} name has at most 200 characters, not {len(name)}")
    if "/" in name:
        raise InvalidInput(f"{what} name '{name}' contains '/': write labels as CLASS/SUBCLASS")
    if name.lower() in RESERVED:
        hint = "pick another name"
        if name.lower() == UNKNOWN:
            hint = "mark images unknown with `curator unknown`"
        raise InvalidInput(f"'{name}' is a label state, not a {what} name: {hint}")
    return name


def parse_label(text: str, subclass: str | None = None) -> LabelSpec:
    """Parse ``class``, ``class/sub``, ``unknown`` or ``unlabelled`` (plus an optional sub-class)."""
    text = text.strip()
    if text.lower() in STATE_LABELS and subclass is None:
        return LabelSpec(text.lower())
    cls, _, sub = text.partition("/")
    if sub and subclass:
        raise InvalidInput(f"label '{text}' already names a sub-class; drop --subclass {subclass}")
    sub = sub or subclass
    return LabelSpec(LABELLED, validate_name(cls), validate_name(sub, "sub-class") if sub else None)


def _known_classes(session: Session) -> str:
    names = session.scalars(select(LabelClass.name).order_by(LabelClass.name).limit(12)).all()
    return ", ".join(names) if names else "none yet"


def write_lock(session: Session) -> None:
    """On SQLite, take the library's one write lock now, with a write that changes nothing.

    What the transaction reads after this is what it will write over: another writer waits
    for it (up to the busy timeout) instead of committing in between. A no-op on servers with
    row locks, where callers lock the rows they need (``resolve(lock=...)``, ``labels.lock``).
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(Image).where(false()).values(note=Image.note))


def _find(session: Session, query, lock: str | None):
    """One row of ``query``, locked until the transaction ends where the database has row locks.

    ``lock="share"`` (``FOR KEY SHARE``) keeps the row from being renamed or deleted while this
    transaction uses it; ``"update"`` (``FOR UPDATE``) is for renaming or deleting it. A row
    another transaction renamed while this one waited is not found (PostgreSQL re-checks the
    name on the row it waited for). The row is reloaded, so its name is the committed one.
    """
    if lock is None:
        return session.scalar(query)
    if session.get_bind().dialect.name != "sqlite":
        query = query.with_for_update(key_share=lock == "share")
    return session.scalar(query.execution_options(populate_existing=True))


def _get_or_create(session: Session, query, make):
    """The row ``query`` finds, else a new one from ``make()``; safe when another session
    creates the same name at the same moment (both end up with the one row)."""
    if session.get_bind().dialect.name == "sqlite":
        write_lock(session)  # writers take turns: a row another committed is seen now
        found = session.scalar(query)
        if found is None:
            found = make()
            session.add(found)
            session.flush()
        return found
    try:
        with session.begin_nested():  # a savepoint: losing the race undoes only this insert
            found = make()
            session.add(found)
            session.flush()
    except IntegrityError:
        # the unique name index made this insert wait for the other session, which has
        # committed the same name: use its row
        found = session.scalar(query)
        if found is None:
            raise
    return found


def get_class(session: Session, name: str, *, create: bool = False, lock: str | None = None) -> LabelClass:
    """The class called ``name``; created if asked, else ClassNotFound naming the known ones.

    ``lock``: None, ``"share"`` or ``"update"`` (see ``_find``).
    """
    query = select(LabelClass).where(LabelClass.name == name)
    found = _find(session, query, lock)
    if found is None:
        if not create:
            raise ClassNotFound(f"no class '{name}' (known: {_known_classes(session)})")
        found = _get_or_create(session, query, lambda: LabelClass(name=validate_name(name)))
    return found


def get_subclass(session: Session, cls: LabelClass, name: str, *, create: bool = False,
                 lock: str | None = None) -> Subclass:
    """The sub-class ``name`` of ``cls``; created if asked. ``lock`` as for ``get_class``."""
    query = select(Subclass).where(Subclass.class_id == cls.id, Subclass.name == name)
    found = _find(session, query, lock)
    if found is None:
        if not create:
            subs = ", ".join(s.name for s in cls.subclasses) or "none"
            raise ClassNotFound(f"class '{cls.name}' has no sub-class '{name}' (known: {subs})")
        # by id, not through cls.subclasses: an insert the savepoint undoes must not linger there
        found = _get_or_create(session, query, lambda: Subclass(class_id=cls.id, name=validate_name(name, "sub-class")))
        session.expire(cls, ["subclasses"])
    return found


def resolve(
    session: Session, spec: LabelSpec, *, create: bool = False, lock: str | None = None
) -> tuple[LabelClass | None, Subclass | None]:
    """The class and sub-class rows a label names (None, None for a state).

    ``lock`` (``"share"`` or ``"update"``) applies to the row the label names: the sub-class
    when there is one (its class then gets ``"share"``), else the class.
    """
    if spec.state != LABELLED:
        return None, None
    cls = get_class(session, spec.cls, create=create, lock=lock if not spec.sub or lock is None else "share")
    sub = get_subclass(session, cls, spec.sub, create=create, lock=lock) if spec.sub else None
    return cls, sub


def add(lib: Library, label: str) -> LabelSpec:
    """Create a class, or a sub-class with ``class/sub`` (its class too if new).

    Raises:
        InvalidInput: it exists already.
    """
    spec = parse_label(label)
    if spec.state != LABELLED:
        raise InvalidInput(f"'{label}' is a label state, not a class")
    with lib.session() as s:
        try:
            resolve(s, spec)
        except ClassNotFound:
            resolve(s, spec, create=True)
            return spec
    raise InvalidInput(f"{spec} already exists")


def images_under(session: Session, spec: LabelSpec) -> list[Image]:
    """Every image whose label is ``spec`` or below it (a class includes its sub-classes).

    For ``unknown`` and ``unlabelled``, active images only (what ``curator classes`` counts): a
    rejected image, such as a file unreadable at import, is not waiting for a label.
    """
    q = select(Image).where(Image.label_state == spec.state)
    if spec.state != LABELLED:
        q = q.where(Image.status == ACTIVE)
    else:
        cls, sub = resolve(session, spec)
        q = q.where(Image.class_id == cls.id)
        if sub is not None:
            q = q.where(Image.subclass_id == sub.id)
    return list(session.scalars(q.order_by(Image.id)))


def class_table(lib: Library, min_count: int = DEFAULT_MIN_COUNT) -> list[dict]:
    """Per class, then per sub-class: image counts and whether the class reaches ``min_count``.

    Counts are of labelled images. ``labelled`` counts active ones (what training may use);
    ``real`` those neither staged nor synthetic; ``rejected`` the rejected ones.
    A class is ``below`` the cutoff when its active labelled images are fewer than ``min_count``.
    Read from the tallies (``curator.tallies``): a few thousand rows however many images.
    """
    from curator import tallies

    keys = ("labelled", "real", "staged", "synthetic", "benchmark", "rejected")
    with lib.session() as s:
        rows = {cid: {"class": name, **dict.fromkeys(keys, 0), "subclasses": []}
                for cid, name in s.execute(select(LabelClass.id, LabelClass.name).order_by(LabelClass.name))}
        subs = {}
        for sid, cid, name in s.execute(select(Subclass.id, Subclass.class_id, Subclass.name).order_by(Subclass.name)):
            subs[sid] = {"subclass": name, **dict.fromkeys(keys, 0)}
            rows[cid]["subclasses"].append(subs[sid])
        groups = tallies.image_groups(s, ImageTally.label_state == LABELLED)
    for _, cid, sid, status, staged, synthetic, benchmark, _, n, _ in groups:
        active = status == ACTIVE
        counts = (active, active and not staged and not synthetic, active and staged, active and synthetic,
                  active and benchmark, not active)
        for row in (rows[cid], subs[sid]) if sid is not None else (rows[cid],):
            for k, on in zip(keys, counts):
                row[k] += int(n) if on else 0
    for row in rows.values():
        row["needs"] = max(0, min_count - row["labelled"])
        row["below_cutoff"] = row["needs"] > 0
        row["only_staged_or_synthetic"] = row["labelled"] > 0 and row["real"] == 0
    return list(rows.values())


def state_counts(lib: Library) -> dict[str, int]:
    """Active images per label state (labelled, unknown, unlabelled), from the tallies."""
    from curator import tallies

    counts = dict.fromkeys((LABELLED, UNKNOWN, UNLABELLED), 0)
    with lib.session() as s:
        for state, *_, n, _ in tallies.image_groups(s, ImageTally.status == ACTIVE):
            counts[state] += int(n)
    return counts
