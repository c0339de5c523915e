"""Filters over bulk-identification results: find the images worth labelling next.

``find`` takes a ``Query`` (every option composes with every other) over one run's stored
predictions and returns plain rows, sorted the way the question asks (least sure first for a
look-alike search, most needed classes first for ``low_count``...). ``coverage`` joins the
library's class counts with a run's confident predictions on the pool: can a class reach the
cutoff by labelling what the model already finds?

With no run named, both read the newest training run that predicted the images the query looks
at (``curator.runs.pick_run``; ``query_pool`` says which images) and say which run, with a note
when the newest run has not predicted them. Names that match nothing (a class, label, sub-class,
split or tag) are errors, not empty results. ``unfamiliar`` and ``outliers`` rank the matches by
an embedding score instead (``curator.similarity``), reading a run only when an option needs one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from sqlalchemy import select

from curator import filter_sql, tallies
from curator.classes import get_class, get_subclass
from curator.errors import InvalidInput
from curator.library import Library
from curator.library.models import LABEL_STATES, LABELLED, UNKNOWN, UNLABELLED, Image, ImageTag, label_text
from curator.runs import pick_run
from curator.split_rules import SPLITS


@dataclass
class Query:
    """What to look for; ``None`` means "any" (``run``: pick by the rule of ``curator.runs``)."""

    run: str | None = None
    predicted: str | None = None  # top-1 class (``--class`` / ``--predicted``)
    min_confidence: float | None = None
    max_confidence: float | None = None
    label: str | None = None  # current label: a class, ``unlabelled`` or ``unknown``
    subclass: str | None = None
    split: str | None = None  # the split in the run's build
    staged: bool | None = None
    synthetic: bool | None = None
    low_count: bool = False  # pool images predicted as classes below min_count
    min_count: int = 40
    synthetic_dependent: bool = False  # pool images predicted as mostly staged/synthetic classes
    max_staged_share: float = 0.5
    unknown: bool = False  # images labelled unknown, grouped by what the model thinks now
    lowest: int | None = None  # the N lowest scores
    tag: str | None = None  # only images carrying this tag
    limit: int | None = None
    offset: int = 0  # skip this many of the sorted matches (after --lowest), for paging
    unfamiliar: bool = False  # new-class candidates first: more like the pool than the labelled (curator.similarity)
    outliers: bool = False  # labelled images sorted by distance to their classmates; ``predicted``
    # names the labelled class here when ``label`` is not given (``find --outliers --class C``)
    embedder: str | None = None  # whose vectors --unfamiliar / --outliers compare


def _check(q: Query) -> None:
    for name in ("min_confidence", "max_confidence", "max_staged_share"):
        value = getattr(q, name)
        if value is not None and not 0 <= value <= 1:
            raise InvalidInput(f"--{name.replace('_', '-')} {value} is not between 0 and 1")
    if q.unknown and q.label not in (None, UNKNOWN):
        raise InvalidInput(f"--unknown looks at images labelled unknown, not {q.label}: drop one of them")
    if q.subclass and not q.label:
        raise InvalidInput("--subclass needs --label CLASS")
    for name in ("lowest", "limit"):
        value = getattr(q, name)
        if value is not None and value < 1:
            raise InvalidInput(f"--{name} {value}: give 1 or more")
    if q.offset < 0:
        raise InvalidInput(f"--offset {q.offset}: give 0 or more")
    if q.split is not None and q.split not in SPLITS:
        raise InvalidInput(f"--split {q.split}: use one of {', '.join(SPLITS)}")
    _check_ranked(q)


def _check_ranked(q: Query) -> None:
    """--unfamiliar and --outliers: one of them, with no other order, on the images they rank."""
    if q.unfamiliar and q.outliers:
        raise InvalidInput("give one of --unfamiliar or --outliers")
    if not (q.unfamiliar or q.outliers):
        if q.embedder is not None:
            raise InvalidInput("--embedder picks the vectors of --unfamiliar or --outliers: give one of them")
        return
    asked = "--unfamiliar" if q.unfamiliar else "--outliers"
    if q.lowest is not None:
        raise InvalidInput(f"{asked} sorts by its own score: drop --lowest (--limit N shows the first N)")
    if q.outliers and (q.unknown or q.label in (UNLABELLED, UNKNOWN)):
        raise InvalidInput(f"--outliers looks at labelled images, not {UNKNOWN if q.unknown else q.label}:"
                           " --unfamiliar ranks the others")


def _outlier_class(q: Query) -> Query:
    """``find --outliers --class C``: C is the labelled class (outliers are labelled images)."""
    if q.outliers and q.predicted is not None and q.label is None:
        return replace(q, label=q.predicted, predicted=None)
    return q


def check_names(s, q: Query) -> None:
    """Every name in ``q`` but the predicted class must exist: a typo is an error, not 0 rows."""
    if q.label not in (None, UNLABELLED, UNKNOWN):
        cls = get_class(s, q.label)
        if q.subclass:
            get_subclass(s, cls, q.subclass)
    if q.tag is not None and s.scalar(select(ImageTag.tag).where(ImageTag.tag == q.tag).limit(1)) is None:
        tags = ", ".join(s.scalars(select(ImageTag.tag).distinct().order_by(ImageTag.tag).limit(12))) or "none yet"
        raise InvalidInput(f"no image is tagged {q.tag!r} (tags: {tags}):"
                           " `curator find ... --tag TAG` tags what it shows")


def check_predicted(s, q: Query, run) -> None:
    """``--class`` must be a class the run can predict."""
    if q.predicted is None or q.predicted in json.loads(run.classes):
        return
    get_class(s, q.predicted)  # a typo: no such class at all
    raise InvalidInput(f"run {run.name} cannot predict {q.predicted!r}: it was trained without it"
                       f" (`curator runs show {run.name} --json` lists its classes)")


def query_pool(q: Query) -> str:
    """The images a query looks at, which choose its default run: the unknown images for
    --unknown / --label unknown, the labelled ones for --label CLASS / --subclass / --split,
    else the pool of unlabelled images."""
    if q.unknown or q.label == UNKNOWN:
        return UNKNOWN
    if q.label not in (None, UNLABELLED) or q.split is not None:
        return LABELLED
    return UNLABELLED


def _window(q: Query) -> int | None:
    """How many rows to show from ``q.offset`` on: ``--lowest`` cuts the list, then ``--limit``."""
    stops = [x for x in (q.lowest, None if q.limit is None else q.offset + q.limit) if x is not None]
    return max(0, min(stops) - q.offset) if stops else None


def _show(r) -> dict:
    """One shown row as ``find`` returns it (``top_k`` decoded here, for shown rows only)."""
    label = label_text(r.label_state, r.class_name, r.subclass_name)
    return {"image_id": r.image_id, "path": r.path, "label": label, "predicted": r.predicted,
            "confidence": r.confidence, "top_k": json.loads(r.top_k), "split": r.split, "staged": r.staged,
            "synthetic": r.synthetic, "needs": r.needs, "staged_share": r.staged_share}


def _answer(s, q: Query, run) -> tuple[int, list[dict], dict]:
    """``(total, rows shown, classes)`` from two statements of ``curator.filter_sql``.

    Orders that keep each class's rows together (all but ``lowest`` / ``max_confidence``) first
    count the matches per class; the page then reads only the classes it spans, so the
    database sorts a few classes' rows, not the whole pool.
    """
    size = _window(q)
    order = filter_sql.order_name(q)
    dialect = s.get_bind().dialect.name
    counts, offset, only = [], q.offset, None
    if _tallied_states(q) is not None:
        counts = _tallied_counts(s, q, run)
        total = sum(c["found"] for c in counts)
    elif order in filter_sql.CLASS_FIRST or q.low_count or q.synthetic_dependent:
        per_class = filter_sql.per_class(q, run, dialect)
        counts = [{"class": name, "found": found, "labelled": labelled, "needs": needs, "staged_share": share}
                  for name, found, labelled, needs, share in s.execute(per_class)]
        total = sum(c["found"] for c in counts)
    else:
        total = s.scalar(filter_sql.count(q, run))
    if order in filter_sql.CLASS_FIRST:
        counts.sort(key=filter_sql.CLASS_FIRST[order])
        offset, only = _classes_spanned(counts, q.offset, size)
    classes = {} if not (q.low_count or q.synthetic_dependent) else {
        c["class"]: {"labelled": c["labelled"], "needs": c["needs"], "staged_share": round(c["staged_share"], 3),
                     "found": c["found"]} for c in counts}
    if size == 0 or total <= q.offset:
        return total, [], classes
    stmt = filter_sql.page(q, run, dialect, offset=offset, limit=size, only=only,
                           match_first=dialect == "sqlite" and order in filter_sql.CLASS_FIRST and total <= MATCH_FIRST)
    return total, [_show(r) for r in s.execute(stmt)], classes


def _tallied_states(q: Query) -> tuple[str, ...] | None:
    """The label states of the images ``q`` looks at, where the tallies can count its matches
    (a run, a predicted class, confidence bounds, a label state); None where only SQL can (a
    split, a flag, a class label, a sub-class, a tag)."""
    if any(getattr(q, name) is not None for name in ("split", "staged", "synthetic", "subclass", "tag")):
        return None
    if q.unknown or q.label == UNKNOWN:
        return (UNKNOWN,)
    if q.label == UNLABELLED or (q.label is None and (q.low_count or q.synthetic_dependent)):
        return (UNLABELLED,)
    return LABEL_STATES if q.label is None else None


def _tallied_counts(s, q: Query, run) -> list[dict]:
    """``filter_sql.per_class``'s rows, from the tallies (``curator.tallies``): per predicted
    class with matches, how many, and its labelled count, need and staged share."""
    found = tallies.prediction_counts(s, run.id, _tallied_states(q), predicted=q.predicted,
                                      lo=q.min_confidence, hi=q.max_confidence)
    totals = tallies.class_totals(s) if (q.low_count or q.synthetic_dependent) else None
    counts = []
    for name, n in found.items():
        if totals is None:  # what the SQL's rows carry when no class count is asked for
            labelled, needs, share = 0, q.min_count, 0.0
        else:
            labelled, real = totals.get(name, (0, 0))
            needs = max(0, q.min_count - labelled)
            share = (labelled - real) / labelled if labelled > 0 else 0.0
        if (q.low_count and needs <= 0) or (q.synthetic_dependent and not share > q.max_staged_share):
            continue
        counts.append({"class": name, "found": n, "labelled": labelled, "needs": needs, "staged_share": share})
    return counts


def _classes_spanned(counts: list[dict], offset: int, size: int | None) -> tuple[int, list[str]]:
    """The classes whose rows (``counts`` in page order) fall in ``[offset, offset + size)``, and
    the offset within their rows."""
    first, only, end = None, [], 0
    for c in counts:
        start, end = end, end + c["found"]
        if end > offset and (size is None or start < offset + size):
            first = start if first is None else first
            only.append(c["class"])
    return offset - (first or 0), only


def find(lib: Library, q: Query) -> dict:
    """The images matching every option of ``q`` under its run, sorted for the question asked.

    Filtering, sorting, ``lowest``/``offset``/``limit`` and the per-class numbers all happen in
    the database (``curator.filter_sql``): memory and time grow with the rows shown, not with
    the pool. Every order ends with the image id, so pages of ``offset``/``limit`` are stable.
    ``unfamiliar`` and ``outliers`` are ordered by an embedding score instead
    (``curator.similarity.find_ranked``): rows gain ``score``, the result ``embedder``, and the
    run is read only when an option needs its predictions (else ``run`` is None).

    Returns:
        ``{"run", "notes", "query", "total", "rows", "classes"}``: ``run`` is the run used (see
        ``curator.runs.pick_run``), ``notes`` what to know about that choice; ``total`` counts
        matches before ``lowest``, ``offset`` and ``limit``; ``rows`` are the matches from
        ``offset`` on, at most ``limit``, within the ``lowest``; ``classes`` gives, for
        ``low_count`` / ``synthetic_dependent``, each predicted class's labelled count and what
        it needs or its staged share.

    Raises:
        NotFound: no such run (or no finished training run yet).
        ClassNotFound: no class or sub-class of that name.
        InvalidInput: options that contradict each other or are out of range; a split or tag
            that does not exist; a class the run cannot predict.
    """
    _check(q)
    if q.unfamiliar or q.outliers:
        from curator import similarity

        return similarity.find_ranked(lib, _outlier_class(q))
    tallies.settle_library(lib)
    with lib.session() as s:
        check_names(s, q)
        run, notes = pick_run(s, q.run, query_pool(q))
        check_predicted(s, q, run)
        total, rows, classes = _answer(s, q, run)
        return {"run": run.name, "notes": notes, "query": asdict(q), "total": total, "rows": rows,
                "classes": classes}


def coverage(lib: Library, run: str | None = None, **options) -> list[dict]:
    """The rows of ``class_coverage`` alone (as the demo reads them)."""
    return class_coverage(lib, run, **options)["classes"]


def class_coverage(lib: Library, run: str | None = None, *, min_count: int = 40,
                   high_confidence: float = 0.8) -> dict:
    """Per class: labelled images, unlabelled pool images the run predicts as it (all, and at
    ``high_confidence`` or more), and whether labelling those confident ones reaches ``min_count``.

    Classes the run predicts but the library does not have yet are included with 0 labelled.

    Returns:
        ``{"run", "notes", "classes": [row, ...]}``, the run and notes as ``find`` gives them.
    """
    if not 0 <= high_confidence <= 1:
        raise InvalidInput(f"--high-confidence {high_confidence} is not between 0 and 1")
    tallies.settle_library(lib)
    with lib.session() as s:
        run, notes = pick_run(s, run, UNLABELLED)
        out = {name: {"class": name, "labelled": labelled, "real": real, "needs": max(0, min_count - labelled),
                      "predicted": 0, "confident": 0}
               for name, (labelled, real) in tallies.class_totals(s).items()}
        confident = tallies.prediction_counts(s, run.id, (UNLABELLED,), lo=high_confidence)
        for name, predicted in tallies.prediction_counts(s, run.id, (UNLABELLED,)).items():
            row = out.setdefault(name, {"class": name, "labelled": 0, "real": 0, "needs": min_count})
            row.update(predicted=predicted, confident=confident.get(name, 0))
        run_name = run.name
    for row in out.values():
        row["reachable"] = row["labelled"] + row["confident"] >= min_count
    rows = sorted(out.values(), key=lambda r: (r["reachable"], -r["needs"], r["class"]))
    return {"run": run_name, "notes": notes, "classes": rows}


MATCH_FIRST = 100_000  # matches SQLite gathers before sorting (filter_sql.page's match_first)

ACTIONS = ("accept", "label", "unknown", "reject", "tag")
ACT_CHUNK = 500  # images per transaction: memory and lock time stay bounded however many are acted on


def act(lib: Library, result: dict, action: str, value: str | None = None, *, create: bool = False,
        source: str = "cli", on_progress: Callable[[int], None] | None = None) -> dict:
    """Apply one action to every row of a ``find`` result; each change goes to label history.

    Works through the rows ``ACT_CHUNK`` at a time, one transaction each: an error (a class
    that does not exist, say) stops at the chunk it meets, and the chunks before it stay done.

    Args:
        action: ``accept`` (the prediction becomes the label, source ``model``), ``label``
            (``value`` is ``class`` or ``class/subclass``; ``create`` makes it if new), ``unknown``,
            ``reject`` (``value`` is the reason) or ``tag`` (``value`` is the tag).
        source: the history rows' source (``cli``; ``discover`` for a cluster's images). An
            ``accept`` is always ``model``'s.
        on_progress: called with the number of rows done after each chunk.

    Returns:
        ``{"action", "changed", "unchanged"}`` with the ids of the images changed.
    """
    if action not in ACTIONS:
        raise InvalidInput(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    if action in ("label", "tag") and not value:
        raise InvalidInput(f"the {action} action needs a value")
    if action == "accept" and result["run"] is None:
        raise InvalidInput("--accept takes a run's predictions and there are none here: give --run, or label with"
                           " --set-label CLASS")
    detail = result.get("detail") or f"curator find, run {result['run']}"
    changed, unchanged = [], 0
    rows = result["rows"]
    for start in range(0, len(rows), ACT_CHUNK):
        chunk = rows[start:start + ACT_CHUNK]
        with lib.session() as s:
            for change in _act_on(s, chunk, action, value, create=create, source=source, detail=detail):
                changed += change.changed
                unchanged += change.unchanged
        if on_progress:
            on_progress(start + len(chunk))
    tallies.settle_library(lib, at=tallies.WRITER_SETTLE_AT)
    return {"action": action, "changed": changed, "unchanged": unchanged}


def _act_on(s, rows: list[dict], action: str, value: str | None, *, create: bool, source: str,
            detail: str) -> list:
    """One chunk's changes (``labels.Change``), in one transaction."""
    from curator import labels

    # Lock the chunk's rows up front, in id order (PostgreSQL; SQLite ignores it): the accepts
    # below change one class at a time, and locking as they go could deadlock two sessions.
    images = {im.id: im for im in s.scalars(
        select(Image).where(Image.id.in_([r["image_id"] for r in rows])).order_by(Image.id)
        .with_for_update(key_share=True))}
    if action == "accept":
        by_class: dict[str, list[dict]] = {}
        for r in rows:
            by_class.setdefault(r["predicted"], []).append(r)
        return [labels.accept(s, [images[r["image_id"]] for r in group], predicted,
                              detail={r["image_id"]: f"{detail}, confidence {r['confidence']:.3f}" for r in group})
                for predicted, group in by_class.items()]
    todo = [images[r["image_id"]] for r in rows]
    return [{
        "label": lambda: labels.relabel(s, todo, value, create=create, source=source, detail=detail),
        "unknown": lambda: labels.mark_unknown(s, todo, source=source),
        "reject": lambda: labels.reject(s, todo, value or f"rejected with {detail}", source=source),
        "tag": lambda: labels.tag(s, todo, value, source=source, detail=detail),
    }[action]()]
