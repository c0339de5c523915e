"""Split builds: named, stored train/val/test/benchmark data-set versions of the library.

``build`` reads labelled, active images into ``split_rules.Item`` records, brings the duplicate
groups up to date (an incremental ``curator dedup``), lets ``split_rules.assign`` decide, stores
the build, and checks it for leaks. The newest earlier build with the same options is passed as
``previous``, so every image keeps the split it had and test sets stay comparable across model
versions. The rules themselves live in ``curator.split_rules``.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from curator import split_rules
from curator.errors import InvalidInput, NotFound
from curator.library import Library
from curator.library.models import (
    ACTIVE,
    LABELLED,
    DedupRun,
    Image,
    LabelClass,
    SplitBuild,
    SplitMember,
    Subclass,
)
from curator.locations import readable_paths
from curator.split_rules import SPLITS

FORMATS = ("imagefolder", "csv")


def _items(s: Session) -> list[split_rules.Item]:
    rows = s.execute(
        select(Image.id, Image.sha256, LabelClass.name, Subclass.name, Image.dup_group_id,
               Image.staged, Image.synthetic, Image.benchmark)
        .join(LabelClass, LabelClass.id == Image.class_id)
        .outerjoin(Subclass, Subclass.id == Image.subclass_id)
        .where(Image.status == ACTIVE, Image.label_state == LABELLED)
        .order_by(Image.id)
    )
    return [split_rules.Item(image_id=r[0], sha256=r[1], cls=r[2], subclass=r[3], group=r[4],
                             staged=r[5], synthetic=r[6], benchmark=r[7]) for r in rows]


def _previous(s: Session, params: dict) -> SplitBuild | None:
    """The newest build made with the same options: its images keep their splits."""
    for build in s.scalars(select(SplitBuild).order_by(SplitBuild.id.desc())):
        if json.loads(build.params) == params:
            return build
    return None


def _refresh_duplicates(lib: Library) -> dict | None:
    """Run an incremental dedup when images arrived since the last one (with its settings)."""
    from curator import dedup

    with lib.session() as s:
        last = s.scalar(select(DedupRun).where(DedupRun.finished_at.is_not(None)).order_by(DedupRun.id.desc()))
        newest = s.scalar(select(func.max(Image.id))) or 0
    if last is not None and last.last_image_id >= newest:
        return None
    kwargs = {"threshold": last.threshold, "color_threshold": last.color_threshold} if last else {}
    return dedup.find_duplicates(lib, **kwargs).to_dict()


def build(
    lib: Library,
    *,
    min_count: int = 40,
    max_count: int | None = None,
    val: float = 0.1,
    test: float = 0.1,
    seed: int = 0,
    include_staged: bool = True,
    name: str | None = None,
    dedup_first: bool = True,
) -> dict:
    """Build, store and check a named split. Returns its report as plain data.

    Raises:
        InvalidInput: the name is taken, the options are inconsistent, or no class meets the
            cutoff (messages from ``split_rules``).
    """
    params = {"min_count": min_count, "max_count": max_count, "val": val, "test": test,
              "seed": seed, "include_staged": include_staged}
    with lib.session() as s:
        if name and s.scalar(select(SplitBuild).where(SplitBuild.name == name)):
            raise InvalidInput(f"a split build named {name} exists: pick another --name"
                               f" (see it with `curator splits show {name}`)")
    deduped = _refresh_duplicates(lib) if dedup_first else None
    with lib.session() as s:
        prev = _previous(s, params)
        previous = dict(s.execute(select(SplitMember.image_id, SplitMember.split)
                                  .where(SplitMember.build_id == prev.id)).all()) if prev else None
        result = split_rules.assign(_items(s), **params, previous=previous)
        count = s.scalar(select(func.count()).select_from(SplitBuild)) or 0
        name = name or f"min{min_count}-{count + 1}"
        report = {k: v for k, v in asdict(result).items() if k not in ("splits", "classes")}
        report["held_out"] = {str(k): v for k, v in result.held_out.items()}
        row = SplitBuild(name=name, params=json.dumps(params), classes=json.dumps(result.classes),
                         report="{}", previous_id=prev.id if prev else None)
        s.add(row)
        s.flush()
        if result.splits:
            s.execute(insert(SplitMember), [{"build_id": row.id, "image_id": i, "split": sp}
                                            for i, sp in result.splits.items()])
        report["leaks"] = _leaks(s, row.id)
        report["dedup"] = deduped
        row.report = json.dumps(report)
        return {"name": name, "previous": prev.name if prev else None, "params": params,
                "classes": result.classes, **report, "totals": _totals(result.splits)}


def _totals(splits: dict[int, str]) -> dict[str, int]:
    totals = dict.fromkeys(SPLITS, 0)
    for sp in splits.values():
        totals[sp] += 1
    return totals


def get_build(s: Session, name: str) -> SplitBuild:
    """The split build called ``name``.

    Raises:
        NotFound: no build of that name (the message names the builds there are).
    """
    build = s.scalar(select(SplitBuild).where(SplitBuild.name == name))
    if build is None:
        known = ", ".join(s.scalars(select(SplitBuild.name).order_by(SplitBuild.id))) or "none yet"
        raise NotFound(f"no split build named {name!r} (builds: {known}); make one with `curator build-splits`")
    return build


def _leaks(s: Session, build_id: int) -> list[str]:
    """Duplicate groups or identical bytes in two splits of one build.

    Near duplicates are what the groups are for: a pHash alone is not evidence (two colour
    variants can share one), so it is not compared here.
    """
    rows = s.execute(select(SplitMember.image_id, SplitMember.split, Image.dup_group_id, Image.sha256)
                     .join(Image, Image.id == SplitMember.image_id)
                     .where(SplitMember.build_id == build_id)).all()
    return split_rules.check({r[0]: r[1] for r in rows}, {r[0]: r[2] for r in rows},
                             {r[0]: r[3] for r in rows})


def check(lib: Library, name: str) -> list[str]:
    """Leaks in a stored build: a duplicate group or an identical hash in two splits."""
    with lib.session() as s:
        return _leaks(s, get_build(s, name).id)


def list_builds(lib: Library) -> list[dict]:
    with lib.session() as s:
        counts = dict(s.execute(select(SplitMember.build_id, func.count()).group_by(SplitMember.build_id)).all())
        return [{"name": b.name, "created_at": b.created_at.isoformat(timespec="seconds"),
                 "classes": len(json.loads(b.classes)), "images": counts.get(b.id, 0),
                 "params": json.loads(b.params)}
                for b in s.scalars(select(SplitBuild).order_by(SplitBuild.id))]


def show(lib: Library, name: str) -> dict:
    """A build's options, classes (in model-head order), per-class counts per split, report."""
    with lib.session() as s:
        b = get_build(s, name)
        rows = s.execute(
            select(LabelClass.name, SplitMember.split, func.count())
            .join(Image, Image.id == SplitMember.image_id)
            .join(LabelClass, LabelClass.id == Image.class_id)
            .where(SplitMember.build_id == b.id)
            .group_by(LabelClass.name, SplitMember.split)
        ).all()
        per_class = {c: dict.fromkeys(SPLITS, 0) for c in json.loads(b.classes)}
        for cls, sp, n in rows:
            per_class.setdefault(cls, dict.fromkeys(SPLITS, 0))[sp] = n
        return {"name": b.name, "created_at": b.created_at.isoformat(timespec="seconds"),
                "params": json.loads(b.params), "classes": json.loads(b.classes),
                "counts": per_class, "report": json.loads(b.report)}


