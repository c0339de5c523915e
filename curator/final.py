"""A final fit: "train the production model on training and validation data together and
evaluate it once on the test set".

``fit`` takes an earlier run's options (by default the build's run with the lowest validation
loss, sweep runs included: a sweep is how the options were chosen) and trains them again on the
build's train and val images together for the epochs that run needed to reach its best
checkpoint (``best_epoch``; ``epochs`` overrides, and the answer states which). No early stop
and no best-epoch choice: the validation images are training images now, so the last epoch is
the model. The run records ``final: true`` in its options and its validation curve is not held
out (``held_out_val`` is false in ``runs show``). ``curator.fit`` then scores it and evaluates it
once, on the test and the benchmark splits (``SPLITS``). A warm-started source warm-starts the
final fit from its parent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

from sqlalchemy import select

from curator.errors import InvalidInput, NotFound
from curator.library import Library
from curator.library.models import HELPER_PURPOSES, SWEEP_PURPOSE, Run

SPLITS = ("test", "benchmark")  # evaluated once each, when the build has images there


def source_run(s, splits: str | None, ref: str | None) -> Run:
    """The run whose options the final fit takes: ``ref``, else the finished run with the lowest
    validation loss (on ``splits`` when given), training or sweep runs, no final fit.

    Raises:
        NotFound: no such run, or no finished run to take options from.
        InvalidInput: the run is itself a final fit, or never recorded a validation loss.
    """
    from curator.runs import find_run

    if ref is not None:
        run = find_run(s, ref)
    else:
        stmt = select(Run).where(Run.status == "done", Run.best_val_loss.is_not(None),
                                 Run.purpose.not_in([p for p in HELPER_PURPOSES if p != SWEEP_PURPOSE]))
        if splits:
            from curator.splits import get_build

            stmt = stmt.where(Run.build_id == get_build(s, splits).id)
        runs = [r for r in s.scalars(stmt.order_by(Run.best_val_loss, Run.id)) if not json.loads(r.params).get("final")]
        if not runs:
            where = f" on {splits}" if splits else ""
            raise NotFound(f"no finished run{where} to take options from: train one (or `curator sweep`) first,"
                           " or name it with --from RUN")
        run = runs[0]
    if json.loads(run.params).get("final"):
        raise InvalidInput(f"run {run.name} is a final fit: name the run whose options it took")
    if not run.best_epoch:
        raise InvalidInput(f"run {run.name} recorded no best epoch: give --epochs N")
    return run


def fit(lib: Library, *, splits: str | None = None, source: str | None = None, epochs: int | None = None,
        name: str | None = None, on_start: Callable[[dict], None] | None = None,
        on_epoch: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] = lambda: False) -> dict:
    """Train the final model (``curator.fit.fit`` then scores it and evaluates it on ``SPLITS``).

    Args:
        splits: the build [default: the source run's].
        source: the run whose options to take [default: ``source_run``'s choice].
        epochs: how many [default: the source run's best epoch].
        on_start: called once the run exists with ``{"name", "options", "source", "build",
            "epochs_from"}`` (rank 0 only).

    Returns:
        The run's summary, plus ``source``, ``epochs_from`` (why that many epochs) and
        ``held_out_val`` (False).
    """
    from curator import train

    if epochs is not None and epochs < 1:
        raise InvalidInput(f"--epochs {epochs}: give 1 or more")
    with lib.session() as s:
        src = source_run(s, splits, source)
        cfg = train.TrainConfig.from_json(src.params)
        build, parent = splits or src.build.name, src.parent.name if src.parent else None
        n = epochs or src.best_epoch
        why = (f"--epochs {n}" if epochs else
               f"{n}: the epochs {src.name} needed to reach its best validation score (epoch {src.best_epoch})")
        src_name = src.name
    plan = {"source": src_name, "build": build, "epochs_from": why}
    started = on_start and (lambda run, options: on_start({"name": run, "options": options, **plan}))
    run = train.train(lib, build, replace(cfg, epochs=n, patience=n, final=True), name=name or f"{src_name}-final",
                      warm_start=parent, on_start=started, on_epoch=on_epoch, should_stop=should_stop)
    return run | {"source": src_name, "epochs_from": why, "held_out_val": False}
