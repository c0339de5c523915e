"""What the library's FiftyOne dataset shows: its saved views, and the working set of a big library.

Every saved view is the exact result of ``curator find`` (or ``curator suspects``, ``curator
duplicates --conflicts``, ``curator discover --cluster N``) with the same options, in its order.

A dataset mirrors the whole library (``Scope(all=True)``, ``browse --all``) or holds a working
set, the default above ``WORKING_SET_ABOVE`` active images, where a mirror would take too long
to build and to open:

- what was asked for first: the images tagged each ``tagged`` tag, then those the run predicts
  as each of ``classes`` (in ``find``'s order), each cut to its first ``limit``;
- then the images of every saved view but the ``tag-T`` ones, or of ``view`` alone;
- at most ``max_samples`` in all: the views share what is left rank by rank (each view's first
  image, then each view's second...), so a small view is whole and a big one gives its first.
  No view is read past its first ``max_samples`` rows (the look-alike views, made from one
  query, share that query's first ``max_samples``), and a saved view shows the samples held.

Samples with app edits not yet pulled stay in the dataset whatever the working set (see
``curator.fiftyone_sync.sync``).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from curator.errors import InvalidInput

if TYPE_CHECKING:  # this module's constants are `curator browse`'s defaults: no SQLAlchemy to read them
    from curator.library import Library
    from curator.library.models import Run

LOW_CONFIDENCE = 0.6
LOWEST = 100
WORKING_SET_ABOVE = 100_000  # active images; a bigger library gets a working set by default
MAX_SAMPLES = 20_000  # the app opens it quickly; writing its samples is ~5 s of browse at 1M images
TAG_VIEW = "tag-"
EMBEDDING_VIEWS = ("unfamiliar", "outliers")  # saved when the dataset shows an embedder's vectors


@dataclass(frozen=True)
class Scope:
    """What the dataset holds, as asked: ``all`` True mirrors every active image, False holds
    the working set, None chooses by the library's size; the rest shapes the working set."""

    all: bool | None = None
    view: str | None = None
    tagged: tuple[str, ...] = field(default_factory=tuple)
    classes: tuple[str, ...] = field(default_factory=tuple)
    limit: int | None = None
    max_samples: int = MAX_SAMPLES

    def __post_init__(self) -> None:  # from JSON (dataset.info), lists come back
        object.__setattr__(self, "tagged", tuple(self.tagged))
        object.__setattr__(self, "classes", tuple(self.classes))


def saved_suspects(lib: Library, run: Run | None) -> dict[int, dict]:
    """The last ``curator suspects`` result for ``run``, if one was saved."""
    from curator.runs import run_folder
    from curator.suspects import SAVED

    if run is None:
        return {}
    path = run_folder(lib, run) / SAVED
    if not path.exists():
        return {}
    return {r["image_id"]: r for r in json.loads(path.read_text())["suspects"]}


