"""`curator sweep`: a run per setting on sample_data's builds with a tiny model, resumable after
a kill, never the latest run; the comparison, the parallel-coordinates plot, pretrained against
scratch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from PIL import Image as PILImage

from conftest import TINY, error
from curator import runs, sweep, train
from curator.library import open_library
from test_train import _wait_for_epochs

CURATOR = [sys.executable, "-m", "curator"]
SWEEP = ["sweep", "--splits", "min10", "--lr", "1e-3,1e-2", "--model", "test_resnet", "--img-size", "32",
         "--workers", "0", "--patience", "50"]


def test_settings_and_names():
    got = sweep.combinations([1e-3, 1e-2, 1e-3], [32, 64], ["scratch", "pretrained"])
    assert len(got) == 8 and got[0] == {"lr": 1e-3, "batch_size": 32, "init": "scratch"}
    assert sweep.run_name("min10", got[-1]) == "sweep-min10-lr0.01-bs64-pretrained"


@pytest.mark.parametrize("args, message", [
    (dict(lrs=[], batch_sizes=[32], inits=["scratch"]), "give one or more learning rates"),
    (dict(lrs=[1e-3], batch_sizes=[32], inits=["imagenet"]), "--init imagenet: use scratch, pretrained"),
    (dict(lrs=[-1], batch_sizes=[32], inits=["scratch"]), "learning rates must be above 0"),
])
def test_bad_settings(args, message):
    with pytest.raises(Exception, match=message):
        sweep.combinations(args["lrs"], args["batch_sizes"], args["inits"])


def test_a_sweep_resumes_after_a_kill_and_never_becomes_latest(small_copy, tmp_path):
    env = {**os.environ, "CURATOR_DB": str(small_copy)}
    first = sweep.run_name("min10", {"lr": 1e-3, "batch_size": 64, "init": "scratch"})
    proc = subprocess.Popen(CURATOR + SWEEP + ["--epochs", "6"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for_epochs(small_copy, first, 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=120)
    lib = open_library(small_copy)
    latest = runs.summary(lib, "latest")["name"]
    assert latest == "child" and runs.summary(lib, first)["purpose"] == "sweep"
    done_before = len(runs.epochs(lib, first))
    p = subprocess.run(CURATOR + SWEEP + ["--epochs", "6", "--json", "--png", str(tmp_path / "c.png")], env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    import json

    result = json.loads(p.stdout)
    assert [s["status"] for s in result["settings"]] == ["done", "done"]
    assert [r["epoch"] for r in runs.epochs(lib, first)] == [1, 2, 3, 4, 5, 6] and done_before >= 2
    assert result["recommended"]["run"] in {s["run"] for s in result["settings"]}
    assert result["preferred"]["why"] and set(result["options"]) == {"lr"}
    assert PILImage.open(tmp_path / "c.png").size == (900, 500)
    assert PILImage.open(result["parallel_png"]).size == (900, 500)
    assert runs.summary(lib, "latest")["name"] == "child"  # sweep runs never count as the latest
    again = subprocess.run(CURATOR + SWEEP + ["--epochs", "6"], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stderr.count("skip: sweep-min10-") == 2
    assert "Prefer sweep-min10-" in again.stdout and "Recommended: --lr " in again.stdout
    lib.close()


def test_pretrained_against_scratch(small_copy, tmp_path):
    lib = open_library(small_copy)
    weights = tmp_path / "w.pth"  # a 'pretrained' start: the parent run's trained body
    import torch

    from curator import checkpoints

    model = checkpoints.build_model(checkpoints.load(runs.summary(lib, "parent")["checkpoint"]))
    torch.save(model.state_dict(), weights)
    base = train.TrainConfig(epochs=3, patience=50, **TINY, weights=str(weights))
    result = sweep.sweep(lib, "min10", base, lrs=[1e-3], inits=["scratch", "pretrained"])
    pair = result["pretrained_vs_scratch"][0]
    assert pair["lr"] == 1e-3 and 0 <= pair["scratch_best"] <= 1 and 0 <= pair["pretrained_best"] <= 1
    assert pair["scratch_epochs_to_best"] in (1, 2, 3)
    assert {s["init"] for s in result["settings"]} == {"scratch", "pretrained"}
    params = runs.summary(lib, result["settings"][1]["run"])["params"]
    assert params["weights"] == str(weights) and not params["pretrained"]
    assert runs.summary(lib, result["settings"][0]["run"])["params"]["weights"] is None
    lib.close()


def test_sweep_cli_errors(small_copy, monkeypatch, cli):
    monkeypatch.setenv("CURATOR_DB", str(small_copy))
    assert "no split build named 'nope'" in error(cli("sweep", "--splits", "nope", "--lr", "1e-3", "--model",
                                                      "test_resnet", "--epochs", "1", "--workers", "0"))
    bad = cli("sweep", "--splits", "min10", "--lr", "fast")
    assert bad.exit_code == 2 and "give numbers separated by commas" in bad.output


def test_a_run_stopped_before_its_first_epoch_trains_afresh(small_copy):
    """Killed or stopped before a first epoch ended, a sweep run has nothing to resume: the next
    sweep trains it again under its own name instead of failing on the missing last.pt."""
    lib = open_library(small_copy)
    base = train.TrainConfig(**TINY, epochs=2, patience=50)
    stopped = sweep.sweep(lib, "min10", base, lrs=[1e-3], should_stop=lambda: True)
    name = stopped["settings"][0]["run"]
    assert runs.summary(lib, name)["status"] != "done" and not runs.epochs(lib, name)
    result = sweep.sweep(lib, "min10", base, lrs=[1e-3])
    assert [s["status"] for s in result["settings"]] == ["done"]
    assert [r["epoch"] for r in runs.epochs(lib, name)] == [1, 2]
    lib.close()
