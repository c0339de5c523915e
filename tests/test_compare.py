"""`curator runs compare`: recorded curves of each kind side by side, and the run the recipe's
rules pick (the lowest validation loss that does not trend back up), with the reasons."""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image as PILImage

from conftest import as_json, error
from curator import compare
from curator.curves import diagnose
from curator.library.models import Run, RunEpoch, SplitBuild
from test_curves import GOOD, LINEAR, OVERFIT, WEAK, run, with_values

# Training loss blows up after epoch 4; validation loss had the lowest minimum of all before it did.
DIVERGENT = run([2.0, 1.2, 0.8, 0.7, 0.9, 1.6, 2.5, 4.0], [2.1, 1.3, 0.2, 0.75, 1.0, 1.8, 2.8, 4.5],
                [0.4, 0.6, 0.7, 0.72, 0.6, 0.4, 0.2, 0.1], [0.4, 0.6, 0.7, 0.7, 0.6, 0.4, 0.2, 0.1])
NAN_VAL = with_values(GOOD, "val_loss", {6: math.nan})
OVERFIT_LOW = [{**r, "val_loss": r["val_loss"] / 2} for r in OVERFIT]  # lower than GOOD's, then climbs


def described(**curves) -> list[dict]:
    return [{"name": name, "epochs": rows, "diagnosis": diagnose(rows)} for name, rows in curves.items()]


@pytest.mark.parametrize("curves, preferred, why, passed_over", [
    ({"good": GOOD, "overfit": OVERFIT, "underfit": WEAK, "divergent": DIVERGENT}, "good",
     "lowest validation loss, 0.468 at epoch 10, and its validation loss does not trend back up (good fit)",
     {"overfit": "overfits from epoch 7", "underfit": "higher validation loss (1.055 against 0.468)",
      "divergent": "diverged"}),
    # an overfitting run with a lower minimum is still passed over for one that holds
    ({"overfit": OVERFIT_LOW, "good": GOOD}, "good", "(good fit)", {"overfit": "overfits from epoch 7"}),
    # every run overfits: the lowest minimum, and keep its best epoch
    ({"a": OVERFIT, "b": OVERFIT_LOW}, "b", "keep that epoch's checkpoint (every run overfits)",
     {"a": "overfits from epoch 7"}),
    # the best one is still improving: say so
    ({"linear": LINEAR, "weak": WEAK}, "linear", "(underfitting); it was still improving: train it longer",
     {"weak": "higher validation loss"}),
    ({"nan": NAN_VAL, "good": OVERFIT}, "good", "climbs back", {"nan": "diverged"}),
    ({"x": DIVERGENT, "y": [{**r, "val_loss": None, "val_acc": None} for r in GOOD]}, None,
     "no run has a usable validation curve", {"x": "diverged", "y": "no validation loss recorded"}),
])
def test_prefer_follows_the_recipe(curves, preferred, why, passed_over):
    got = compare.prefer(described(**curves))
    assert got["run"] == preferred and why in got["why"]
    assert set(got["passed_over"]) == set(passed_over)
    for name, reason in passed_over.items():
        assert got["passed_over"][name].startswith(reason)


def test_options_that_differ_and_time_on_the_x_axis():
    assert compare.differing({"a": {"lr": 1e-3, "epochs": 5}, "b": {"lr": 1e-2, "epochs": 5, "augment": True}}) == {
        "augment": {"a": None, "b": True}, "lr": {"a": 1e-3, "b": 1e-2}}
    assert compare.xs(GOOD[:3], "time") == [12.5, 25.0, 37.5] and compare.xs(GOOD[:3], "epoch") == [1, 2, 3]
    assert compare.sparkline([1.0, None, 0.5, 0.0]) == "█ ▅▁"[:1] + " " + compare.sparkline([1.0, 0.5, 0.0])[1:]


@pytest.fixture
def recorded(library):
    """Four finished runs whose curves are the recorded kinds, on one (empty) build."""
    with library.session() as s:
        build = SplitBuild(name="b")
        s.add(build)
        s.flush()
        for i, (name, rows, lr) in enumerate([("good", GOOD, 1e-3), ("overfit", OVERFIT, 1e-2),
                                              ("underfit", WEAK, 1e-4), ("divergent", DIVERGENT, 1.0)]):
            run = Run(name=name, build_id=build.id, model="resnet18", status="done", folder=f"runs/{name}",
                      params=json.dumps({"lr": lr, "epochs": 12, "model": "resnet18"}), epochs_run=len(rows))
            s.add(run)
            s.flush()
            s.add_all(RunEpoch(run_id=run.id, **{k: r[k] for k in ("epoch", "train_loss", "train_acc", "val_loss",
                                                                      "val_acc", "lr", "seconds")}) for r in rows)
    return library


def test_runs_compare_cli(recorded, cli, tmp_path):
    png = tmp_path / "c.png"
    out = cli("runs", "compare", "good", "overfit", "underfit", "divergent", "--png", png)
    assert out.exit_code == 0, out.output
    assert "Prefer good: lowest validation loss, 0.468 at epoch 10" in out.stdout
    assert "  overfit: overfits from epoch 7" in out.stdout and "  divergent: diverged" in out.stdout
    assert "Options that differ" in out.stdout and "lr" in out.stdout and "epochs" not in out.stdout.split("Options")[1]
    assert PILImage.open(png).size == (900, 500)
    data = as_json(cli("runs", "compare", "good", "overfit", "--x", "time", "--metric", "accuracy", "--json",
                       "--png", tmp_path / "t.png"))
    assert data["preferred"]["run"] == "good" and data["x"] == "time" and data["options"] == {
        "lr": {"good": 1e-3, "overfit": 1e-2}}
    assert [r["diagnosis"]["verdict"] for r in data["runs"]] == ["good fit", "overfitting"]


@pytest.mark.parametrize("args, message", [
    (["good"], "name two or more different runs"),
    (["good", "good"], "name two or more different runs"),
    (["good", "nope"], "no run named 'nope'"),
    (["good", "overfit", "--x", "steps"], "--x steps: use one of epoch, time"),
])
def test_runs_compare_errors(recorded, cli, args, message):
    assert message in error(cli("runs", "compare", *args))
