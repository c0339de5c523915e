"""The SQL behind ``curator.filters``: every question answered, sorted and paged in the database.

``matches`` is one statement over one run's readable predictions of active images with every
option of a ``Query`` as a WHERE condition; ``page``, ``count`` and ``per_class`` select from it.
The per-class numbers that ``low_count`` and ``synthetic_dependent`` need (labelled images, and
how many of them are real) come from the image tallies (``curator.tallies``) joined on the
predicted class, so no prediction is read into Python to be filtered or sorted, and ``top_k``
is decoded only for the rows shown. ``count`` and ``per_class`` count in SQL the questions the
tallies cannot answer (``curator.filters`` asks the tallies first).

Guarantees (what ``tests/test_paging.py`` checks against the old Python algorithm):
- every order is total: it ends with the image id, so pages of ``offset``/``limit`` are stable
  and concatenate to the whole list;
- class names sort by code point, as Python sorts strings (``COLLATE "C"`` on PostgreSQL,
  whose default collation may be a language's).

The indexes these statements use are made by migration 0007 (see ``curator.library.models``).
"""

from __future__ import annotations

from sqlalchemy import Float, case, cast, func, literal, literal_column, null, select
from sqlalchemy.orm import aliased

from curator import tallies
from curator.library.models import (
    ACTIVE,
    LABELLED,
    UNKNOWN,
    UNLABELLED,
    Image,
    ImageTag,
    LabelClass,
    Prediction,
    SplitMember,
    Subclass,
)


def _class_columns(q, counts) -> dict:
    """``labelled``, ``needs`` and ``staged_share`` of the predicted class, as SQL expressions."""
    if counts is None:  # not asked: the constants every row carried before (nothing to join)
        return {"labelled": literal(0), "needs": literal(q.min_count), "staged_share": literal(0.0)}
    labelled = func.coalesce(counts.c.labelled, 0)
    real = func.coalesce(counts.c.real, 0)
    return {
        "labelled": labelled,
        "needs": case((labelled < q.min_count, q.min_count - labelled), else_=0),
        "staged_share": case((labelled > 0, cast(labelled - real, Float) / labelled), else_=0.0),
    }


def _conditions(q, run) -> list:
    """One WHERE condition per option given (a lookup table: every option composes)."""
    by_name = {
        "predicted": lambda v: Prediction.predicted == v,
        "min_confidence": lambda v: Prediction.confidence >= v,
        "max_confidence": lambda v: Prediction.confidence <= v,
        "split": lambda v: Image.id.in_(select(SplitMember.image_id).where(
            SplitMember.build_id == run.build_id, SplitMember.split == v)),
        "staged": lambda v: Image.staged.is_(v),
        "synthetic": lambda v: Image.synthetic.is_(v),
        "subclass": lambda v: Image.subclass_id.in_(select(Subclass.id).where(Subclass.name == v)),
        "label": lambda v: (Image.label_state == v) if v in (UNLABELLED, UNKNOWN)
        # the label state too (implied by a class): the index on (label_state, class_id) applies
        else (Image.label_state == LABELLED) & Image.class_id.in_(select(LabelClass.id).where(LabelClass.name == v)),
        "tag": lambda v: Image.id.in_(select(ImageTag.image_id).where(ImageTag.tag == v)),
    }
    found = [cond(getattr(q, name)) for name, cond in by_name.items() if getattr(q, name) is not None]
    if q.unknown:
        found.append(Image.label_state == UNKNOWN)
    elif (q.low_count or q.synthetic_dependent) and q.label is None:
        found.append(Image.label_state == UNLABELLED)  # the pool: what labelling would add
    return found


def matches(q, run) -> tuple:
    """The statement every answer selects from, and its columns by name.

    Returns:
        ``(stmt, columns)``: a ``Select`` of the image id, predicted class, confidence,
        ``labelled``, ``needs`` and ``staged_share`` with every condition of ``q`` applied (no
        order, no limit), and those columns as a dict of SQL expressions.
    """
    counts = tallies.class_counts() if (q.low_count or q.synthetic_dependent) else None
    columns = {"image_id": Prediction.image_id, "predicted": Prediction.predicted,
               "confidence": Prediction.confidence, **_class_columns(q, counts)}
    stmt = (
        select(*(c.label(name) for name, c in columns.items()))
        .select_from(Prediction)
        .join(Image, Image.id == Prediction.image_id)
        .where(Prediction.run_id == run.id, Prediction.error.is_(None), Image.status == ACTIVE, *_conditions(q, run))
    )
    if counts is not None:
        stmt = stmt.outerjoin(counts, counts.c.name == Prediction.predicted)
        if q.low_count:
            stmt = stmt.where(columns["needs"] > 0)
        if q.synthetic_dependent:
            stmt = stmt.where(columns["staged_share"] > q.max_staged_share)
    return stmt, columns


# How each question wants its answer sorted (the first that applies wins); every order ends with
# the image id, so it is total and paging is stable. ``CLASS_FIRST``: orders that keep each
# predicted class's rows together, and how they order the classes (on ``per_class`` rows).
ORDERS = (
    ("lowest", lambda c: (c.confidence, c.image_id)),
    ("unknown", lambda c: (c.predicted, c.confidence.desc(), c.image_id)),
    ("low_count", lambda c: (c.needs.desc(), c.predicted, c.confidence.desc(), c.image_id)),
    ("synthetic_dependent", lambda c: (c.staged_share.desc(), c.predicted, c.confidence.desc(), c.image_id)),
    ("max_confidence", lambda c: (c.confidence, c.image_id)),
)
DEFAULT_ORDER = lambda c: (c.predicted, c.confidence.desc(), c.image_id)  # noqa: E731
CLASS_FIRST = {
    "unknown": lambda c: c["class"],
    "low_count": lambda c: (-c["needs"], c["class"]),
    "synthetic_dependent": lambda c: (-c["staged_share"], c["class"]),
    None: lambda c: c["class"],
}