def members(lib: Library, name: str) -> list[dict]:
    """Every image of a build: id, path (one that exists, when any does), split, class, sub-class, sha256."""
    with lib.session() as s:
        b = get_build(s, name)
        rows = s.execute(
            select(Image.id, Image.path, SplitMember.split, LabelClass.name, Subclass.name, Image.sha256)
            .join(Image, Image.id == SplitMember.image_id)
            .join(LabelClass, LabelClass.id == Image.class_id)
            .outerjoin(Subclass, Subclass.id == Image.subclass_id)
            .where(SplitMember.build_id == b.id)
            .order_by(SplitMember.split, LabelClass.name, Image.id)
        ).all()
        readable, _ = readable_paths(s, [r[0] for r in rows])  # a moved image: where it is now
    keys = ("image_id", "path", "split", "class", "subclass", "sha256")
    return [dict(zip(keys, (r[0], readable.get(r[0], r[1]), *r[2:]))) for r in rows]


def export(lib: Library, name: str, out: str | os.PathLike, *, format: str = "imagefolder") -> dict:
    """Write a build for other tools: an ImageFolder tree of symbolic links, or one CSV.

    ImageFolder: ``OUT/<split>/<class>/<id>-<file name>`` links to the library's files.
    CSV: ``OUT/<name>.csv`` with image_id, path, split, class, subclass, sha256.
    """
    if format not in FORMATS:
        raise InvalidInput(f"--format {format} is not one of {', '.join(FORMATS)}")
    rows = members(lib, name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if format == "csv":
        path = out / f"{name}.csv"
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["image_id"])
            writer.writeheader()
            writer.writerows(rows)
        return {"format": format, "path": str(path), "images": len(rows)}
    for r in rows:
        link = out / r["split"] / r["class"] / f"{r['image_id']}-{Path(r['path']).name}"
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(r["path"])
    return {"format": format, "path": str(out), "images": len(rows)}
