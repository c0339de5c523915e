"""The library's images as FiftyOne samples: what each should show, and writing them.

``library_rows`` reads, for every active image (or a working set's), what its sample shows:
its label, split, flags, tags, the run's prediction and top-k, the ``curator suspects`` result,
whether it is in a label conflict, and a signature of all that (``sig``), which the sample keeps
in ``curator_sig`` so that a refresh rewrites only samples whose row changed. ``synced_label`` keeps
the label the sample was written with: ``curator.fiftyone_pull`` compares the app's edits to it.

New samples are written as the documents FiftyOne's ``add_samples`` makes, in bulk
(``curator.fiftyone_internals.insert_image_samples``; ``tests/test_fiftyone_sync.py`` checks the
two agree): a ``fo.Sample`` with its labels costs ~3 ms of Python objects, 60 s for a
20,000-sample working set. Changed samples are rewritten a field at a time with ``set_values``.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import aliased

from curator import fiftyone_internals as internals
from curator.errors import NotFound
from curator.fiftyone_views import saved_suspects
from curator.library import Library
from curator.library.models import (
    ACTIVE,
    UNKNOWN,
    Image,
    ImageTag,
    LabelClass,
    Prediction,
    Run,
    SplitBuild,
    SplitMember,
    Subclass,
    label_text,
)
from curator.locations import readable_paths

SPLIT_TAG = "split:"
ID_CHUNK = 5000  # ids per query: under SQLite's and PostgreSQL's limits on bound parameters
# Fields curator writes; the app may edit the first three (and tags).
EDITABLE = ("ground_truth", "subclass", "unknown")


# -- what the library says --------------------------------------------------------------------


def resolve_run(lib: Library, run: str | None) -> tuple[Run | None, list[str]]:
    """The run whose predictions to show: ``run``, else the one that ``find`` defaults to (the
    newest training run that predicted the pool; see ``curator.runs``), else none; and notes."""
    from curator.runs import pick_run

    with lib.session() as s:
        try:
            found, notes = pick_run(s, run)
        except NotFound:
            if run:
                raise
            return None, []
        s.expunge(found)
        return found, notes


def library_rows(lib: Library, run: Run | None, ids: list[int] | None = None, *,
                 conflicted: set[int] | None = None) -> dict[int, dict]:
    """Every active image (or those of ``ids`` still active) as the dataset should show it, by id.

    Args:
        conflicted: the images of ``label_conflicts``, if already known (the label-conflicts view's).
    """
    from curator.dedup import label_conflicts

    with lib.session() as s:
        build_id = run.build_id if run else s.scalar(select(SplitBuild.id).order_by(SplitBuild.id.desc()))
        member = aliased(SplitMember)
        stmt = (
            select(Image.id, Image.path, Image.label_state, LabelClass.name, Subclass.name, Image.staged,
                   Image.synthetic, Image.benchmark, Image.dup_group_id, member.split,
                   Prediction.predicted, Prediction.confidence, Prediction.top_k)
            .outerjoin(LabelClass, LabelClass.id == Image.class_id)
            .outerjoin(Subclass, Subclass.id == Image.subclass_id)
            .outerjoin(member, (member.image_id == Image.id) & (member.build_id == build_id))
            .outerjoin(Prediction, (Prediction.image_id == Image.id) & (Prediction.run_id == (run.id if run else -1))
                       & Prediction.error.is_(None))
            .where(Image.status == ACTIVE)
            .order_by(Image.id)
        )
        tags = defaultdict(list)
        for image_id, tag in _of(s, select(ImageTag.image_id, ImageTag.tag).order_by(ImageTag.tag), ImageTag.image_id, ids):
            tags[image_id].append(tag)
        if conflicted is None:
            conflicted = {m["id"] for g in label_conflicts(s) for m in g["members"]}
        found = _of(s, stmt, Image.id, ids)
        readable, _ = readable_paths(s, [r[0] for r in found])  # a moved image: where it is now
    suspects = saved_suspects(lib, run)
    rows = {}
    for (image_id, path, state, cls, sub, staged, synthetic, benchmark, group, split,
         predicted, confidence, top_k) in found:
        suspect = suspects.get(image_id)
        rows[image_id] = {
            "image_id": image_id, "path": str(Path(readable.get(image_id, path)).resolve()), "label": label_text(state, cls, sub),
            "class": cls, "subclass": sub, "unknown": state == UNKNOWN, "staged": staged,
            "synthetic": synthetic, "benchmark": benchmark, "dup_group": group, "split": split,
            "predicted": predicted, "confidence": confidence, "top_k": json.loads(top_k) if top_k else [],
            "tags": tags.get(image_id, []), "label_conflict": image_id in conflicted,
            "suspected": suspect["suspected"] if suspect else None,
            "suspect_score": suspect["score"] if suspect else None,
            "run": run.name if run else None,
        }
        rows[image_id]["sig"] = hashlib.sha1(json.dumps(rows[image_id], sort_keys=True).encode()).hexdigest()[:16]
    return rows


def _of(s, stmt, column, ids: list[int] | None) -> list:
    """The rows of ``stmt``, only those whose ``column`` is one of ``ids`` unless ``ids`` is None
    (asked in chunks: a working set is more ids than a database takes in one query)."""
    if ids is None:
        return s.execute(stmt).all()
    ordered = sorted(set(ids))
    return [row for at in range(0, len(ordered), ID_CHUNK)
            for row in s.execute(stmt.where(column.in_(ordered[at:at + ID_CHUNK]))).all()]


# -- samples ----------------------------------------------------------------------------------

def sample_fields(row: dict) -> dict:
    """The sample fields for a library row (everything but filepath and tags), labels as stored."""
    prediction = top_k = None
    if row["predicted"] is not None:
        prediction = internals.label_doc(row["predicted"], row["confidence"])
        top_k = internals.labels_doc([internals.label_doc(c, p) for c, p in row["top_k"]])
    return {
        "curator_id": row["image_id"],
        "ground_truth": internals.label_doc(row["class"]) if row["class"] else None,
        "subclass": row["subclass"],
        "unknown": row["unknown"],
        "staged": row["staged"],
        "synthetic": row["synthetic"],
        "benchmark": row["benchmark"],
        "dup_group": row["dup_group"],
        "label_conflict": row["label_conflict"],
        "predictions": prediction,
        "top_k": top_k,
        "suspected": row["suspected"],
        "suspect_score": row["suspect_score"],
        "synced_label": row["label"],
        "curator_sig": row["sig"],
    }


def sample_tags(row: dict) -> list[str]:
    """The sample's tags for a library row: its split's first, then the image's tags."""
    return ([SPLIT_TAG + row["split"]] if row["split"] else []) + list(row["tags"])


def add_samples(dataset, rows: list[dict]) -> dict[int, str]:
    """Add samples for ``rows`` in bulk (one insert of their documents per chunk);
    return their sample ids by curator id."""
    if dataset.media_type is None:  # add_samples sets it from the first sample (and declares `metadata`)
        dataset.media_type = "image"
    added = {}
    for at in range(0, len(rows), ID_CHUNK):
        chunk = rows[at:at + ID_CHUNK]
        ids = internals.insert_image_samples(
            dataset, [{**sample_fields(r), "filepath": r["path"], "tags": sample_tags(r)} for r in chunk])
        added.update(zip((r["image_id"] for r in chunk), ids))
    return added


def write_samples(dataset, rows: dict[int, dict], *, keep: set[int], state: dict[int, dict]) -> None:
    """Rewrite samples from their library rows; those in ``keep`` keep their app edits.

    Args:
        state: what each sample shows now (``fiftyone_pull.app_state``).
    """
    columns = defaultdict(dict)
    for i, row in rows.items():
        fields = {f: internals.label_object(v) for f, v in sample_fields(row).items()}
        if i in keep:  # edited in the app: pull decides, so keep the edit and its snapshot
            for f in EDITABLE + ("synced_label", "curator_sig"):
                fields.pop(f)
            split = sample_tags(row)[:1 if row["split"] else 0]
            tags = [t for t in state[i]["tags"] if not t.startswith(SPLIT_TAG)] + split
        else:
            tags = sample_tags(row)
        fields["tags"] = sorted(set(tags), key=tags.index)
        fields["filepath"] = row["path"]
        for f, v in fields.items():
            columns[f][i] = v
    for f, values in columns.items():
        dataset.set_values(f, values, key_field="curator_id")
