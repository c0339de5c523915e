"""The registry of training runs: find one, describe it, list them, read curves, promote.

Training itself is ``curator.train``; this module only reads and flags ``runs`` rows.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from curator.errors import InvalidInput, NotFound
from curator.library import Library
from curator.library.models import TRAIN_PURPOSE, Run, RunEpoch, utcnow


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
        what = {"latest": "no finished run yet", "production": "no production run yet: `curator runs promote RUN`"}
        raise NotFound(what.get(ref, f"no run named {ref!r}: see `curator runs`"))
    return run


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
        "production": run.id == prod_id, "status": run.status,
        "classes": json.loads(run.classes), "epochs": run.epochs_run, "best_epoch": run.best_epoch,
        "best_val_acc": run.best_val_acc, "best_val_loss": run.best_val_loss,
        "created_at": run.created_at.isoformat(timespec="seconds"),
        "finished_at": run.finished_at.isoformat(timespec="seconds") if run.finished_at else None,
        "device": run.device, "world_size": run.world_size, "folder": str(folder),
        "checkpoint": str(folder / "best.pt"), "params": json.loads(run.params),
    }


def summary(lib: Library, ref: str) -> dict:
    """One run as plain data: model, build, parent, status, best epoch and accuracy, options."""
    with lib.session() as s:
        return _describe(lib, find_run(s, ref), production_id(s))


def list_runs(lib: Library) -> list[dict]:
    """Every run, oldest first; the current production run is flagged."""
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