def view_queries(lib: Library, run: Run | None, *, limit: int | None = None,
                 embedder: str | None = None) -> dict[str, tuple[str, object]]:
    """Each saved view: name -> (description, filters.Query) or a list of image ids (in order).

    Args:
        limit: only each view's first rows (a working set holds no more); the look-alike views
            then share the first ``limit`` rows of their one query.
        embedder: the embedder whose vectors the dataset shows: adds ``unfamiliar`` and
            ``outliers`` (``find --unfamiliar`` / ``--outliers`` with its vectors).
    """
    from sqlalchemy import select

    from curator.dedup import label_conflicts
    from curator.fiftyone_map import cluster_views
    from curator.filters import Query, find
    from curator.library.models import UNLABELLED, ImageTag

    views: dict[str, tuple[str, object]] = {}
    if run is not None:
        r = run.name
        views["low-confidence"] = (f"curator find --run {r} --label unlabelled --max-confidence {LOW_CONFIDENCE}",
                                   Query(run=r, label=UNLABELLED, max_confidence=LOW_CONFIDENCE, limit=limit))
        views["low-count"] = (f"curator find --run {r} --low-count", Query(run=r, low_count=True, limit=limit))
        views["synthetic-dependent"] = (f"curator find --run {r} --synthetic-dependent",
                                        Query(run=r, synthetic_dependent=True, limit=limit))
        views["unknown"] = (f"curator find --run {r} --unknown", Query(run=r, unknown=True, limit=limit))
        views["lowest"] = (f"curator find --run {r} --lowest {LOWEST}", Query(run=r, lowest=LOWEST, limit=limit))
        # One look-alike view per predicted class: the rows of `find --class C --max-confidence`,
        # taken from a single query (same rows, same order: least sure first).
        by_class = defaultdict(list)
        for row in find(lib, Query(run=r, max_confidence=LOW_CONFIDENCE, limit=limit))["rows"]:
            by_class[row["predicted"]].append(row["image_id"])
        for cls in sorted(by_class):
            views[f"look-alike-{cls}"] = (f"curator find --run {r} --class {cls} --max-confidence {LOW_CONFIDENCE}",
                                          by_class[cls])
        suspects = saved_suspects(lib, run)
        if suspects:
            ordered = sorted(suspects.values(), key=lambda x: (x["score"], x["image_id"]))
            views["suspects"] = (f"curator suspects --run {r}", [x["image_id"] for x in ordered])
    if embedder is not None:
        for name in EMBEDDING_VIEWS:
            views[name] = (f"curator find --{name} --embedder {embedder}",
                           Query(embedder=embedder, limit=limit, **{name: True}))
    with lib.session() as s:
        views["label-conflicts"] = ("curator duplicates --conflicts",
                                    [m["id"] for g in label_conflicts(s) for m in g["members"]])
        views.update(cluster_views(s, limit=limit))  # cluster-N: curator.fiftyone_map
        for tag in s.scalars(select(ImageTag.tag).distinct().order_by(ImageTag.tag)):
            views[f"{TAG_VIEW}{tag}"] = (f"curator find --tagged {tag}", list(s.scalars(
                select(ImageTag.image_id).where(ImageTag.tag == tag).order_by(ImageTag.image_id).limit(limit))))
    return views


def view_ids(lib: Library, spec) -> list[int]:
    """The image ids a view shows, in order."""
    from curator.filters import find

    if isinstance(spec, list):
        return spec
    return [r["image_id"] for r in find(lib, spec)["rows"]]


def find_views(lib: Library, run: Run | None, *, limit: int | None = None,
               embedder: str | None = None) -> dict[str, tuple[str, list[int]]]:
    """Each saved view's description and image ids, in order (each filter run once; ``limit``,
    ``embedder``: see `view_queries`). An embedding view that cannot be made (no labelled image
    has a vector yet) is left out."""
    views = {}
    for name, (description, spec) in view_queries(lib, run, limit=limit, embedder=embedder).items():
        try:
            views[name] = (description, view_ids(lib, spec))
        except InvalidInput:
            if name not in EMBEDDING_VIEWS:
                raise
    return views


def check_view(name: str, views) -> None:
    """Raise InvalidInput unless ``name`` is one of ``views``."""
    if name not in views:
        raise InvalidInput(f"no saved view {name!r}: there are {', '.join(views) or 'none'}")


def active_images(lib: Library) -> int:
    from sqlalchemy import func, select

    from curator.library.models import ACTIVE, Image

    with lib.session() as s:
        return s.scalar(select(func.count()).select_from(Image).where(Image.status == ACTIVE))


def is_working_set(lib: Library, scope: Scope) -> bool:
    """Whether the dataset holds a working set rather than the whole library."""
    if scope.all and (scope.tagged or scope.classes):
        raise InvalidInput("--all holds every image already: drop --tagged / --class, or --all for a working set")
    if scope.all is not None:
        return not scope.all
    return bool(scope.tagged or scope.classes) or active_images(lib) > WORKING_SET_ABOVE


