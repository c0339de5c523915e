"""Counts at any scale: read from the tallies that triggers keep (migration 0008), not counted.

Counting the images of a million-image library by class, or a run's predictions on its pool,
reads every row however good the index (0.2-2.5 s); the tallies hold the same numbers in a few
thousand rows. Triggers on images, predictions, label_events and image_locations append a
signed delta for every change, whoever makes it, so a count is always the SUM of its key's
rows and always exact. Nothing here counts the big tables themselves.

- ``image_groups``: images by label state, class, sub-class, status, flags and format.
- ``class_counts``: per class, active labelled images and how many are real (not staged or
  synthetic): a subquery to join, or ``class_totals`` to read.
- ``prediction_counts``: a run's readable predictions per predicted class on images of some
  states, between two confidences: the buckets wholly inside from the tallies, what is left
  of the bounds' own buckets (none for a bound such as 0.8) counted from the predictions.
- ``rows``: how many label events or image locations.
- ``settle`` / ``settle_library``: fold the deltas into one row a key. Readers call it when
  ``SETTLE_AT`` or more deltas wait, writers over many images when they finish (the counts
  are exact either way; folding keeps them fast to read).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from sqlalchemy import func, literal, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from curator.library.models import (
    ACTIVE,
    LABEL_STATES,
    LABELLED,
    Image,
    ImageTally,
    LabelClass,
    Prediction,
    PredictionTally,
    RowTally,
)

REJECTED_STATE = "rejected"  # a prediction tally's state for images no longer active
BUCKETS = 20  # confidence buckets of 0.05 (migration 0008): round bounds (0.5, 0.6, 0.8, 0.95) fall
# on a bucket's edge; a run's tallies are a few rows a class and state
SETTLE_AT = 20_000  # unsettled deltas a reader folds before it reads
WRITER_SETTLE_AT = 1_000  # ... and a writer over many images when it finishes
NOT_SETTLED = text("NOT settled")  # as the partial indexes say it (SQLAlchemy's ``~settled`` is
# ``settled = 0`` on SQLite, which does not match them)
IMAGE_KEYS = ("label_state", "class_id", "subclass_id", "status", "staged", "synthetic", "benchmark", "format")
_FOLDS = {  # table: (keys, summed columns)
    ImageTally: (IMAGE_KEYS, ("n", "bytes")),
    PredictionTally: (("run_id", "predicted", "state", "bucket"), ("n",)),
    RowTally: (("table_name",), ("n",)),
}


def image_groups(s: Session, *where):
    """Rows of every ``IMAGE_KEYS`` column, then ``n`` and ``bytes``: the images of each group
    (of the groups that meet the conditions ``where`` on ``ImageTally``, when given)."""
    keys = [getattr(ImageTally, k) for k in IMAGE_KEYS]
    n = func.sum(ImageTally.n)
    return s.execute(select(*keys, n, func.sum(ImageTally.bytes)).where(*where).group_by(*keys).having(n != 0)).all()


def class_counts():
    """A subquery of (``name``, ``labelled``, ``real``): active labelled images per class, and
    how many of them are not staged or synthetic. Classes with none are absent."""
    labelled = (select(ImageTally.class_id, func.sum(ImageTally.n).label("labelled"),
                       func.sum(ImageTally.n).filter(~ImageTally.staged & ~ImageTally.synthetic).label("real"))
                .where(ImageTally.label_state == LABELLED, ImageTally.status == ACTIVE)
                .group_by(ImageTally.class_id).subquery("labelled"))
    return (select(LabelClass.name.label("name"), labelled.c.labelled.label("labelled"),
                   func.coalesce(labelled.c.real, 0).label("real"))
            .join(labelled, labelled.c.class_id == LabelClass.id)
            .where(labelled.c.labelled != 0)
            .subquery("class_counts"))


def class_totals(s: Session) -> dict[str, tuple[int, int]]:
    """Every class of the library: name -> (active labelled images, how many of them are real)."""
    counts = class_counts()
    rows = s.execute(select(LabelClass.name, counts.c.labelled, counts.c.real)
                     .outerjoin(counts, counts.c.name == LabelClass.name))
    return {name: (int(labelled or 0), int(real or 0)) for name, labelled, real in rows}


def rows(s: Session, table: str) -> int:
    """How many rows ``table`` (``label_events`` or ``image_locations``) holds."""
    return int(s.scalar(select(func.coalesce(func.sum(RowTally.n), 0)).where(RowTally.table_name == table)))


def _bucket_of(value: float) -> int:
    """The bucket of a confidence as the triggers compute it, ``floor(c * BUCKETS)``, in the
    same IEEE double arithmetic as the database."""
    return math.floor(value * BUCKETS)


def _first_of(b: int) -> float:
    """The smallest float whose bucket is ``b`` (or more: the bucket boundary)."""
    x = b / BUCKETS
    while _bucket_of(math.nextafter(x, -math.inf)) >= b:
        x = math.nextafter(x, -math.inf)
    while _bucket_of(x) < b:
        x = math.nextafter(x, math.inf)
    return x


def _split(lo: float | None, hi: float | None) -> tuple[tuple | None, list[tuple]]:
    """``[lo, hi]`` as the buckets to sum, ``(first, last)`` (None: open; no tuple: none),
    and the confidence ranges ``(a, b, sign)`` to count exactly and add or take away.

    The bucket of a confidence never decreases as it grows (IEEE multiplication is monotonic),
    so each bucket holds one run of floats. A bound that starts (``lo``) or ends (``hi``) its
    bucket cuts exactly between buckets; any other leaves part of its bucket to count: the part
    inside the bounds (added, with the bucket left out), or the part outside (taken away, with
    the bucket summed), whichever is narrower. Bounds such as 0.8 sit a float or two from
    a bucket's start, so their correction is a handful of rows.
    """
    def edges(b: int) -> tuple[float, float]:
        return _first_of(b), math.nextafter(_first_of(b + 1), -math.inf)

    down = lambda x: math.nextafter(x, -math.inf)  # noqa: E731
    up = lambda x: math.nextafter(x, math.inf)  # noqa: E731
    if lo is not None and hi is not None and _bucket_of(lo) == _bucket_of(hi):
        b = _bucket_of(lo)
        start, end = edges(b)
        if hi - lo <= (lo - start) + (end - hi):
            return None, [(lo, hi, 1)]
        return (b, b), [r for r in ((start, down(lo), -1), (up(hi), end, -1)) if r[0] <= r[1]]
    first = last = None
    ranges = []
    if lo is not None:
        first = _bucket_of(lo)
        start, end = edges(first)
        if lo - start > end - lo:
            ranges.append((lo, end, 1))
            first += 1
        elif lo != start:
            ranges.append((start, down(lo), -1))
    if hi is not None:
        last = _bucket_of(hi)
        start, end = edges(last)
        if end - hi > hi - start:
            ranges.append((start, hi, 1))
            last -= 1
        elif hi != end:
            ranges.append((up(hi), end, -1))
    return (first, last), ranges


def prediction_counts(s: Session, run_id: int, states: Iterable[str], *, predicted: str | None = None,
                      lo: float | None = None, hi: float | None = None) -> dict[str, int]:
    """Predicted class -> readable predictions of run ``run_id`` on active images whose label
    state is one of ``states``, with ``lo <= confidence <= hi`` (either bound may be None),
    of class ``predicted`` only when given. Classes with none are absent.

    The buckets between the bounds come from the tallies; the part of a bound's own bucket
    inside the bounds, or outside them, whichever is narrower (``_split``), is counted from
    the predictions with the conditions ``curator.filter_sql`` uses.
    """
    states = tuple(states)
    buckets, ranges = _split(lo, hi)
    t = PredictionTally
    out: dict[str, int] = {}
    if buckets is not None:
        first, last = buckets
        where = [t.run_id == run_id]
        if predicted is not None:
            where.append(t.predicted == predicted)
        if first is not None:
            where.append(t.bucket >= first)
        if last is not None:
            where.append(t.bucket <= last)
        for state in states:  # one state at a time: the index gives each in class order, no sort
            for name, count in s.execute(select(t.predicted, func.sum(t.n)).where(t.state == state, *where)
                                         .group_by(t.predicted)):
                out[name] = out.get(name, 0) + int(count)
    for a, b, sign in ranges:
        for name, count in s.execute(_exact_counts(run_id, states, predicted, a, b)):
            out[name] = out.get(name, 0) + sign * int(count)
    return {name: n for name, n in out.items() if n}


def _exact_counts(run_id: int, states: tuple, predicted: str | None, a: float, b: float):
    """Per predicted class: the readable predictions with ``a <= confidence <= b``, counted."""
    p = Prediction
    where = [p.run_id == run_id, p.error.is_(None), p.confidence >= a, p.confidence <= b, Image.status == ACTIVE]
    if set(states) != set(LABEL_STATES):
        where.append(Image.label_state.in_(states))
    if predicted is not None:
        where.append(p.predicted == predicted)
    return select(p.predicted, func.count()).join(Image, Image.id == p.image_id).where(*where).group_by(p.predicted)


def unsettled(s: Session, table, cap: int) -> int:
    """How many deltas of ``table`` wait to be folded, counted up to ``cap``."""
    waiting = select(literal(1)).select_from(table).where(NOT_SETTLED).limit(cap).subquery()
    return int(s.scalar(select(func.count()).select_from(waiting)))


def settle(s: Session, *, at: int = 1) -> None:
    """Fold each tally table's deltas into one settled row a key, where ``at`` or more wait.

    Only the rows up to the newest id seen are folded: on PostgreSQL in one statement
    (DELETE ... RETURNING into the INSERT), so a delta another transaction has not yet
    committed is left alone, and two folds at once each fold only the rows they deleted; on
    SQLite under the library's write lock, taken first. The caller commits.
    """
    dialect = s.get_bind().dialect.name
    if dialect == "sqlite":
        from curator.classes import write_lock

        write_lock(s)
    for table, (keys, sums) in _FOLDS.items():
        if unsettled(s, table, at) < at:
            continue
        top = s.scalar(select(func.max(table.id)))
        name = table.__tablename__
        scope = f"id <= {int(top)}"
        if table is PredictionTally:  # only the runs with deltas: a run's rows are many
            runs = s.scalars(select(table.run_id).where(NOT_SETTLED).distinct()).all()
            scope += f" AND run_id IN ({', '.join(str(int(r)) for r in runs)})"
        cols, summed = ", ".join(keys), ", ".join(f"sum({c})" for c in sums)
        insert = f"INSERT INTO {name} ({cols}, {', '.join(sums)}, settled)"
        if dialect == "postgresql":
            s.execute(text(f"WITH gone AS (DELETE FROM {name} WHERE {scope} RETURNING {cols}, {', '.join(sums)})"
                           f" {insert} SELECT {cols}, {summed}, true FROM gone GROUP BY {cols} HAVING sum(n) <> 0"))
        else:
            s.execute(text(f"{insert} SELECT {cols}, {summed}, 1 FROM {name} WHERE {scope}"
                           f" GROUP BY {cols} HAVING sum(n) <> 0"))
            s.execute(text(f"DELETE FROM {name} WHERE {scope}"))


def settle_library(lib, at: int = SETTLE_AT) -> None:
    """``settle`` in a transaction of its own where ``at`` or more deltas wait: readers call it
    before reading, writers over many images when they finish. A library this process cannot
    write (a read-only file, a writer holding the lock past the busy timeout) is left as it is:
    the counts stay exact, only slower to read."""
    try:
        with lib.session() as s:
            if any(unsettled(s, table, at) >= at for table in _FOLDS):
                settle(s, at=at)
    except OperationalError:
        pass
