"""Experiment trackers a team already has: ``curator train --log-to tensorboard|mlflow DIR``.

A run is also written where a team already looks: every epoch's metrics as they come, the
options when it starts, and at the end its best epoch and accuracy, the curves PNG and the
checkpoint's path. The library stays the record; a tracker is a copy for its own viewer.

- ``tensorboard``: event files under ``DIR/RUN`` (``torch.utils.tensorboard``; needs the
  ``tensorboard`` package: ``pip install 'curator[tensorboard]'``): scalars ``train/loss``,
  ``train/acc``, ``val/loss``, ``val/acc``, ``lr`` by epoch, the options and the checkpoint as
  text, the curves as an image. ``tensorboard --logdir DIR`` shows them.
- ``mlflow``: an MLflow tracking store in ``DIR`` (``sqlite:///DIR/mlflow.db``, artifacts in
  ``DIR/artifacts``; needs ``mlflow-skinny``: ``pip install 'curator[mlflow]'``), experiment
  ``curator``, one MLflow run per curator run with its options as params, the metrics by epoch,
  the curves PNG as an artifact and the checkpoint path as a tag. ``mlflow ui
  --backend-store-uri sqlite:///DIR/mlflow.db`` shows them.
"""

from __future__ import annotations

import json
from pathlib import Path

from curator.errors import InvalidInput

KINDS = ("tensorboard", "mlflow")
EXPERIMENT = "curator"
METRICS = {"train_loss": "train/loss", "train_acc": "train/acc", "val_loss": "val/loss", "val_acc": "val/acc",
           "lr": "lr", "seconds": "seconds"}


def open_tracker(kind: str, folder: str | Path):
    """A tracker writing to ``folder``.

    Raises:
        InvalidInput: an unknown kind, or its package is not installed (with the command to install it).
    """
    if kind not in KINDS:
        raise InvalidInput(f"--log-to {kind}: use one of {', '.join(KINDS)}")
    package = {"tensorboard": "tensorboard", "mlflow": "mlflow"}[kind]
    try:
        __import__(package)
    except ImportError:
        raise InvalidInput(f"--log-to {kind} needs the {package} package: pip install 'curator[{kind}]'") from None
    return {"tensorboard": TensorBoard, "mlflow": MLflow}[kind](Path(folder))


class TensorBoard:
    def __init__(self, folder: Path) -> None:
        self.folder, self.writer = folder, None

    def start(self, run: str, options: dict) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.folder / run))
        self.writer.add_text("options", "```\n" + json.dumps(options, indent=1, default=str) + "\n```")

    def epoch(self, row: dict) -> None:
        for key, tag in METRICS.items():
            if row.get(key) is not None:
                self.writer.add_scalar(tag, row[key], row["epoch"])
        self.writer.flush()

    def finish(self, result: dict, curves_png: Path | None) -> None:
        import numpy as np
        from PIL import Image

        self.writer.add_text("result", f"{result['status']} after {result['epochs']} epochs; best val accuracy"
                                       f" {result['best_val_acc']} at epoch {result['best_epoch']}")
        self.writer.add_text("checkpoint", result["checkpoint"])
        if curves_png:
            self.writer.add_image("curves", np.asarray(Image.open(curves_png).convert("RGB")), dataformats="HWC")
        self.writer.close()


class MLflow:
    def __init__(self, folder: Path) -> None:
        self.folder, self.client, self.run_id = folder.resolve(), None, None

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.folder / 'mlflow.db'}"

    def start(self, run: str, options: dict) -> None:
        import logging

        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # its table set-up says so at INFO
        self.folder.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(self.uri)
        found = self.client.get_experiment_by_name(EXPERIMENT)
        experiment = found.experiment_id if found else self.client.create_experiment(
            EXPERIMENT, artifact_location=(self.folder / "artifacts").as_uri())
        self.run_id = self.client.create_run(experiment, run_name=run).info.run_id
        for key, value in options.items():
            self.client.log_param(self.run_id, key, json.dumps(value, default=str) if isinstance(value, (dict, list)) else value)

    def epoch(self, row: dict) -> None:
        for key in METRICS:
            if row.get(key) is not None:
                self.client.log_metric(self.run_id, key, row[key], step=row["epoch"])

    def finish(self, result: dict, curves_png: Path | None) -> None:
        self.client.set_tag(self.run_id, "checkpoint", result["checkpoint"])
        self.client.set_tag(self.run_id, "curator_status", result["status"])
        if curves_png:
            self.client.log_artifact(self.run_id, str(curves_png))
        self.client.set_terminated(self.run_id, "FINISHED" if result["status"] == "done" else "KILLED")


def finish(lib, tracker, result: dict) -> None:
    """End ``tracker``'s copy of a run: its summary, the curves PNG (drawn into the run's folder)
    and the checkpoint path."""
    from curator import curves, runs

    rows = runs.epochs(lib, result["name"])
    png = curves.plot_png(rows, Path(result["folder"]) / "curves.png", title=result["name"]) if rows else None
    tracker.finish(result, png)
