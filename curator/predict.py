"""Prediction: a run's model over library images; top-k classes and the embedding, stored per image.

The model is rebuilt from the run's checkpoint alone. Images stream through DataLoader workers
in batches; each batch is written in its own transaction, so a killed run loses at most one
batch and a re-run skips what that run already predicted (found in the database, a chunk of
ids at a time, or for a pool by an anti-join: earlier predictions are never all loaded). Each
image is read from its readable path (``curator.locations``: its first path, else another
location that exists); an image with no file at any path is left out and counted
(``missing``), so it is predicted once it is found again. An unreadable file is stored with
its error and skipped, never fatal.

Under ``torchrun`` (RANK, WORLD_SIZE, LOCAL_RANK; several machines against one PostgreSQL
library work the same) ``bulk_identify`` splits the work: every process reads the images not
predicted yet, they wait for each other (a gloo barrier: no process writes before all have
read), and rank r takes every world-th of them from the r-th on, so the shards are disjoint
and even, also on a re-run that finishes what a killed process left. Each process predicts its
shard on its own device (``cuda:LOCAL_RANK`` when there is a GPU) and writes its own rows; no
gradients, so no NCCL. At the end rank 0 gathers the shards' summaries and alone reports the
total (``ScoreSummary.shards``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from sqlalchemy import exists, func, select

from curator import checkpoints, tallies
from curator.data import loader, normalise
from curator.errors import CuratorError, InvalidInput
from curator.library import Library
from curator.library.inserts import insert_new
from curator.library.models import Image, Prediction, SplitMember, utcnow
from curator.locations import readable_paths
from curator.devices import Dist, pick_device


POOLS = ("unlabelled", "unknown", "rejected", "labelled", "all")
CHUNK = 5000  # ids per "already predicted?" query: drivers cap the parameters of a statement


@dataclass
class ScoreSummary:
    run: str
    asked: int = 0
    already: int = 0
    scored: int = 0
    errors: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    pool: str | None = None
    by_class: dict[str, int] = field(default_factory=dict)  # top-1 of the images scored now
    missing: int = 0  # images with no file at any of their paths: not predicted
    rank: int = 0  # under torchrun: this process's; rank 0's summary is the whole job's
    shards: list[dict] = field(default_factory=list)  # rank 0 under torchrun: each process's part

    @property
    def images_per_second(self) -> float:
        return (self.scored + len(self.errors)) / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return asdict(self) | {"images_per_second": self.images_per_second}


def load_model(lib: Library, ref: str, device: torch.device | None = None):
    """A run's best model, on ``device``, with its checkpoint (classes, data config)."""
    from curator.runs import find_run, run_folder

    with lib.session() as s:
        run = find_run(s, ref)
        path, run_id = run_folder(lib, run) / "best.pt", run.id
    ckpt = checkpoints.load(path)
    model = checkpoints.build_model(ckpt).to(device or pick_device("auto"))
    return model, ckpt, run_id