def order_name(q) -> str | None:
    """The name of the order ``q``'s question takes (None: the default order)."""
    return next((name for name, _ in ORDERS if getattr(q, name) not in (None, False)), None)


def _order_by(q, columns, dialect: str) -> tuple:
    """The ORDER BY of ``q``'s question over ``columns`` (by name: image_id, predicted, ...)."""
    order = dict(ORDERS).get(order_name(q), DEFAULT_ORDER)
    return order(_Collated(columns, dialect))


class _Collated:
    """``columns`` by attribute, ``predicted`` sorted by code point as Python sorts strings."""

    def __init__(self, columns, dialect: str) -> None:
        self._columns, self._dialect = columns, dialect

    def __getattr__(self, name: str):
        column = self._columns[name]
        return column.collate("C") if name == "predicted" and self._dialect == "postgresql" else column


def page(q, run, dialect: str, *, offset: int, limit: int | None, only: list[str] | None = None,
         match_first: bool = False):
    """The rows shown: ``matches`` in the question's order, from ``offset``, at most ``limit``
    (of the classes ``only`` when given), then what a row displays (path, label, top-k, split).

    The page is cut first, in a subquery, so the display columns are joined for its rows only.
    ``match_first`` (SQLite, for questions with few matches, such as the unknown images):
    gather the matches before sorting them, as ``per_class`` does, so SQLite starts from the
    images of the label state asked about instead of walking the spanned classes' predictions
    (0.1 s instead of 2.7 s for 20,000 of a million-image library's 29,000 unknown images).
    """
    stmt, columns = matches(q, run)
    if match_first:
        found = stmt.cte("found").prefix_with("MATERIALIZED")
        stmt, columns = select(found), {name: found.c[name] for name in columns}
    if only is not None:
        stmt = stmt.where(columns["predicted"].in_(only))
    labels = {name: literal_column(name) if name in _CLASS_COLUMNS and not match_first else c
              for name, c in columns.items()}
    shown = stmt.order_by(*_order_by(q, labels, dialect)).offset(offset or None).limit(limit).subquery("shown")
    member = aliased(SplitMember)
    return (
        select(shown, Image.path, Image.label_state, LabelClass.name.label("class_name"),
               Subclass.name.label("subclass_name"), Prediction.top_k, member.split, Image.staged, Image.synthetic)
        .join(Image, Image.id == shown.c.image_id)
        .join(Prediction, (Prediction.run_id == run.id) & (Prediction.image_id == shown.c.image_id))
        .outerjoin(LabelClass, LabelClass.id == Image.class_id)
        .outerjoin(Subclass, Subclass.id == Image.subclass_id)
        .outerjoin(member, (member.image_id == Image.id) & (member.build_id == run.build_id))
        .order_by(*_order_by(q, shown.c, dialect))
    )


_CLASS_COLUMNS = ("labelled", "needs", "staged_share")


def count(q, run):
    """How many rows match (before any limit)."""
    stmt, _ = matches(q, run)
    return stmt.with_only_columns(func.count(), maintain_column_froms=False)


def per_class(q, run, dialect: str):
    """Per predicted class among the matches: found, labelled, needs, staged share."""
    stmt, c = matches(q, run)
    if dialect == "sqlite" and (q.unknown or q.label is not None or q.low_count or q.synthetic_dependent):
        # Left alone, SQLite walks every prediction of the run in class order (to skip the GROUP
        # BY's sort) and looks each image up; matching first lets it start from the images of
        # the one label state asked about, through their index: 18 ms instead of 340 ms for the
        # unknown images of a 100k library, 110 instead of 225 for its pool.
        found = stmt.cte("found").prefix_with("MATERIALIZED")
        c = found.c
        stmt = select(found)
    return (stmt.with_only_columns(c["predicted"], func.count(), func.max(c["labelled"]), func.max(c["needs"]),
                                   func.max(c["staged_share"]))
            .group_by(c["predicted"]))


def candidates(q, run):
    """The ids of ``q``'s matches, in no order and uncut, for an order computed outside SQL
    (``curator.similarity``'s embedding scores): ``matches`` under a run; with none, the active
    images that meet ``q``'s conditions on images alone (label, sub-class, flags, tag)."""
    if run is not None:
        stmt, columns = matches(q, run)
        return stmt.with_only_columns(columns["image_id"])
    return select(Image.id).where(Image.status == ACTIVE, *_conditions(q, None))


def shown(ids: list[int], run):
    """What a row displays (path, label, and the run's prediction and split when there is a run)
    for the images ``ids``, in no order."""
    member = aliased(SplitMember)
    stmt = (select(Image.id.label("image_id"), Image.path, Image.label_state, LabelClass.name.label("class_name"),
                   Subclass.name.label("subclass_name"), Image.staged, Image.synthetic)
            .outerjoin(LabelClass, LabelClass.id == Image.class_id)
            .outerjoin(Subclass, Subclass.id == Image.subclass_id)
            .where(Image.id.in_(ids)))
    if run is None:
        return stmt.add_columns(*(null().label(name) for name in ("predicted", "confidence", "top_k", "split")))
    return (stmt.add_columns(Prediction.predicted, Prediction.confidence, Prediction.top_k, member.split)
            .outerjoin(Prediction, (Prediction.run_id == run.id) & (Prediction.image_id == Image.id))
            .outerjoin(member, (member.image_id == Image.id) & (member.build_id == run.build_id)))
