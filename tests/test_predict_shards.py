"""`torchrun --nproc-per-node 2 -m curator bulk-identify` on CPU (gloo): each process predicts
its own share of the pool, every image exactly once; after one process is killed, a re-run
finishes what any share left, again once each. On the test's backend (SQLite, or the
PostgreSQL test database with CURATOR_TEST_BACKEND=postgresql)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from curator import predict, runs
from curator.library.models import Prediction
from postgres import free_port
from test_predict import pooled  # noqa: F401  (the trained library with sample_data's pool)

TORCHRUN = str(Path(sys.executable).with_name("torchrun"))


def _torchrun(db: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "CURATOR_DB": db, "OMP_NUM_THREADS": "1"}
    # `--` ends torchrun's options: else it takes --run for an abbreviation of its --run-path
    cmd = [TORCHRUN, "--nproc-per-node", "2", "--master-port", str(free_port()), "-m", "curator", "--",
           "bulk-identify", "--run", "child", "--workers", "0", "--json", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finished(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out)  # rank 0's alone: the other process prints nothing


def _predicted(lib) -> list[int]:
    """Image ids the run ``child`` has a prediction for, one per row (the key allows no second)."""
    run_id = runs.summary(lib, "child")["id"]
    with lib.session() as s:
        return s.scalars(select(Prediction.image_id).where(Prediction.run_id == run_id)).all()


def _pool_done(lib) -> int:
    return len(set(_predicted(lib)) & set(predict.pool_ids(lib, "unlabelled")))


def _worker(parent: int, rank: int) -> int:
    """The pid of the torchrun worker of ``rank`` (a child of ``parent`` whose RANK says so)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            env = dict(v.split("=", 1) for v in (entry / "environ").read_text().split("\0") if "=" in v)
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and env.get("RANK") == str(rank):
            return int(entry.name)
    raise AssertionError(f"no worker of rank {rank} under torchrun {parent}")


def test_two_processes_predict_every_pool_image_once(pooled, trained_copy):
    pool = predict.pool_ids(pooled, "unlabelled")
    before = set(_predicted(pooled))  # the trained fixture scored the build, not the pool
    assert not before & set(pool)
    summary = _finished(_torchrun(trained_copy))
    assert (summary["asked"], summary["already"], summary["scored"]) == (len(pool), 0, len(pool))
    shares = [s["scored"] for s in summary["shards"]]
    assert [s["rank"] for s in summary["shards"]] == [0, 1] and sum(shares) == len(pool)
    assert abs(shares[0] - shares[1]) <= 1  # even shares
    assert sum(summary["by_class"].values()) == len(pool) and not summary["errors"]
    after = _predicted(pooled)
    assert len(after) == len(set(after)) and set(after) - before == set(pool)
    again = _finished(_torchrun(trained_copy))
    assert (again["scored"], again["already"]) == (0, len(pool))


def test_a_rerun_finishes_what_a_killed_process_left(pooled, trained_copy):
    pool = predict.pool_ids(pooled, "unlabelled")
    proc = _torchrun(trained_copy, "--batch-size", "1")
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None and _pool_done(pooled) < 6:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    os.kill(_worker(proc.pid, 1), signal.SIGKILL)
    proc.communicate(timeout=120)
    assert proc.returncode != 0  # torchrun reports the lost process (and stops the other)
    done = _pool_done(pooled)
    assert 6 <= done < len(pool), "the job ended before a process could be killed"
    rest = _finished(_torchrun(trained_copy))
    assert (rest["already"], rest["scored"]) == (done, len(pool) - done)
    assert all(s["scored"] > 0 for s in rest["shards"])  # what was left is shared out again
    after = [i for i in _predicted(pooled) if i in set(pool)]
    assert sorted(after) == pool
    with pooled.session() as s:
        assert s.scalar(select(func.count()).select_from(Prediction).where(Prediction.error.is_not(None))) == 0


@pytest.mark.parametrize("local_rank, gpus, expected", [("0", 2, "cuda:0"), ("1", 2, "cuda:1"), ("3", 2, "cuda:1")])
def test_each_process_takes_its_own_gpu(monkeypatch, local_rank, gpus, expected):
    """No GPU here: torch is told there are ``gpus``; the device object is all that is made."""
    import torch

    from curator.train import Dist

    monkeypatch.setattr(predict, "pick_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setenv("LOCAL_RANK", local_rank)
    assert str(predict._device("auto", Dist(int(local_rank), 4))) == expected
    assert str(predict._device("auto", Dist())) == "cuda"  # one process: pick_device's choice