@torch.inference_mode()
def forward(model, pixels: torch.Tensor, data_config: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities ``(B, K)`` and pre-logit embeddings ``(B, D)`` of a uint8 batch."""
    device = next(model.parameters()).device
    x = normalise(pixels.to(device), data_config["mean"], data_config["std"])
    features = model.forward_features(x)
    embedding = model.forward_head(features, pre_logits=True)
    logits = model.forward_head(features)
    return logits.float().softmax(1).cpu(), embedding.float().flatten(1).cpu()


def build_images(lib: Library, ref: str) -> list[int]:
    """Ids of every image in the run's split build (train, val, test and benchmark)."""
    from curator.runs import find_run

    with lib.session() as s:
        run = find_run(s, ref)
        return list(s.scalars(select(SplitMember.image_id).where(SplitMember.build_id == run.build_id)
                              .order_by(SplitMember.image_id)))


def score(lib: Library, ref: str, image_ids: Sequence[int] | None = None, *, top_k: int = 5,
          batch_size: int = 64, workers: int | None = None, device: str = "auto",
          on_progress: Callable[[int, int], None] | None = None,
          should_stop: Callable[[], bool] = lambda: False, limit: int | None = None) -> ScoreSummary:
    """Predict ``image_ids`` (default: the run's build) with run ``ref`` and store the results.

    Images this run already predicted are skipped, so a re-run finishes an interrupted one.

    Args:
        limit: predict at most this many of the images not predicted yet (and readable).
        on_progress: called with (done, total) after each batch.
        should_stop: polled after each batch (which is saved first).
    """
    ids = build_images(lib, ref) if image_ids is None else list(image_ids)
    return _predict(lib, ref, lambda s, run_id: (len(ids), _not_predicted(s, run_id, ids)), Dist(),
                    top_k=top_k, batch_size=batch_size, workers=workers, device=device,
                    on_progress=on_progress, should_stop=should_stop, limit=limit)


def _predict(lib: Library, ref: str, todo: Callable, dist: Dist, *, top_k: int = 5, batch_size: int = 64,
             workers: int | None = None, device: str = "auto", on_progress=None,
             should_stop: Callable[[], bool] = lambda: False, limit: int | None = None) -> ScoreSummary:
    """Predict this process's shard of what ``todo(session, run_id)`` gives: (asked, not predicted)."""
    import time

    t0 = time.perf_counter()
    model, ckpt, run_id = load_model(lib, ref, _device(device, dist))
    summary = ScoreSummary(run=ckpt["run"], rank=dist.rank)
    with lib.session() as s:
        summary.asked, ids = todo(s, run_id)
    summary.already = summary.asked - len(ids)
    if dist.world > 1:
        _group().barrier()  # every process has read what is left before any writes
    with lib.session() as s:
        paths, missing = readable_paths(s, ids[dist.rank::dist.world])
    summary.missing = len(missing)
    share = None if limit is None else limit // dist.world + (dist.rank < limit % dist.world)
    ids = [i for i in ids[dist.rank::dist.world] if i in paths][:share]
    classes, size = ckpt["classes"], ckpt["data_config"]["input_size"][-1]
    k, start = min(top_k, len(classes)), 0
    for px, ok in loader([paths[i] for i in ids], size, batch_size=batch_size, workers=workers):
        batch_ids = ids[start:start + len(px)]
        start += len(px)
        probs, emb = forward(model, px, ckpt["data_config"])
        rows = _rows(run_id, batch_ids, ok, probs, emb, classes, k, paths)
        with lib.session() as s:
            insert_new(s, Prediction, rows)  # a second job on the same run may have written some
        _count(summary, rows, paths)
        if on_progress:
            on_progress(start, len(ids))
        if should_stop():
            summary.interrupted = start < len(ids)
            break
    tallies.settle_library(lib, at=tallies.WRITER_SETTLE_AT)
    summary.seconds = time.perf_counter() - t0
    return _gathered(summary, dist)


def _count(summary: ScoreSummary, rows: list[dict], paths: dict[int, str]) -> None:
    summary.scored += sum(1 for r in rows if r["error"] is None)
    for r in rows:
        if r["predicted"]:
            summary.by_class[r["predicted"]] = summary.by_class.get(r["predicted"], 0) + 1
    summary.errors += [{"image_id": r["image_id"], "path": paths[r["image_id"]], "error": r["error"]}
                       for r in rows if r["error"]]


def _not_predicted(s, run_id: int, ids: Sequence[int]) -> list[int]:
    """``ids`` (in order, once each) that run ``run_id`` has not predicted, asked a chunk at a time."""
    ids = list(dict.fromkeys(ids))
    left = []
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i:i + CHUNK]
        done = set(s.scalars(select(Prediction.image_id).where(Prediction.run_id == run_id,
                                                                Prediction.image_id.in_(chunk))))
        left += [j for j in chunk if j not in done]
    return left


def pool_where(pool: str) -> list:
    """The conditions on ``Image`` that pick a pool's images."""
    from curator.library.models import ACTIVE, LABELLED, REJECTED, UNKNOWN, UNLABELLED

    where = {
        "unlabelled": [Image.status == ACTIVE, Image.label_state == UNLABELLED],
        "unknown": [Image.status == ACTIVE, Image.label_state == UNKNOWN],
        "labelled": [Image.status == ACTIVE, Image.label_state == LABELLED],
        "rejected": [Image.status == REJECTED],
        "all": [],
    }
    if pool not in where:
        raise InvalidInput(f"unknown pool {pool!r}: use one of {', '.join(POOLS)}")
    return where[pool]


def pool_ids(lib: Library, pool: str = "unlabelled") -> list[int]:
    """Ids of the images in a pool: unlabelled, unknown, rejected, labelled (active) or all."""
    where = pool_where(pool)
    with lib.session() as s:
        return list(s.scalars(select(Image.id).where(*where).order_by(Image.id)))


def bulk_identify(lib: Library, run: str = "latest", pool: str = "unlabelled", *, dist: Dist | None = None,
                  **options) -> ScoreSummary:
    """Predict every image of ``pool`` with ``run`` (see ``score`` for the options), resumable.

    Under torchrun each process predicts its shard (see the module's docstring); ``dist``
    (default: from the environment, rank 0 of 1 without torchrun) says which.

    Raises:
        CuratorError: another process of the job stopped before the end (run it again).
    """
    where = pool_where(pool)

    def todo(s, run_id: int) -> tuple[int, list[int]]:
        asked = s.scalar(select(func.count()).select_from(Image).where(*where))
        done = exists().where(Prediction.run_id == run_id, Prediction.image_id == Image.id)
        return asked, list(s.scalars(select(Image.id).where(*where, ~done).order_by(Image.id)))

    dist = dist or Dist.from_env()
    try:
        summary = _predict(lib, run, todo, dist, **options)
    finally:
        _leave_group()
    summary.pool = pool
    return summary


