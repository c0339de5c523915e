"""Filters over bulk-identification results: find the images worth labelling next.

``find`` takes a ``Query`` (every option composes with every other) over one run's stored
predictions and returns plain rows, sorted the way the question asks (least sure first for a
look-alike search, most needed classes first for ``low_count``...). ``coverage`` joins the
library's class counts with a run's confident predictions on the pool: can a class reach the
cutoff by labelling what the model already finds?

With no run named, both read the newest training run that predicted the images the query looks
at (``curator.runs.pick_run``; ``_pool`` says which images) and say which run, with a note when
the newest run has not predicted them. Names that match nothing (a class, label, sub-class,
split or tag) are errors, not empty results.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from sqlalchemy import select
from sqlalchemy.orm import aliased

from curator.classes import class_table, get_class, get_subclass
from curator.errors import InvalidInput
from curator.library import Library
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


# How each question wants its answer sorted (the first that applies wins).
SORTS = (
    ("lowest", lambda r: (r["confidence"], r["image_id"])),
    ("unknown", lambda r: (r["predicted"], -r["confidence"], r["image_id"])),
    ("low_count", lambda r: (-r["needs"], r["predicted"], -r["confidence"], r["image_id"])),
    ("synthetic_dependent", lambda r: (-r["staged_share"], r["predicted"], -r["confidence"], r["image_id"])),
    ("max_confidence", lambda r: (r["confidence"], r["image_id"])),
)
DEFAULT_SORT = lambda r: (r["predicted"], -r["confidence"], r["image_id"])  # noqa: E731


def _check(q: Query) -> None:
    for name in ("min_confidence", "max_confidence", "max_staged_share"):
        value = getattr(q, name)
        if value is not None and not 0 <= value <= 1:
            raise InvalidInput(f"--{name.replace('_', '-')} {value} is not between 0 and 1")
    if q.unknown and q.label not in (None, UNKNOWN):
        raise InvalidInput(f"--unknown looks at images labelled unknown, not {q.label}: drop one of them")
    if q.subclass and not q.label:
        raise InvalidInput("--subclass needs --label CLASS")
    if q.split is not None and q.split not in SPLITS:
        raise InvalidInput(f"--split {q.split}: use one of {', '.join(SPLITS)}")


def _check_names(s, q: Query) -> None:
    """Every name in ``q`` but the predicted class must exist: a typo is an error, not 0 rows."""
    if q.label not in (None, UNLABELLED, UNKNOWN):
        cls = get_class(s, q.label)
        if q.subclass:
            get_subclass(s, cls, q.subclass)
    if q.tag is not None and s.scalar(select(ImageTag.tag).where(ImageTag.tag == q.tag).limit(1)) is None:
        tags = ", ".join(s.scalars(select(ImageTag.tag).distinct().order_by(ImageTag.tag).limit(12))) or "none yet"
        raise InvalidInput(f"no image is tagged {q.tag!r} (tags: {tags}):"
                           " `curator find ... --tag TAG` tags what it shows")


def _check_predicted(s, q: Query, run) -> None:
    """``--class`` must be a class the run can predict."""
    if q.predicted is None or q.predicted in json.loads(run.classes):
        return
    get_class(s, q.predicted)  # a typo: no such class at all
    raise InvalidInput(f"run {run.name} cannot predict {q.predicted!r}: it was trained without it"
                       f" (`curator runs show {run.name} --json` lists its classes)")


def _pool(q: Query) -> str:
    """The images a query looks at, which choose its default run: the unknown images for
    --unknown / --label unknown, the labelled ones for --label CLASS / --subclass / --split,
    else the pool of unlabelled images."""
    if q.unknown or q.label == UNKNOWN:
        return UNKNOWN
    if q.label not in (None, UNLABELLED) or q.split is not None:
        return LABELLED
    return UNLABELLED


def _rows(lib: Library, q: Query, run) -> list[dict]:
    member = aliased(SplitMember)
    stmt = (
        select(Image.id, Image.path, Image.label_state, LabelClass.name, Subclass.name, Prediction.predicted,
               Prediction.confidence, Prediction.top_k, member.split, Image.staged, Image.synthetic)
        .join(Prediction, (Prediction.image_id == Image.id) & (Prediction.run_id == run.id))
        .outerjoin(LabelClass, LabelClass.id == Image.class_id)
        .outerjoin(Subclass, Subclass.id == Image.subclass_id)
        .outerjoin(member, (member.image_id == Image.id) & (member.build_id == run.build_id))
        .where(Image.status == ACTIVE, Prediction.error.is_(None))
    )
    conditions = {
        "predicted": lambda v: Prediction.predicted == v,
        "min_confidence": lambda v: Prediction.confidence >= v,
        "max_confidence": lambda v: Prediction.confidence <= v,
        "split": lambda v: member.split == v,
        "staged": lambda v: Image.staged.is_(v),
        "synthetic": lambda v: Image.synthetic.is_(v),
        "subclass": lambda v: Subclass.name == v,
        "label": lambda v: (Image.label_state == v) if v in (UNLABELLED, UNKNOWN) else (LabelClass.name == v),
    }
    for name, condition in conditions.items():
        value = getattr(q, name)
        if value is not None:
            stmt = stmt.where(condition(value))
    if q.tag is not None:
        stmt = stmt.where(Image.id.in_(select(ImageTag.image_id).where(ImageTag.tag == q.tag)))
    if q.unknown:
        stmt = stmt.where(Image.label_state == UNKNOWN)
    elif (q.low_count or q.synthetic_dependent) and q.label is None:
        stmt = stmt.where(Image.label_state == UNLABELLED)  # the pool: what labelling would add
    with lib.session() as s:
        found = s.execute(stmt).all()
    return [{
        "image_id": r[0], "path": r[1],
        "label": r[2] if r[2] != LABELLED else (f"{r[3]}/{r[4]}" if r[4] else r[3]),
        "predicted": r[5], "confidence": r[6], "top_k": json.loads(r[7]), "split": r[8],
        "staged": r[9], "synthetic": r[10],
    } for r in found]


def _class_stats(lib: Library, min_count: int) -> dict[str, dict]:
    with lib.session() as s:
        return {row["class"]: row for row in class_table(s, min_count)}


def find(lib: Library, q: Query) -> dict:
    """The images matching every option of ``q`` under its run, sorted for the question asked.

    Returns:
        ``{"run", "notes", "query", "total", "rows", "classes"}``: ``run`` is the run used (see
        ``curator.runs.pick_run``), ``notes`` what to know about that choice; ``total`` counts
        matches before ``limit``; ``classes`` gives, for ``low_count`` / ``synthetic_dependent``,
        each predicted class's labelled count and what it needs or its staged share.

    Raises:
        NotFound: no such run (or no finished training run yet).
        ClassNotFound: no class or sub-class of that name.
        InvalidInput: options that contradict each other or are out of range; a split or tag
            that does not exist; a class the run cannot predict.
    """
    _check(q)
    with lib.session() as s:
        _check_names(s, q)
        run, notes = pick_run(s, q.run, _pool(q))
        _check_predicted(s, q, run)
        run_name = run.name
        s.expunge(run)
    rows = _rows(lib, q, run)
    stats = _class_stats(lib, q.min_count) if (q.low_count or q.synthetic_dependent) else {}
    classes = {}
    for r in rows:
        c = stats.get(r["predicted"], {"labelled": 0, "real": 0, "needs": q.min_count})
        r["needs"] = max(0, q.min_count - c["labelled"])
        r["staged_share"] = (c["labelled"] - c["real"]) / c["labelled"] if c["labelled"] else 0.0
    if q.low_count:
        rows = [r for r in rows if r["needs"] > 0]
    if q.synthetic_dependent:
        rows = [r for r in rows if r["staged_share"] > q.max_staged_share]
    for r in rows:
        if stats:
            classes.setdefault(r["predicted"], {"labelled": stats.get(r["predicted"], {}).get("labelled", 0),
                                                "needs": r["needs"], "staged_share": round(r["staged_share"], 3),
                                                "found": 0})["found"] += 1
    key = next((k for name, k in SORTS if getattr(q, name) not in (None, False)), DEFAULT_SORT)
    rows.sort(key=key)
    total = len(rows)
    cap = min(x for x in (q.lowest, q.limit, total) if x is not None)
    return {"run": run_name, "notes": notes, "query": asdict(q), "total": total, "rows": rows[:cap],
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
    found = find(lib, Query(run=run, label=UNLABELLED))
    stats = _class_stats(lib, min_count)
    out = {}
    for name in sorted(set(stats) | {r["predicted"] for r in found["rows"]}):
        c = stats.get(name, {"labelled": 0, "real": 0})
        out[name] = {"class": name, "labelled": c["labelled"], "real": c["real"],
                     "needs": max(0, min_count - c["labelled"]), "predicted": 0, "confident": 0}
    for r in found["rows"]:
        row = out[r["predicted"]]
        row["predicted"] += 1
        row["confident"] += r["confidence"] >= high_confidence
    for row in out.values():
        row["reachable"] = row["labelled"] + row["confident"] >= min_count
    rows = sorted(out.values(), key=lambda r: (r["reachable"], -r["needs"], r["class"]))
    return {"run": found["run"], "notes": found["notes"], "classes": rows}


ACTIONS = ("accept", "label", "unknown", "reject", "tag")


def act(lib: Library, result: dict, action: str, value: str | None = None, *, create: bool = False) -> dict:
    """Apply one action to every row of a ``find`` result; each change goes to label history.

    Args:
        action: ``accept`` (the prediction becomes the label, source ``model``), ``label``
            (``value`` is ``class`` or ``class/subclass``; ``create`` makes it if new), ``unknown``, ``reject`` (``value``
            is the reason) or ``tag`` (``value`` is the tag).

    Returns:
        ``{"action", "changed", "unchanged"}`` with the ids of the images changed.
    """
    from curator import labels

    if action not in ACTIONS:
        raise InvalidInput(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    if action in ("label", "tag") and not value:
        raise InvalidInput(f"the {action} action needs a value")
    detail = f"curator find, run {result['run']}"
    rows = result["rows"]
    with lib.session() as s:
        # Lock every row up front, in id order (PostgreSQL; SQLite ignores it): the accepts
        # below change one image per call, and locking as they go could deadlock two sessions.
        images = {im.id: im for im in s.scalars(
            select(Image).where(Image.id.in_([r["image_id"] for r in rows])).order_by(Image.id)
            .with_for_update(key_share=True))}
        if action == "accept":
            changes = [labels.accept(s, [images[r["image_id"]]], r["predicted"],
                                     detail=f"{detail}, confidence {r['confidence']:.3f}") for r in rows]
        else:
            todo = [images[r["image_id"]] for r in rows]
            changes = [{
                "label": lambda: labels.relabel(s, todo, value, create=create, source="cli", detail=detail),
                "unknown": lambda: labels.mark_unknown(s, todo),
                "reject": lambda: labels.reject(s, todo, value or f"rejected with {detail}"),
                "tag": lambda: labels.tag(s, todo, value, detail=detail),
            }[action]()]
    return {"action": action, "changed": [i for c in changes for i in c.changed],
            "unchanged": sum(c.unchanged for c in changes)}
