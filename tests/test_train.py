"""`curator train`, warm starts, resume, runs, promote, review and evaluate on sample_data.

Tiny timm models (`test_resnet`) at 32 pixels for a few epochs: the point is the plumbing
(checkpoints, heads, curves, resume, DDP), not accuracy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from sqlalchemy import select

from conftest import CLI_TINY, TINY, as_json, error
from curator import checkpoints, evaluation, predict, runs, splits, train
from curator.library import open_library
from curator.errors import ConflictingOptions, InvalidInput
from curator.library.models import Prediction, Run, RunEpoch

CURATOR = [sys.executable, "-m", "curator"]


def test_checkpoint_describes_itself_and_rebuilds_the_model(trained):
    run = runs.summary(trained, "parent")
    ckpt = checkpoints.load(run["checkpoint"])
    build_classes = splits.show(trained, "min40")["classes"]
    assert ckpt["format"] == checkpoints.FORMAT
    assert ckpt["model"] == "test_resnet" and ckpt["classes"] == build_classes
    assert ckpt["data_config"]["input_size"] == [3, 32, 32]
    assert ckpt["build"] == "min40" and ckpt["run"] == "parent" and ckpt["parent"] is None
    assert ckpt["epoch"] == run["best_epoch"] and ckpt["metrics"]["val_acc"] == pytest.approx(run["best_val_acc"])
    assert ckpt["config"] == run["params"] and ckpt["config"]["model"] == "test_resnet"  # the training options
    model = checkpoints.build_model(ckpt)  # from the file alone
    assert model.get_classifier().out_features == len(build_classes)


def test_every_epoch_is_recorded(trained):
    rows = runs.epochs(trained, "parent")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert r["train_loss"] > 0 and 0 <= r["train_acc"] <= 1 and 0 <= r["val_acc"] <= 1
        assert r["lr"] > 0 and r["seconds"] > 0 and r["images_per_s"] > 0
    run = runs.summary(trained, "parent")
    assert run["status"] == "done" and run["epochs"] == 3 and run["throwaway"]
    assert run["params"]["augment"] and run["params"]["rotate"] == 10.0 and run["params"]["zoom"] == 0.1


def test_warm_start_keeps_every_weight_but_the_head(trained):
    parent = checkpoints.load(runs.summary(trained, "parent")["checkpoint"])
    new_classes = splits.show(trained, "real35")["classes"]
    old = set(parent["classes"])
    assert set(new_classes) - old == {"animal-bird", "person"} and old - set(new_classes) == {"sky-weather"}
    model = train.create_model(train.TrainConfig(**TINY), len(new_classes), parent)
    head = model.get_classifier()
    assert head.out_features == len(new_classes)
    head_keys = {k for k in model.state_dict() if k.startswith("fc.")}
    assert head_keys == {"fc.weight", "fc.bias"}
    for key, value in model.state_dict().items():
        if key not in head_keys:
            assert torch.equal(value, parent["state_dict"][key]), key
    child = runs.summary(trained, "child")
    assert child["parent"] == "parent" and child["model"] == "test_resnet"
    assert child["classes"] == new_classes
    assert (child["params"]["lr"], child["params"]["head_epochs"]) == (train.WARM_LR, train.WARM_HEAD_EPOCHS)
    assert (runs.summary(trained, "parent")["params"]["lr"], runs.summary(trained, "parent")["params"]["head_epochs"]) == (1e-3, 0)
    assert checkpoints.load(child["checkpoint"])["parent"] == "parent"


def test_head_epochs_train_only_the_new_head(trained_copy):
    lib = open_library(trained_copy)
    parent = checkpoints.load(runs.summary(lib, "parent")["checkpoint"])
    cfg = train.TrainConfig(**{**TINY, "model": None}, epochs=1, head_epochs=1)
    run = train.train(lib, "real35", cfg, name="probe", warm_start="parent")
    after = checkpoints.build_model(checkpoints.load(Path(run["folder"]) / "last.pt"))
    for key, value in after.named_parameters():  # parameters only: BatchNorm statistics still adapt
        if not key.startswith("fc."):
            assert torch.equal(value.detach(), parent["state_dict"][key]), key
    lib.close()


def test_a_warm_start_keeps_the_parents_model(trained_copy, cli):
    r = cli("train", "--db", trained_copy, "--splits", "real35", "--warm-start", "parent", "--model", "resnet18")
    assert error(r) == ("Error: --model resnet18 differs from parent's test_resnet: a warm start keeps the"
                        " parent's model (leave out --model)")


def test_a_warm_start_fine_tunes_by_default():
    scratch = train.with_defaults(train.TrainConfig(), warm=False)
    assert (scratch.model, scratch.epochs, scratch.lr, scratch.head_epochs) == ("resnet18", train.EPOCHS, train.LR, 0)
    warm = train.with_defaults(train.TrainConfig(), warm=True)
    assert (warm.model, warm.lr, warm.head_epochs) == (None, train.WARM_LR, train.WARM_HEAD_EPOCHS)
    assert train.WARM_LR < train.LR
    given = train.TrainConfig(model="resnet50", epochs=7, lr=0.01, head_epochs=0)
    assert train.with_defaults(given, warm=True) == given and train.with_defaults(given, warm=False) == given
    assert train.TrainConfig().lr is None  # the caller's config is left alone


def test_cli_warm_start_runs_the_fine_tuning_schedule(trained_copy, cli):
    r = cli("train", "--db", trained_copy, "--splits", "real35", "--warm-start", "parent", "--epochs", "2",
            *CLI_TINY[2:], "--no-score", "--name", "fine")
    assert r.exit_code == 0, r.output
    assert "epoch   1/2" in r.output and "epoch   2/2" in r.output
    lib = open_library(trained_copy)
    params = runs.summary(lib, "fine")["params"]
    assert (params["model"], params["lr"], params["head_epochs"]) == ("test_resnet", train.WARM_LR, train.WARM_HEAD_EPOCHS)
    lib.close()


def test_predictions_are_stored_once_with_embeddings(trained):
    again = predict.score(trained, "parent")
    assert again.scored == 0 and again.already == again.asked > 0
    run_id = runs.summary(trained, "parent")["id"]
    with trained.session() as s:
        rows = s.scalars(select(Prediction).where(Prediction.run_id == run_id)).all()
    parent_rows = [r for r in rows if r.error is None]
    assert parent_rows
    r = parent_rows[0]
    top = json.loads(r.top_k)
    assert len(top) == 5 and top[0] == [r.predicted, r.confidence]
    assert all(a[1] >= b[1] for a, b in zip(top, top[1:]))
    assert len(r.embedding) % 2 == 0 and len(r.embedding) > 0


def test_review_lists_wrong_and_unsure_images(trained):
    rows = evaluation.review(trained, "parent", max_confidence=0.99)
    assert rows
    assert {r["problem"] for r in rows} <= {"wrong", "low confidence", "unreadable"}
    for r in rows:
        assert (r["predicted"] != r["label"]) == (r["problem"] == "wrong")
    kinds = [r["problem"] for r in rows]
    assert kinds == sorted(kinds, key=["wrong", "unreadable", "low confidence"].index)
    only_val = evaluation.review(trained, "parent", max_confidence=0.99, split="val")
    assert only_val and {r["split"] for r in only_val} == {"val"}


def test_evaluate_compares_with_the_parent(trained):
    result = evaluation.evaluate(trained, "child", "all")
    assert set(result) == {"val", "test"}  # no benchmark images in sample_data
    test = result["test"]
    m = test["metrics"]
    assert m["n"] > 0 and 0 <= m["accuracy"] <= 1 and "baseline" in m and len(m["per_class"]) == 6
    comp = test["comparisons"]["parent"]
    assert comp["run"] == "parent"
    assert set(comp["only_current"]) == {"animal-bird", "person"}
    assert set(comp["only_other"]) == {"sky-weather"}


def test_cli_train_runs_review_evaluate_promote(trained_copy, tmp_path):
    env = {**os.environ, "CURATOR_DB": str(trained_copy)}

    def run(*args, check=True):
        p = subprocess.run(CURATOR + [str(a) for a in args], env=env, capture_output=True, text=True, timeout=300)
        if check:
            assert p.returncode == 0, p.stderr
        return p

    out = run("train", "--splits", "min40", *CLI_TINY, "--epochs", "2", "--name", "cli-run").stdout
    assert "epoch   1/2" in out and "epoch   2/2" in out
    assert "Run cli-run: test_resnet on min40" in out and "images to review" in out
    listing = json.loads(run("runs", "--json").stdout)
    assert [r["name"] for r in listing] == ["parent", "child", "cli-run"]
    shown = run("runs", "show", "cli-run", "--png", tmp_path / "c.png").stdout
    assert "Diagnosis: " in shown and (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert "images to review." in run("review", "cli-run", "--limit", "3").stdout
    ev = json.loads(run("evaluate", "cli-run", "--split", "val", "--json").stdout)
    assert set(ev) == {"val"}
    refused = run("runs", "promote", "parent", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("Error: run parent is a throw-away run and never goes to production:"
                                      " train one without --throwaway (e.g. --warm-start parent)")
    assert "cli-run is now the production run." in run("runs", "promote", "cli-run").stdout
    assert [r["name"] for r in json.loads(run("runs", "--json").stdout) if r["production"]] == ["cli-run"]
    ev = json.loads(run("evaluate", "child", "--split", "test", "--json").stdout)
    assert ev["test"]["comparisons"]["production"]["run"] == "cli-run"


@pytest.mark.parametrize("args, message", [
    (["--splits", "nope"], "Error: no split build named 'nope' (builds: min40, real35); make one with `curator build-splits`"),
    (["--splits", "min40", "--model", "no_such_net"], "Error: unknown timm model 'no_such_net': see timm.list_models()"),
    (["--splits", "min40", "--weights", "missing.pth"], "Error: no weights file at missing.pth"),
    (["--splits", "min40", "--warm-start", "ghost"], "Error: no run named 'ghost': see `curator runs`"),
    (["--resume", "ghost"], "Error: no run named 'ghost': see `curator runs`"),
    (["--resume", "parent"], "Error: run parent already finished (3 epochs): train a new one, e.g. `curator train --splits min40 --warm-start parent`"),
    ([], "Error: give the split build to train on, e.g. --splits min40"),
    (["--splits", "min40", "--pretrained", "--weights", "w.pth"],
     "Error: --pretrained and --weights both choose the starting weights: give one"),
    (["--splits", "min40", "--warm-start", "parent", "--weights", "w.pth"],
     "Error: --warm-start starts from a run's weights: leave out --pretrained/--weights"),
])
def test_train_errors_are_one_line(trained_copy, cli, args, message):
    before = as_json(cli("runs", "--all", "--json", "--db", trained_copy))
    assert error(cli("train", "--db", trained_copy, *args)) == message
    assert as_json(cli("runs", "--all", "--json", "--db", trained_copy)) == before  # no run left behind


def test_local_weights_file_loads_offline_with_a_new_head(trained, tmp_path):
    import timm
    from safetensors.torch import save_file

    source = timm.create_model("test_resnet", num_classes=11)
    path = tmp_path / "w.safetensors"
    save_file(source.state_dict(), str(path))
    model = train.create_model(train.TrainConfig(model="test_resnet", weights=str(path)), 4)
    assert model.get_classifier().out_features == 4
    assert torch.equal(model.state_dict()["conv1.0.weight"], source.state_dict()["conv1.0.weight"])


@pytest.mark.parametrize("options, parent, message", [
    (dict(pretrained=True, weights="w.pth"), None, "--pretrained and --weights both choose the starting weights: give one"),
    (dict(pretrained=True), {}, "--warm-start starts from a run's weights: leave out --pretrained/--weights"),
    (dict(weights="w.pth"), {}, "--warm-start starts from a run's weights: leave out --pretrained/--weights"),
])
def test_a_model_has_one_start(options, parent, message):
    """create_model refuses two starts rather than quietly picking one."""
    with pytest.raises(ConflictingOptions) as e:
        train.create_model(train.TrainConfig(model="test_resnet", **options), 4, parent)
    assert str(e.value) == message


def _wait_for_epochs(db: Path, run_name: str, n: int, proc, timeout=240) -> None:
    lib = open_library(db)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert proc.poll() is None, proc.communicate()
            try:
                if len(runs.epochs(lib, run_name)) >= n:
                    return
            except Exception:  # the run row may not exist yet
                pass
            time.sleep(0.2)
        raise AssertionError("training did not reach epoch %d" % n)
    finally:
        lib.close()


@pytest.mark.parametrize("sig, code", [(signal.SIGKILL, -9), (signal.SIGINT, 130)])
def test_interrupted_training_resumes(trained_copy, sig, code):
    env = {**os.environ, "CURATOR_DB": str(trained_copy)}
    cmd = CURATOR + ["train", "--splits", "min40", *CLI_TINY, "--epochs", "6", "--patience", "50",
                     "--name", "long", "--no-score"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_epochs(trained_copy, "long", 2, proc)
    proc.send_signal(sig)
    proc.communicate(timeout=120)
    assert proc.returncode == code
    lib = open_library(trained_copy)
    done = len(runs.epochs(lib, "long"))
    assert 2 <= done < 6
    assert runs.summary(lib, "long")["status"] == ("interrupted" if sig == signal.SIGINT else "running")
    p = subprocess.run(CURATOR + ["train", "--resume", "long", "--no-score"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    # Each epoch shows the run's own length, not --epochs' default. (After a kill -9, last.pt
    # may hold an epoch whose row was not committed: resume puts it back and starts after it.)
    shown = [line for line in p.stdout.splitlines() if line.startswith("epoch ")]
    assert shown and all(line.split()[1].endswith("/6") for line in shown) and shown[-1].startswith("epoch   6/6")
    result = runs.summary(lib, "long")
    assert result["status"] == "done" and result["epochs"] == 6
    assert [r["epoch"] for r in runs.epochs(lib, "long")] == [1, 2, 3, 4, 5, 6]
    lib.close()


def test_a_kill_between_checkpoint_and_epoch_row_loses_no_epoch(trained_copy):
    """last.pt is written before its epoch row commits; a kill in between must not leave a
    hole in the curves when the run resumes from that checkpoint."""
    lib = open_library(trained_copy)
    seen = []
    train.train(lib, "min40", train.TrainConfig(epochs=4, patience=50, **TINY), name="gap",
                on_epoch=seen.append, should_stop=lambda: len(seen) >= 3)
    with lib.session() as s:  # as if killed before epoch 3's row was committed
        s.execute(RunEpoch.__table__.delete().where(RunEpoch.epoch == 3,
                                                    RunEpoch.run_id == runs.summary(lib, "gap")["id"]))
    assert [r["epoch"] for r in runs.epochs(lib, "gap")] == [1, 2]
    result = train.resume(lib, "gap")
    assert result["status"] == "done"
    assert [r["epoch"] for r in runs.epochs(lib, "gap")] == [1, 2, 3, 4]
    lib.close()


def test_resume_takes_the_options_from_last_pt_when_the_run_row_lacks_them(trained_copy):
    """The checkpoint carries the training options: `train --resume` needs only the file."""
    lib = open_library(trained_copy)
    seen, started = [], []
    train.train(lib, "min40", train.TrainConfig(epochs=3, patience=50, lr=2e-3, **TINY), name="from-file",
                on_epoch=seen.append, should_stop=lambda: len(seen) >= 1)
    last = Path(runs.summary(lib, "from-file")["checkpoint"]).with_name("last.pt")
    options = checkpoints.load(last)["config"]
    assert (options["epochs"], options["lr"], options["model"]) == (3, 2e-3, "test_resnet")
    with lib.session() as s:  # as a run row written without its options
        s.execute(Run.__table__.update().where(Run.name == "from-file").values(params="{}"))
    result = train.resume(lib, "from-file", on_start=lambda name, cfg: started.append(cfg))
    assert started == [options]  # not TrainConfig's defaults (60 epochs, resnet18)
    assert (result["status"], result["epochs"]) == ("done", 3)
    assert [r["epoch"] for r in runs.epochs(lib, "from-file")] == [1, 2, 3]


def test_resume_from_a_last_pt_older_than_the_lowest_loss_rule(trained_copy):
    """A last.pt saved before early stopping also followed the validation loss has no
    ``lowest_loss``: resuming takes its best loss as the lowest known and goes on."""
    lib = open_library(trained_copy)
    seen = []
    train.train(lib, "min40", train.TrainConfig(epochs=2, patience=50, **TINY), name="older",
                on_epoch=seen.append, should_stop=lambda: len(seen) >= 1)
    last = Path(runs.summary(lib, "older")["checkpoint"]).with_name("last.pt")
    state = checkpoints.load(last)
    assert set(state["progress"]) == {"best_acc", "best_loss", "best_epoch", "bad_epochs", "lowest_loss"}
    del state["progress"]["lowest_loss"]
    checkpoints.save(state, last)
    assert train.resume(lib, "older")["status"] == "done"
    assert [r["epoch"] for r in runs.epochs(lib, "older")] == [1, 2]
    lib.close()


def test_cli_resume_sizes_the_epochs_from_the_checkpoints_options(trained_copy, cli):
    """`train --resume` shows each epoch out of the run's own length, read from last.pt when the
    run row lacks its options (it once looked them up in the row: KeyError)."""
    lib = open_library(trained_copy)
    seen = []
    train.train(lib, "min40", train.TrainConfig(epochs=3, patience=50, **TINY), name="file-only",
                on_epoch=seen.append, should_stop=lambda: len(seen) >= 1)
    with lib.session() as s:
        s.execute(Run.__table__.update().where(Run.name == "file-only").values(params="{}"))
    lib.close()
    r = cli("train", "--db", trained_copy, "--resume", "file-only", "--no-score")
    assert r.exit_code == 0, r.output
    assert [line.split()[1] for line in r.stdout.splitlines() if line.startswith("epoch ")] == ["2/3", "3/3"]


def test_resume_without_stored_options_says_so(trained_copy):
    lib = open_library(trained_copy)
    seen = []
    train.train(lib, "min40", train.TrainConfig(epochs=3, patience=50, **TINY), name="bare",
                on_epoch=seen.append, should_stop=lambda: len(seen) >= 1)
    last = Path(runs.summary(lib, "bare")["checkpoint"]).with_name("last.pt")
    checkpoints.save({k: v for k, v in checkpoints.load(last).items() if k != "config"}, last)  # an older file
    with lib.session() as s:
        s.execute(Run.__table__.update().where(Run.name == "bare").values(params="{}"))
    with pytest.raises(InvalidInput) as e:
        train.resume(lib, "bare")
    assert str(e.value) == "run bare has no stored options, nor has its last.pt: start it again with `curator train`"


def test_torchrun_trains_with_two_processes_on_cpu(trained_copy):
    env = {**os.environ, "CURATOR_DB": str(trained_copy), "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nproc-per-node", "2", "--master-port", "29517", "-m", "curator", "train",
           "--splits", "min40", *CLI_TINY, "--epochs", "2", "--name", "ddp", "--no-score", "--json"]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    lib = open_library(trained_copy)
    run = runs.summary(lib, "ddp")
    assert run["status"] == "done" and run["world_size"] == 2 and run["epochs"] == 2
    with lib.session() as s:
        assert len(s.scalars(select(RunEpoch).where(RunEpoch.run_id == run["id"])).all()) == 2
    assert checkpoints.load(run["checkpoint"])["classes"] == splits.show(lib, "min40")["classes"]
    lib.close()


def test_a_last_batch_of_one_image_is_left_out():
    """BatchNorm cannot train on one image: an epoch one image over a multiple of the batch size
    leaves one out (a different one each epoch; every rank the same count) instead of failing."""
    from curator.data import shard

    assert len(shard(65, seed=0, epoch=0, batch_size=64)) == 64
    assert shard(65, seed=0, epoch=0, batch_size=64) != shard(65, seed=0, epoch=1, batch_size=64)
    assert len(shard(64, seed=0, epoch=0, batch_size=64)) == 64 and len(shard(66, seed=0, epoch=0, batch_size=64)) == 66
    assert len(shard(1, seed=0, epoch=0, batch_size=64)) == 1  # one image is all there is
    ranks = [shard(130, seed=0, epoch=0, rank=r, world=2, batch_size=32) for r in (0, 1)]  # 65 each
    assert [len(r) for r in ranks] == [64, 64]


def test_training_with_a_lone_last_image_finishes(small_copy):
    lib = open_library(small_copy)
    n = len(train.split_examples(lib, "min10", "train", 32, workers=0).paths)
    run = train.train(lib, "min10", train.TrainConfig(**{**TINY, "batch_size": n - 1}, epochs=1), name="lone")
    assert run["status"] == "done" and runs.epochs(lib, "lone")[0]["train_loss"] is not None
    lib.close()
