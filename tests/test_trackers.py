"""`curator train --log-to tensorboard|mlflow DIR`: the run written where a team already looks,
read back with each tracker's own reader."""

from __future__ import annotations

import sys

import pytest

from conftest import CLI_TINY, as_json, error
from curator import trackers
from curator.errors import InvalidInput

TRAIN = ["train", "--splits", "min10", *CLI_TINY, "--epochs", "2", "--patience", "50", "--no-score", "--json"]


def test_tensorboard_event_files(small_copy, cli, monkeypatch, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("CURATOR_DB", str(small_copy))
    run = as_json(cli(*TRAIN, "--name", "tb", "--log-to", "tensorboard", tmp_path / "tb"))
    events = EventAccumulator(str(tmp_path / "tb" / "tb"), size_guidance={"images": 0, "tensors": 0}).Reload()
    tags = events.Tags()
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "lr"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("val/loss")] == [1, 2]
    assert events.Scalars("train/loss")[-1].value == pytest.approx(_last(small_copy, "tb"), rel=1e-5)
    assert "curves" in tags["images"]
    texts = {t: events.Tensors(t)[0].tensor_proto.string_val[0].decode() for t in tags["tensors"]}
    assert '"lr": 0.001' in texts["options/text_summary"] and texts["checkpoint/text_summary"] == run["checkpoint"]


def _last(db, name) -> float:
    from curator import runs
    from curator.library import open_library

    lib = open_library(db)
    try:
        return runs.epochs(lib, name)[-1]["train_loss"]
    finally:
        lib.close()


def test_mlflow_run(small_copy, cli, monkeypatch, tmp_path):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("CURATOR_DB", str(small_copy))
    run = as_json(cli(*TRAIN, "--name", "ml", "--log-to", "mlflow", tmp_path / "ml"))
    client = MlflowClient(f"sqlite:///{tmp_path / 'ml' / 'mlflow.db'}")
    [found] = client.search_runs([client.get_experiment_by_name("curator").experiment_id])
    assert found.info.run_name == "ml" and found.info.status == "FINISHED"
    assert found.data.params["lr"] == "0.001" and found.data.params["model"] == "test_resnet"
    assert [m.step for m in client.get_metric_history(found.info.run_id, "val_loss")] == [1, 2]
    assert found.data.tags["checkpoint"] == run["checkpoint"]
    assert [a.path for a in client.list_artifacts(found.info.run_id)] == ["curves.png"]


def test_unknown_tracker_and_a_missing_package(library, cli, monkeypatch):
    assert "--log-to wandb: use one of tensorboard, mlflow" in error(
        cli("train", "--splits", "x", "--log-to", "wandb", "runs"))
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    with pytest.raises(InvalidInput, match=r"needs the mlflow package: pip install 'curator\[mlflow\]'"):
        trackers.open_tracker("mlflow", "runs")
