"""`curator train --final`: an earlier run's options on train + val together, for the epochs it
needed, evaluated once on test; its validation numbers are said not to be held out."""

from __future__ import annotations

import pytest

from conftest import TINY, as_json, error
from curator import runs, train
from curator.library import open_library


def test_the_final_fit_trains_on_train_and_val_together(small_copy):
    lib = open_library(small_copy)
    cfg = train.TrainConfig(**TINY)
    plain = train._examples(lib, "min10", cfg)
    final = train._examples(lib, "min10", train.TrainConfig(**TINY, final=True))
    assert len(final[0].paths) == len(plain[0].paths) + len(plain[1].paths)
    assert set(final[0].paths) == set(plain[0].paths) | set(plain[1].paths) and final[1].paths == plain[1].paths
    lib.close()


def test_train_final_cli(small_copy, cli, monkeypatch):
    monkeypatch.setenv("CURATOR_DB", str(small_copy))
    lib = open_library(small_copy)
    parent = runs.summary(lib, "parent")
    out = as_json(cli("train", "--final", "--splits", "min10", "--json"))
    assert out["source"] == "parent" and out["build"] == "min10" and out["held_out_val"] is False
    assert out["epochs"] == parent["best_epoch"] and "the epochs parent needed" in out["epochs_from"]
    assert out["params"]["final"] is True and out["params"]["epochs"] == parent["best_epoch"]
    assert out["name"] == "parent-final" and out["status"] == "done" and out["best_epoch"] == out["epochs"]
    assert set(out["evaluations"]) == {"test"} and 0 <= out["evaluations"]["test"]["metrics"]["accuracy"] <= 1
    assert any(n.startswith("benchmark: ") for n in out["notes"])  # sample_data has no benchmark images
    assert as_json(cli("runs", "show", "parent-final", "--json"))["held_out_val"] is False
    assert as_json(cli("runs", "show", "parent", "--json"))["held_out_val"] is True
    text = cli("train", "--final", "--from", "parent", "--epochs", "1", "--name", "f1")
    assert text.exit_code == 0, text.output
    assert "Final fit of parent's options on min10's train + val: --epochs 1." in text.stdout
    assert "its validation numbers are not held out" in text.stdout and "test: accuracy" in text.stdout
    # A warm-started source warm-starts the final fit from its parent.
    child = as_json(cli("train", "--final", "--from", "child", "--epochs", "1", "--json"))
    assert child["parent"] == "parent" and child["build"] == "real8"
    lib.close()


@pytest.mark.parametrize("args, message", [
    (["--from", "parent-final"], "run parent-final is a final fit: name the run whose options it took"),
    (["--from", "nope"], "no run named 'nope'"),
    (["--splits", "nope"], "no split build named 'nope'"),
])
def test_train_final_errors(small_copy, cli, monkeypatch, args, message):
    monkeypatch.setenv("CURATOR_DB", str(small_copy))
    assert cli("train", "--final", "--splits", "min10", "--epochs", "1", "--json").exit_code == 0
    assert message in error(cli("train", "--final", "--epochs", "1", *args))


def test_no_run_to_take_options_from(library, cli):
    assert "no finished run to take options from" in error(cli("train", "--final"))
