"""The registry of training runs: find one, describe it, list them, read curves, promote.

Training itself is ``curator.train``; this module only reads and flags ``runs`` rows.

Which run a command uses when none is named, the same rule everywhere:

- Helper runs (purpose ``suspects``: the k-fold runs of ``curator suspects``; ``sweep``) never
  count: not as ``latest``, not as any default. ``latest`` is the newest finished training run.
- A command that reads predictions (``find``, ``coverage``, ``browse``) uses the newest finished
  training run that has predictions for the images it looks at, its *pool*: the unlabelled
  images by default; the unknown ones for ``find --unknown`` / ``--label unknown``; the
  labelled ones for ``find --label CLASS`` / ``--subclass`` / ``--split`` (the pools of
  ``curator bulk-identify --pool``). With none, it uses ``latest``.
- When the newest finished training run (or the run named) has not predicted that pool, the
  result carries a note saying so and how to fix it; every output names the run it used.
- A run named explicitly (name, id, ``latest``, ``production``) is used as named.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from curator.errors import InvalidInput, NotFound
from curator.library import Library
from curator.library.models import (
    ACTIVE,
    LABELLED,
    TRAIN_PURPOSE,
    UNKNOWN,
    UNLABELLED,
    Image,
    PredictionTally,
    Run,
    RunEpoch,
    utcnow,
)

# The pools a default run is chosen by: how a note names each, and the `bulk-identify` that fills it.
POOLS = {
    UNLABELLED: ("the pool", ""),
    UNKNOWN: ("the unknown images", " --pool unknown"),
    LABELLED: ("the labelled images", " --pool labelled"),
}


def is_training_run():
    """The SQL condition for a real training run, not a helper (suspects folds, sweep trials).

    The one home of the rule that helper runs never count as latest, nor as a default anywhere.
    """
    return Run.purpose == TRAIN_PURPOSE


def find_run(s, ref: str) -> Run:
    """A run by name, id, ``latest`` (newest finished training run) or ``production``."""
    if ref == "latest":
        run = s.scalar(select(Run).where(Run.status == "done", is_training_run()).order_by(Run.id.desc()))
    elif ref == "production":
        run = s.scalar(select(Run).where(Run.promoted_at.is_not(None)).order_by(Run.promoted_at.desc()))
    else:
        run = s.scalar(select(Run).where(Run.name == ref))
        if run is None and ref.isdigit():
            run = s.get(Run, int(ref))
    if run is None:
        what = {"latest": "no finished training run yet: `curator train --splits BUILD` makes one", "production": "no production run yet: `curator runs promote RUN`"}
        raise NotFound(what.get(ref, f"no run named {ref!r}: see `curator runs`"))
    return run


def _has_predicted(pool: str):
    """The SQL condition: the run (``Run``) has a readable prediction for an image of ``pool``
    (from the tallies, ``curator.tallies``: read in index order, it stops at the first count)."""
    t = PredictionTally
    return (select(t.predicted).where(t.run_id == Run.id, t.state == pool)
            .group_by(t.predicted, t.bucket).having(func.sum(t.n) > 0).exists())


def pick_run(s, ref: str | None, pool: str = UNLABELLED) -> tuple[Run, list[str]]:
    """The run whose predictions a command reads, and notes about that choice (see the module doc).

    Args:
        ref: the run named (name, id, ``latest``, ``production``), or None for the default: the
            newest finished training run that has predicted an image of ``pool``, else ``latest``.
        pool: ``unlabelled``, ``unknown`` or ``labelled``: the images the command looks at.

    Returns:
        The run, and a note when ``pool`` has images and the newest finished training run (or
        the run named) has predicted none of them: ``run X has not predicted the pool: run `curator bulk-identify --run X```.

    Raises:
        NotFound: no run named ``ref``, or no finished training run yet.
    """
    newest = find_run(s, ref or "latest")
    pool_empty = s.scalar(select(Image.id).where(Image.status == ACTIVE, Image.label_state == pool).limit(1)) is None
    if pool_empty or s.scalar(select(Run.id).where(Run.id == newest.id, _has_predicted(pool))) is not None:
        return newest, []
    notes = [_not_predicted(newest, pool)]
    if ref is not None:
        return newest, notes
    run = s.scalar(select(Run).where(Run.status == "done", is_training_run(), _has_predicted(pool))
                   .order_by(Run.id.desc()))
    return run or newest, notes


def _not_predicted(run: Run, pool: str) -> str:
    what, option = POOLS[pool]
    return f"run {run.name} has not predicted {what}: run `curator bulk-identify --run {run.name}{option}`"


def epochs(lib: Library, ref: str) -> list[dict]:
    """A run's curves, one dict per epoch."""
    with lib.session() as s:
        run = find_run(s, ref)
        rows = s.scalars(select(RunEpoch).where(RunEpoch.run_id == run.id).order_by(RunEpoch.epoch))
        return [{k: getattr(r, k) for k in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
                                            "seconds", "images_per_s")} for r in rows]


def production_id(s) -> int | None:
    return s.scalar(select(Run.id).where(Run.promoted_at.is_not(None)).order_by(Run.promoted_at.desc()))


def run_folder(lib: Library, run: Run) -> Path:
    """Where a run's checkpoints live: stored relative to the library's folder, so it can move."""
    return lib.folder / run.folder


def _describe(lib: Library, run: Run, prod_id: int | None) -> dict:
    folder = run_folder(lib, run)
    return {
        "name": run.name, "id": run.id, "model": run.model, "build": run.build.name,
        "parent": run.parent.name if run.parent else None, "throwaway": run.throwaway,
        "production": run.id == prod_id, "status": run.status, "purpose": run.purpose,
        "classes": json.loads(run.classes), "epochs": run.epochs_run, "best_epoch": run.best_epoch,
        "best_val_acc": run.best_val_acc, "best_val_loss": run.best_val_loss,
        "created_at": run.created_at.isoformat(timespec="seconds"),
        "finished_at": run.finished_at.isoformat(timespec="seconds") if run.finished_at else None,
        "device": run.device, "world_size": run.world_size, "folder": str(folder),
        "checkpoint": str(folder / "best.pt"), "params": json.loads(run.params),
        # a final fit (curator.final) trains on its validation images too
        "held_out_val": not json.loads(run.params).get("final", False),
    }


def summary(lib: Library, ref: str) -> dict:
    """One run as plain data: model, build, parent, status, best epoch and accuracy, options."""
    with lib.session() as s:
        return _describe(lib, find_run(s, ref), production_id(s))


def list_runs(lib: Library) -> list[dict]:
    """Every run, helper runs too (``purpose`` says which), oldest first; production is flagged."""
    with lib.session() as s:
        prod = production_id(s)
        return [_describe(lib, run, prod) for run in s.scalars(select(Run).order_by(Run.id))]


def promote(lib: Library, ref: str) -> dict:
    """Make a finished, non-throw-away run the production run."""
    with lib.session() as s:
        run = find_run(s, ref)
        if run.throwaway:
            raise InvalidInput(f"run {run.name} is a throw-away run and never goes to production:"
                               f" train one without --throwaway (e.g. --warm-start {run.name})")
        if run.status != "done":
            raise InvalidInput(f"run {run.name} is {run.status}, not finished: `curator train --resume {run.name}` first")
        run.promoted_at = utcnow()
        return _describe(lib, run, run.id)
