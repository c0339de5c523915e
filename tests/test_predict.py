"""`curator bulk-identify`: a trained run over the pools, stored once, resumable, bad images skipped."""

from __future__ import annotations

import json
import shutil

import pytest
from sqlalchemy import func, select

from conftest import SAMPLE, error
from curator import ingest, predict, runs
from curator.library import open_library
from curator.library.models import Image, Prediction


@pytest.fixture
def pooled(trained_copy):
    """The trained library with sample_data's unlabelled pool imported."""
    lib = open_library(trained_copy)
    ingest.import_paths(lib, [SAMPLE / "pool"])
    yield lib
    lib.close()


def _stored(lib, run: str) -> dict[int, Prediction]:
    run_id = runs.summary(lib, run)["id"]
    with lib.session() as s:
        return {p.image_id: p for p in s.scalars(select(Prediction).where(Prediction.run_id == run_id))}


def test_the_unlabelled_pool_is_predicted_once(pooled):
    pool = predict.pool_ids(pooled, "unlabelled")
    assert len(pool) > 100
    first = predict.bulk_identify(pooled, "child", "unlabelled", workers=0)
    assert first.scored == len(pool) and first.already == 0 and not first.errors
    assert sum(first.by_class.values()) == len(pool)
    classes = runs.summary(pooled, "child")["classes"]
    stored = _stored(pooled, "child")
    assert set(pool) <= set(stored)
    for image_id in pool:
        top = json.loads(stored[image_id].top_k)
        assert len(top) == 5 and {c for c, _ in top} <= set(classes)
        assert top[0] == [stored[image_id].predicted, stored[image_id].confidence]
        assert stored[image_id].embedding
    again = predict.bulk_identify(pooled, "child", "unlabelled", workers=0)
    assert again.scored == 0 and again.already == len(pool)


def test_limit_and_a_stopped_run_resume_where_they_left_off(pooled):
    pool = predict.pool_ids(pooled, "unlabelled")
    part = predict.bulk_identify(pooled, "child", limit=10, workers=0)
    assert part.scored == 10
    batches = []
    stopped = predict.bulk_identify(pooled, "child", batch_size=16, workers=0,
                                    should_stop=lambda: batches.append(1) or len(batches) >= 2)
    assert stopped.interrupted and stopped.scored == 32
    rest = predict.bulk_identify(pooled, "child", workers=0)
    assert rest.already == 42 and rest.scored == len(pool) - 42
    assert len([i for i in _stored(pooled, "child") if i in set(pool)]) == len(pool)


def test_unreadable_images_are_recorded_and_missing_ones_counted(pooled, tmp_path):
    moved = tmp_path / "moved"
    with pooled.session() as s:
        images = s.scalars(select(Image).where(Image.label_state == "unlabelled").order_by(Image.id).limit(3)).all()
        gone, broken, found = images
        shutil.copy(broken.path, moved)
        gone.path = gone.locations[0].path = str(tmp_path / "nowhere.png")
        broken.path = broken.locations[0].path = str(moved)
        found.path = str(tmp_path / "old-place.png")  # its location is still there: read from it
    moved.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    summary = predict.bulk_identify(pooled, "child", workers=0)
    assert [e["image_id"] for e in summary.errors] == [broken.id]
    assert summary.errors[0]["error"] == "unreadable: not an image: no image format recognises this file"
    assert summary.missing == 1 and summary.scored == len(predict.pool_ids(pooled, "unlabelled")) - 2
    stored = _stored(pooled, "child")
    assert gone.id not in stored and stored[found.id].predicted  # predicted once it is found again
    assert stored[broken.id].predicted is None and stored[broken.id].error == summary.errors[0]["error"]


@pytest.mark.parametrize("pool", ["unknown", "labelled", "rejected", "all"])
def test_each_pool_is_what_it_says(pooled, pool):
    with pooled.session() as s:
        expected = {
            "unknown": s.scalar(select(func.count()).where(Image.label_state == "unknown", Image.status == "active")),
            "labelled": s.scalar(select(func.count()).where(Image.label_state == "labelled", Image.status == "active")),
            "rejected": s.scalar(select(func.count()).where(Image.status == "rejected")),
            "all": s.scalar(select(func.count()).select_from(Image)),
        }[pool]
    assert len(predict.pool_ids(pooled, pool)) == expected


