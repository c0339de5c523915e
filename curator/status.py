"""Where the loop stands and what to do next: ``curator status``.

Each check looks at one part of the loop in the order a team works (import, dedup, conflicts,
embeddings, discovery, splits, training, bulk-identify, coverage, unknowns, suspects, FiftyOne,
edits in FiftyOne not yet pulled, production) and, when there is something to do, says what and
gives the command. Every check is a few SQL queries answered by indexes (counts, ``EXISTS``, the
newest row, one ``GROUP BY`` for the conflicts), so ``status`` stays quick on a library of a
million images; FiftyOne is opened only when the library already has a FiftyOne database and
``fiftyone`` is not turned off (it starts the database: seconds).

``CHECKS`` is the table of checks: ``(key, function, needs a run)``; a function takes a ``Look`` and returns
``{"state", "command"}`` (or a list of them), or None when that part of the loop is done.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import exists, func, select

from curator.defaults import DEFAULT_MIN_COUNT
from curator.library import Library
from curator.library.models import (
    ACTIVE, HELPER_PURPOSES, LABELLED, UNKNOWN, UNLABELLED, Cluster, DedupRun, Discovery, Embedder, Embedding,
    Evaluation, Image, LabelClass, LabelEvent, Prediction, Run, SplitBuild,
)

THROWAWAY_COUNT = 35  # the throw-away run's cutoff when there is no build yet
CONFIDENT = 0.8  # an unknown image predicted this surely is one the model now recognises
SHOWN = 5  # ids named in a command


@dataclass
class Look:
    """What the checks share: the session, the library, the cutoff, and what they found."""

    s: object
    lib: Library
    min_count: int
    fiftyone: bool
    found: dict = field(default_factory=dict)

    def run(self) -> Run | None:
        """The newest finished training run (helper runs never count)."""
        if "run" not in self.found:
            self.found["run"] = self.s.scalar(select(Run).where(
                Run.status == "done", Run.purpose.not_in(HELPER_PURPOSES)).order_by(Run.id.desc()).limit(1))
        return self.found["run"]

    def cutoff_of(self, build: SplitBuild) -> int:
        return json.loads(build.params).get("min_count", self.min_count)

    def has_run(self, build: SplitBuild) -> bool:
        return self.s.scalar(select(Run.id).where(Run.build_id == build.id, Run.status == "done").limit(1)) is not None

    def build(self) -> SplitBuild | None:
        if "build" not in self.found:
            self.found["build"] = self.s.scalar(select(SplitBuild).where(~SplitBuild.name.like("suspects-%"))
                                                .order_by(SplitBuild.id.desc()).limit(1))
        return self.found["build"]


def _say(state: str, command: str) -> dict:
    return {"state": state, "command": command}


def _count(s, *where) -> int:
    return int(s.scalar(select(func.count()).select_from(Image).where(Image.status == ACTIVE, *where)) or 0)


def imported(look: Look):
    if not look.s.scalar(select(Image.id).limit(1)):
        return _say("the library is empty", "curator import PATH --labels-from-folders")


def deduped(look: Look):
    last = look.s.scalar(select(DedupRun).where(DedupRun.finished_at.is_not(None)).order_by(DedupRun.id.desc()).limit(1))
    newer = _count(look.s, Image.id > (last.last_image_id if last else 0))
    if newer:
        return _say(f"{newer:,} images not yet compared for duplicates", "curator dedup")


def conflicts(look: Look):
    from curator.dedup import conflict_count

    groups = conflict_count(look.s)
    if groups:
        return _say(f"{groups} duplicate groups carry two labels: relabel one side",
                    "curator duplicates --conflicts")


def _embedder(look: Look) -> Embedder | None:
    return look.s.scalar(select(Embedder).where(Embedder.kind == "model").order_by(Embedder.id.desc()).limit(1))


def embedded(look: Look):
    from curator import similarity

    e = _embedder(look)
    if e is None:
        return _say("no embeddings yet (similar, find --unfamiliar and discover need them)",
                    "curator embed --weights lite0 --pool all")
    lacking = _count(look.s, ~exists().where(Embedding.image_id == Image.id, Embedding.embedder_id == e.id))
    if lacking:
        return _say(f"{lacking:,} images have no embedding under {e.name}",
                    similarity.embed_hint(look.s, e, "all").removeprefix("run `").rstrip("`"))


def discovered(look: Look):
    """Pool images with a vector and no discovery since they came (never, or added after the last)."""
    e = _embedder(look)
    if e is None:
        return None
    last = look.s.scalar(select(Discovery).where(Discovery.embedder_id == e.id).order_by(Discovery.id.desc()).limit(1))
    fresh = select(Image.id).where(Image.status == ACTIVE, Image.label_state.in_((UNLABELLED, UNKNOWN)),
                                   exists().where(Embedding.image_id == Image.id, Embedding.embedder_id == e.id,
                                                  Embedding.error.is_(None)))
    if last is not None:
        fresh = fresh.where(Image.added_at > last.at)
    if look.s.scalar(fresh.limit(1)):
        return _say("pool images not yet looked at for new classes" if last is None else
                    "pool images added since the last discovery", "curator discover")


def clusters(look: Look):
    d = look.s.scalar(select(Discovery).order_by(Discovery.id.desc()).limit(1))
    if d is None:
        return None
    open_ = look.s.scalars(select(Cluster).where(Cluster.discovery_id == d.id, Cluster.state == "open")
                           .order_by(Cluster.inside.is_not(None), Cluster.size.desc(), Cluster.number)).all()
    if open_:
        c = open_[0]
        what = f"inside {c.inside}: a sub-class or look-alike?" if c.inside else "a new class?"
        return _say(f"{len(open_)} clusters found by discover not looked at yet; the biggest, {c.number}"
                    f" ({c.size} images), reads as {what}",
                    f"curator discover --cluster {c.number} --label NEW --create")


def discovered_classes(look: Look):
    """Classes made from a discovered cluster that are still under the cutoff: grow them with ``similar``."""
    made = look.s.execute(
        select(LabelClass.name, func.count(Image.id)).join(Image, Image.class_id == LabelClass.id)
        .where(Image.status == ACTIVE, Image.label_state == LABELLED, exists().where(
            LabelEvent.image_id == Image.id, LabelEvent.source == "discover"))
        .group_by(LabelClass.name)).all()
    out = []
    for name, n in made:
        total = look.s.scalar(select(func.count(Image.id)).join(LabelClass, LabelClass.id == Image.class_id).where(
            LabelClass.name == name, Image.status == ACTIVE, Image.label_state == LABELLED))
        if total < look.min_count:
            seeds = look.s.scalars(select(Image.id).join(LabelClass, LabelClass.id == Image.class_id).where(
                LabelClass.name == name, Image.label_state == LABELLED).order_by(Image.id).limit(SHOWN))
            out.append(_say(f"{name} (from discover) has {total} images, {look.min_count - total} short of the cutoff",
                            f"curator similar {' '.join(map(str, seeds))} --k {look.min_count - total} --label {name}"))
    return out or None


def split(look: Look):
    build = look.build()
    if build is None:
        return _say("no split build yet: a throw-away one first",
                    f"curator build-splits --min-count {THROWAWAY_COUNT} --name throwaway-{THROWAWAY_COUNT}")
    changed = look.s.scalar(select(func.count(LabelEvent.id)).where(
        LabelEvent.field == "label", LabelEvent.at > build.created_at, LabelEvent.source != "import"))
    min_count = look.cutoff_of(build)
    if changed or (look.has_run(build) and min_count < look.min_count):
        why = (f"{changed:,} labels changed since build {build.name}" if changed else
               f"build {build.name} is a throw-away one at {min_count}")
        return _say(why, f"curator build-splits --min-count {look.min_count} --name min{look.min_count}")


def trained(look: Look):
    build = look.build()
    if build is None or look.has_run(build):
        return None
    run = look.run()
    how = (" --throwaway" if look.cutoff_of(build) < look.min_count else "") + (f" --warm-start {run.name}" if run else "")
    return _say(f"build {build.name} has no finished run", f"curator train --splits {build.name}{how}")


def identified(look: Look):
    run = look.run()
    waiting = {pool: _count(look.s, Image.label_state == pool,
                            ~exists().where(Prediction.image_id == Image.id, Prediction.run_id == run.id))
               for pool in (UNLABELLED, UNKNOWN)}
    return [_say(f"{n:,} {pool} images not yet predicted by {run.name}",
                 f"curator bulk-identify --run {run.name}{'' if pool == UNLABELLED else ' --pool ' + pool}")
            for pool, n in waiting.items() if n] or None


def coverage(look: Look):
    from curator import tallies

    run = look.run()
    confident = tallies.prediction_counts(look.s, run.id, (UNLABELLED,), lo=CONFIDENT)
    totals = tallies.class_totals(look.s)
    near = sorted((name, look.min_count - labelled, confident.get(name, 0)) for name, (labelled, _) in totals.items()
                  if labelled < look.min_count and labelled + confident.get(name, 0) >= look.min_count)
    if near:
        names = ", ".join(f"{n} (needs {k}, {c} confident)" for n, k, c in near[:SHOWN])
        return _say(f"{len(near)} classes within reach of the cutoff {look.min_count}: {names}",
                    f"curator coverage --run {run.name} --min-count {look.min_count}")


def unknowns(look: Look):
    run = look.run()
    n = look.s.scalar(select(func.count(Prediction.image_id)).join(Image, Image.id == Prediction.image_id).where(
        Prediction.run_id == run.id, Prediction.confidence >= CONFIDENT, Image.status == ACTIVE,
        Image.label_state == UNKNOWN))
    if n:
        return _say(f"{n} unknown images that {run.name} now recognises at {CONFIDENT} or more",
                    f"curator find --run {run.name} --unknown --min-confidence {CONFIDENT}")


def suspects(look: Look):
    from curator.runs import run_folder
    from curator.suspects import SAVED

    run = look.run()
    path = run_folder(look.lib, run) / SAVED
    if not path.is_file():
        return None
    listed = {r["image_id"]: r["label"] for r in json.loads(path.read_text())["suspects"]}
    from datetime import datetime, timezone

    since = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).replace(tzinfo=None)
    touched = set(look.s.scalars(select(LabelEvent.image_id).where(
        LabelEvent.image_id.in_(list(listed)[:10_000]), LabelEvent.at > since)))
    waiting = [i for i in listed if i not in touched]
    if waiting:
        return _say(f"{len(waiting)} suspect labels of {run.name} not yet reviewed",
                    f"curator browse --run {run.name} --view suspects")


def fiftyone(look: Look):
    from curator.fiftyone_database import database_dir

    run = look.run()
    if not database_dir(look.lib).is_dir():
        return _say("no FiftyOne dataset yet: browse and relabel there", f"curator browse --run {run.name}")


def pulled(look: Look):
    """Samples edited in the FiftyOne app and not yet pulled; FiftyOne is asked (and its
    database started) only when the library has a FiftyOne database and ``look.fiftyone``."""
    from curator import fiftyone_pull

    if not look.fiftyone:
        return None
    edited = fiftyone_pull.pending_samples(look.lib)
    if edited:
        return _say(f"{len(edited)} images edited in FiftyOne not yet pulled into the library", "curator pull")


def production(look: Look):
    from curator.runs import production_id

    prod = production_id(look.s)
    run = look.run()
    if run.throwaway or run.id == prod:
        return None
    if prod is None:
        return _say(f"no production run yet; {run.name} is the newest", f"curator runs promote {run.name}")
    ev = look.s.scalar(select(Evaluation).where(Evaluation.run_id == run.id, Evaluation.split == "benchmark")
                       .order_by(Evaluation.id.desc()).limit(1))
    if ev and json.loads(ev.comparisons).get("beats_production"):
        return _say(f"{run.name} beats production on the benchmark set", f"curator runs promote {run.name}")


# (key, check, whether it needs a finished run: without one it is skipped)
CHECKS = (("import", imported, False), ("dedup", deduped, False), ("conflicts", conflicts, False),
          ("embeddings", embedded, False), ("discover", discovered, False), ("clusters", clusters, False),
          ("new classes", discovered_classes, False), ("splits", split, False), ("train", trained, False),
          ("bulk-identify", identified, True), ("coverage", coverage, True), ("unknowns", unknowns, True),
          ("suspects", suspects, True), ("fiftyone", fiftyone, True), ("pull", pulled, False),
          ("production", production, True))


def status(lib: Library, *, min_count: int = DEFAULT_MIN_COUNT, fiftyone: bool = True) -> dict:
    """Where the loop stands: ``{"counts": {...}, "next": [{"check", "state", "command"}, ...]}``,
    the suggestions in the order the loop takes them (an empty list: nothing to do).

    Args:
        fiftyone: look for edits in the FiftyOne app not yet pulled, when the library has a
            FiftyOne database (this starts it: seconds); False never starts FiftyOne.
    """
    from curator.classes import state_counts

    with lib.session() as s:
        look = Look(s, lib, min_count, fiftyone)
        out = []
        for key, check, needs_run in CHECKS:
            if needs_run and look.run() is None:
                continue
            found = check(look)
            for item in found if isinstance(found, list) else [found] if found else []:
                out.append({"check": key, **item})
            if key == "import" and found:
                break
        run = look.run()
    return {"counts": state_counts(lib), "run": run.name if run else None, "min_count": min_count, "next": out}