def working_set(lib: Library, run: Run | None, scope: Scope, views: dict[str, tuple[str, list[int]]]) -> list[int]:
    """The image ids of the working set (see the module's docstring), what was asked first.

    Raises:
        InvalidInput: a view, tag or class that is not there; ``classes`` without a run.
    """
    from curator.filters import Query, find

    for option, value in (("--max-samples", scope.max_samples), ("--limit", scope.limit)):
        if value is not None and value < 1:
            raise InvalidInput(f"{option} {value}: give at least 1")
    asked = []
    for tag in scope.tagged:
        if TAG_VIEW + tag not in views:
            tags = ", ".join(n[len(TAG_VIEW):] for n in views if n.startswith(TAG_VIEW)) or "none yet"
            raise InvalidInput(f"no image is tagged {tag!r} (tags: {tags})")
        asked.append(views[TAG_VIEW + tag][1][:scope.limit])
    for cls in scope.classes:
        if run is None:
            raise InvalidInput(f"--class {cls} shows what a run predicts, and no run has predicted yet:"
                               " train one with `curator train`")
        asked.append([r["image_id"] for r in find(lib, Query(run=run.name, predicted=cls, limit=scope.limit))["rows"]])
    if scope.view is not None:
        check_view(scope.view, views)
        shared = [views[scope.view][1]]
    else:
        shared = [ids for name, (_, ids) in views.items() if not name.startswith(TAG_VIEW)]
    return _first(scope.max_samples, [i for ids in asked for i in ids], _rank_by_rank(shared))


def _rank_by_rank(lists: list[list[int]]) -> list[int]:
    """Each list's first item, then each one's second, and so on."""
    ranked = sorted((rank, k) for k, ids in enumerate(lists) for rank in range(len(ids)))
    return [lists[k][rank] for rank, k in ranked]


def _first(cap: int, *orders: list[int]) -> list[int]:
    """The first ``cap`` distinct ids of ``orders`` taken one after another."""
    out = dict.fromkeys(i for ids in orders for i in ids)
    return list(out)[:cap]


def save_views(lib: Library, dataset, run: Run | None, views: dict[str, tuple[str, list[int]]] | None = None,
               *, sample_ids: dict[int, str] | None = None) -> dict[str, int]:
    """(Re)save every view whose rows changed; curator's views that no longer apply are deleted.

    Args:
        views: ``find_views``'s answer, if already known.
        sample_ids: the dataset's sample id of each image it holds, if already known.

    Returns:
        Each view's size: the samples of it the dataset holds.
    """
    from fiftyone.core.utils import to_slug

    from curator.fiftyone_internals import replace_saved_views

    views = find_views(lib, run, embedder=(dataset.info.get("similarity") or {}).get("embedder")) if views is None else views
    if sample_ids is None:
        sample_ids = dict(zip(*dataset.values(["curator_id", "id"])))
    saved = {v["name"]: v.get("description") or "" for v in dataset.list_saved_views(info=True)}
    before = dataset.info.get("views", {})
    sizes, slugs, sigs, changed = {}, set(), {}, []
    for name, (description, image_ids) in views.items():
        if to_slug(name) in slugs:  # class names that differ only in case or punctuation
            name = f"{name}-{len(slugs)}"
        slugs.add(to_slug(name))
        ids = [sample_ids[i] for i in image_ids if i in sample_ids]
        sigs[name] = hashlib.sha1(json.dumps([description, ids]).encode()).hexdigest()[:16]
        if name not in saved or before.get(name) != sigs[name]:
            changed.append((name, description, dataset.select(ids, ordered=True)))
        sizes[name] = len(ids)
    stale = [name for name in saved.keys() - sizes.keys() if saved[name].startswith("curator ")]
    replace_saved_views(dataset, changed, drop=stale)
    dataset.info = {**dataset.info, "views": sigs}
    dataset.save()
    return sizes