# -- a torchrun job: devices, the barrier and the summaries -------------------------------------


def _device(name: str, dist: Dist) -> torch.device:
    """``pick_device(name)``; under torchrun a GPU is this process's own, ``cuda:LOCAL_RANK``
    (more processes than GPUs share them round the table)."""
    device = pick_device(name)
    if dist.world > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    dist.share_cores(device)
    return device


_joined: list[bool] = []  # True once _group() started the process group (and must end it)


def _group():
    """torch.distributed, joined to the job's gloo group (CPU messages only: no NCCL needed)."""
    import torch.distributed as tdist

    if not tdist.is_initialized():
        tdist.init_process_group("gloo")
        _joined.append(True)
    return tdist


def _leave_group() -> None:
    """End the process group ``_group`` started; one the caller started is theirs to end."""
    import torch.distributed as tdist

    if _joined and tdist.is_initialized():
        tdist.destroy_process_group()
    _joined.clear()


def _gathered(mine: ScoreSummary, dist: Dist) -> ScoreSummary:
    """Rank 0: the job's summary, the shards' added up; other ranks: their own. Where another
    process is gone (killed), an interrupted one reports its own, any other fails."""
    if dist.world == 1:
        return mine
    box: list = [None] * dist.world
    try:
        _group().all_gather_object(box, mine)
    except RuntimeError as e:  # gloo: a peer's connection closed
        if mine.interrupted:
            return mine
        raise CuratorError(f"another process of this torchrun job stopped before the end ({str(e).splitlines()[0]}):"
                           " what each finished is saved; run the same command again to finish") from None
    if not dist.main:
        return mine
    total = ScoreSummary(run=mine.run, asked=mine.asked, already=mine.already, rank=0,
                         interrupted=any(part.interrupted for part in box))
    for part in box:
        total.scored, total.missing = total.scored + part.scored, total.missing + part.missing
        total.errors += part.errors
        total.seconds = max(total.seconds, part.seconds)
        for c, n in part.by_class.items():
            total.by_class[c] = total.by_class.get(c, 0) + n
        total.shards.append({"rank": part.rank, "scored": part.scored, "errors": len(part.errors),
                             "missing": part.missing, "seconds": round(part.seconds, 2)})
    return total


def _rows(run_id, ids, ok, probs, emb, classes, k, paths) -> list[dict]:
    conf, idx = probs.topk(k, dim=1)
    now = utcnow()
    rows = []
    for j, image_id in enumerate(ids):
        if not ok[j]:
            rows.append(dict(run_id=run_id, image_id=image_id, created_at=now, predicted=None, confidence=None,
                             top_k="[]", embedding=None, error=_why(paths[image_id])))
            continue
        top = [[classes[c], round(float(p), 6)] for c, p in zip(idx[j].tolist(), conf[j].tolist())]
        rows.append(dict(run_id=run_id, image_id=image_id, created_at=now, predicted=top[0][0],
                         confidence=top[0][1], top_k=json.dumps(top), error=None,
                         embedding=emb[j].numpy().astype(np.float16).tobytes()))
    return rows


def _why(path: str) -> str:
    """Decode the file again in this process to say why it failed (rare: bad images are few)."""
    from curator.data import load_pixels

    try:
        load_pixels(path, 8)
    except FileNotFoundError:
        return f"missing file: {path}"
    except Exception as e:  # noqa: BLE001
        return f"unreadable: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    return "unreadable"


def probabilities(lib: Library, ref: str, image_ids: Sequence[int]) -> tuple[list[int], np.ndarray, list[str]]:
    """Full probabilities of images under a run's model (stored predictions keep only the top-k).

    Returns:
        The ids that could be read, their probabilities ``(N, K)`` and the run's classes.
    """
    model, ckpt, _ = load_model(lib, ref)
    with lib.session() as s:
        paths, _ = readable_paths(s, image_ids)
    ids = [i for i in image_ids if i in paths]
    size = ckpt["data_config"]["input_size"][-1]
    kept, out, start = [], [], 0
    for px, ok in loader([paths[i] for i in ids], size, batch_size=128):
        probs, _ = forward(model, px, ckpt["data_config"])
        batch = ids[start:start + len(px)]
        start += len(px)
        kept += [i for i, good in zip(batch, ok.tolist()) if good]
        out.append(probs[ok])
    matrix = torch.cat(out).numpy() if out else np.zeros((0, len(ckpt["classes"])))
    return kept, matrix, ckpt["classes"]