def test_cli_bulk_identify(pooled, cli, trained_copy):
    r = cli("bulk-identify", "--db", trained_copy, "--run", "child", "--workers", "0")
    assert r.exit_code == 0, r.output
    n = len(predict.pool_ids(pooled, "unlabelled"))
    assert r.stdout.startswith(f"Predicted {n} images of the unlabelled pool with child in ")
    assert "Top-1 classes: " in r.stdout
    again = json.loads(cli("bulk-identify", "--db", trained_copy, "--run", "child", "--json").stdout)
    assert again["scored"] == 0 and again["already"] == n and again["pool"] == "unlabelled"
    assert error(cli("bulk-identify", "--db", trained_copy, "--run", "nope")) == "Error: no run named 'nope': see `curator runs`"
    assert error(cli("bulk-identify", "--db", trained_copy, "--run", "production")) == (
        "Error: no production run yet: `curator runs promote RUN`")
    bad = cli("bulk-identify", "--db", trained_copy, "--pool", "sideways")
    assert bad.exit_code == 2 and "'sideways' is not one of unlabelled, unknown, rejected, labelled, all" in bad.stderr


def test_a_killed_bulk_identify_loses_at_most_a_batch_and_a_rerun_finishes(pooled, trained_copy):
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "CURATOR_DB": str(trained_copy)}
    cmd = [sys.executable, "-m", "curator", "bulk-identify", "--run", "child", "--batch-size", "1", "--workers", "0"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    n = len(predict.pool_ids(pooled, "unlabelled"))
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        done = len(set(_stored(pooled, "child")) & set(predict.pool_ids(pooled, "unlabelled")))
        if done >= 5:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    before = len(set(_stored(pooled, "child")) & set(predict.pool_ids(pooled, "unlabelled")))
    assert 5 <= before < n, "the run ended before it could be killed"
    rest = predict.bulk_identify(pooled, "child", workers=0)
    assert rest.already == before and rest.scored == n - before



def test_already_predicted_is_asked_a_chunk_of_ids_at_a_time(pooled, monkeypatch):
    pool = predict.pool_ids(pooled, "unlabelled")
    predict.bulk_identify(pooled, "child", limit=10, workers=0)  # the pool's first 10, by id
    monkeypatch.setattr(predict, "CHUNK", 7)
    ids = [*reversed(pool), pool[0]]
    with pooled.session() as s:
        left = predict._not_predicted(s, runs.summary(pooled, "child")["id"], ids)
    assert left == list(reversed(pool[10:]))  # in the order given, once each
    summary = predict.score(pooled, "child", ids, workers=0, limit=3)
    assert (summary.asked, summary.already, summary.scored) == (len(ids), 11, 3)
    assert set(_stored(pooled, "child")) & set(pool) == set(pool[:10]) | set(pool[-3:])  # the last 3 given first


def test_two_jobs_on_one_run_write_each_prediction_once(pooled, monkeypatch):
    # Two bulk-identify jobs (not one torchrun) each read what was left before the other wrote:
    # the second one's rows are the same facts again, skipped, not an IntegrityError.
    pool = predict.pool_ids(pooled, "unlabelled")[:20]
    first = predict.score(pooled, "child", pool, workers=0)
    monkeypatch.setattr(predict, "_not_predicted", lambda s, run_id, ids: list(ids))  # read too early
    second = predict.score(pooled, "child", pool, workers=0)
    assert first.scored == second.scored == len(pool)
    assert set(_stored(pooled, "child")) >= set(pool)
    run_id = runs.summary(pooled, "child")["id"]
    with pooled.session() as s:
        counted = s.scalar(select(func.count()).select_from(Prediction).where(
            Prediction.run_id == run_id, Prediction.image_id.in_(pool)))
    assert counted == len(pool)
