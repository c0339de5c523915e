"""A training job as ``curator train`` and the demo run it: train, then look at what was trained.

``fit`` trains a new run (``curator.train.train``), goes on with an interrupted one
(``train.resume``) or makes a final fit (``curator.final.fit``); when the run finished it scores
the build's images (``predict.score``), evaluates the run (``evaluation.evaluate``) and counts
the images to review (``evaluation.review``). Options that contradict each other are refused
before anything trains, each with the fix in the message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from curator.errors import InvalidInput
from curator.library import Library

if TYPE_CHECKING:  # torch loads when training starts
    from curator.train import TrainConfig


@dataclass
class Fitted:
    """What ``fit`` did.

    ``run`` is the run's summary (``runs.summary``) with ``missing`` (its build's images with no
    readable file); a final fit's also has ``source``, ``epochs_from`` and ``held_out_val``. A
    torchrun worker other than rank 0 gets only ``{"name", "rank"}`` (rank 0 reports).
    """

    run: dict
    final: bool = False
    scored: dict | None = None  # predict.ScoreSummary.to_dict() of the build's images; None: not scored
    evaluations: dict[str, dict] = field(default_factory=dict)  # {split: evaluation.evaluate's answer}
    review: int | None = None  # images predicted wrongly, or right with low confidence
    notes: list[str] = field(default_factory=list)  # splits left out: the build has no images there

    @property
    def worker(self) -> bool:
        return "rank" in self.run

    def to_dict(self) -> dict:
        """The run, and ``after`` (scored, evaluations, review) when scored; a final fit's
        ``evaluations`` and ``notes`` sit beside the run's fields."""
        if self.final:
            return self.run | {"evaluations": self.evaluations, "notes": self.notes}
        if self.scored is None:
            return dict(self.run)
        return self.run | {"after": {"scored": self.scored, "evaluations": self.evaluations, "review": self.review}}


def fit(lib: Library, splits: str | None = None, cfg: TrainConfig | None = None, *, name: str | None = None,
        warm_start: str | None = None, throwaway: bool = False, resume: str | None = None, final: bool = False,
        source: str | None = None, epochs: int | None = None, score: bool = True,
        evaluate: str | tuple[str, ...] = "all", tracker=None, on_start: Callable[[dict], None] | None = None,
        on_epoch: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] = lambda: False) -> Fitted:
    """Train on split build ``splits`` with ``cfg`` (a ``train.TrainConfig``), then score and evaluate.

    Args:
        resume: go on with this interrupted run instead, with its own options.
        final: a final fit instead: ``source``'s options (default: ``final.source_run``'s
            choice) on the build's train + val for ``epochs`` (default: the epochs it needed);
            evaluated on ``final.SPLITS`` only.
        score: score the build's images, evaluate and count the images to review when the run
            finished (a final fit is always scored).
        evaluate: ``all`` (val, test and benchmark; an error when none has images) or the splits
            to evaluate, each one the build has no images in left out with a note.
        tracker: a ``trackers.open_tracker`` to copy the run to.
        on_start: called once the run exists with ``{"name", "options"}`` (its ``TrainConfig``
            as a dict), a final fit's also ``source``, ``build`` and ``epochs_from`` (rank 0 only).
        on_epoch: called with each epoch's row (rank 0 only).
        should_stop: polled between batches; True ends the run as ``interrupted`` (resumable).

    Raises:
        InvalidInput: no build to train on.
        ConflictingOptions: more than one start chosen (``TrainConfig.check_start``).
    """
    from curator import final as final_lib
    from curator import train

    started = _starter(tracker, on_start)
    shown = on_epoch if tracker is None else lambda row: (tracker.epoch(row), on_epoch and on_epoch(row))
    if final:
        run = final_lib.fit(lib, splits=splits, source=source, epochs=epochs, name=name, on_start=started,
                            on_epoch=shown, should_stop=should_stop)
        evaluate = final_lib.SPLITS
    elif resume:
        run = train.resume(lib, resume, on_start=_named(started), on_epoch=shown, should_stop=should_stop)
    else:
        if not splits:
            raise InvalidInput("give the split build to train on, e.g. --splits min40")
        run = train.train(lib, splits, cfg, name=name, warm_start=warm_start, throwaway=throwaway,
                          on_start=_named(started), on_epoch=shown, should_stop=should_stop)
    done = Fitted(run, final=final)
    if done.worker:
        return done
    if tracker is not None:
        from curator import trackers

        trackers.finish(lib, tracker, run)
    if run["status"] == "done" and (score or final):
        _score(lib, done, evaluate)
    return done


def _starter(tracker, on_start: Callable[[dict], None] | None) -> Callable[[dict], None] | None:
    """``on_start``, starting the tracker's copy of the run first."""
    if tracker is None:
        return on_start

    def start(run: dict) -> None:
        tracker.start(run["name"], run["options"])
        if on_start:
            on_start(run)
    return start


def _named(start: Callable[[dict], None] | None) -> Callable[[str, dict], None] | None:
    """``start`` as ``train.train`` calls it: with the run's name and options."""
    return start and (lambda run, options: start({"name": run, "options": options}))


def _score(lib: Library, done: Fitted, evaluate: str | tuple[str, ...]) -> None:
    """Score the build's images with the run, evaluate it and count the images to review."""
    from curator import evaluation, predict

    name = done.run["name"]
    done.scored = predict.score(lib, name).to_dict()
    if evaluate == "all":
        done.evaluations = evaluation.evaluate(lib, name, "all")
    else:
        for split in evaluate:
            try:
                done.evaluations[split] = evaluation.evaluate(lib, name, split)[split]
            except InvalidInput as e:  # the build has no images there
                done.notes.append(f"{split}: {e}")
    done.review = len(evaluation.review(lib, name))
