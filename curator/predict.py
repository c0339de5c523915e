"""Prediction: a run's model over library images; top-k classes and the embedding, stored per image.

The model is rebuilt from the run's checkpoint alone. Images stream through DataLoader workers
in batches; each batch is written in its own transaction, so a killed run loses at most one
batch and a re-run skips what that run already predicted. Each image is read from its readable
path (``curator.locations``: its first path, else another location that exists); an image with
no file at any path is left out and counted (``missing``), so it is predicted once it is found
again. An unreadable file is stored with its error and skipped, never fatal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from sqlalchemy import insert, select

from curator import checkpoints
from curator.data import loader, normalise
from curator.errors import InvalidInput
from curator.library import Library
from curator.library.models import Image, Prediction, SplitMember, utcnow
from curator.locations import readable_paths


POOLS = ("unlabelled", "unknown", "rejected", "labelled", "all")


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

    @property
    def images_per_second(self) -> float:
        return (self.scored + len(self.errors)) / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return asdict(self) | {"images_per_second": self.images_per_second}


def load_model(lib: Library, ref: str, device: torch.device | None = None):
    """A run's best model, on ``device``, with its checkpoint (classes, data config)."""
    from curator.runs import find_run, run_folder
    from curator.train import pick_device

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
        limit: predict at most this many of the images not predicted yet.
        on_progress: called with (done, total) after each batch.
        should_stop: polled after each batch (which is saved first).
    """
    import time

    from curator.train import pick_device

    t0 = time.perf_counter()
    model, ckpt, run_id = load_model(lib, ref, pick_device(device))
    summary = ScoreSummary(run=ckpt["run"])
    ids = build_images(lib, ref) if image_ids is None else list(image_ids)
    summary.asked = len(ids)
    with lib.session() as s:
        done = set(s.scalars(select(Prediction.image_id).where(Prediction.run_id == run_id)))
        todo = [i for i in ids if i not in done]
        paths, missing = readable_paths(s, todo)
    summary.already, summary.missing = len(ids) - len(todo), len(missing)
    todo = [i for i in todo if i in paths][:limit]
    classes, size = ckpt["classes"], ckpt["data_config"]["input_size"][-1]
    k = min(top_k, len(classes))
    start = 0
    for px, ok in loader([paths[i] for i in todo], size, batch_size=batch_size, workers=workers):
        batch_ids = todo[start:start + len(px)]
        start += len(px)
        probs, emb = forward(model, px, ckpt["data_config"])
        rows = _rows(run_id, batch_ids, ok, probs, emb, classes, k, paths)
        with lib.session() as s:
            s.execute(insert(Prediction), rows)
        summary.scored += sum(1 for r in rows if r["error"] is None)
        for r in rows:
            if r["predicted"]:
                summary.by_class[r["predicted"]] = summary.by_class.get(r["predicted"], 0) + 1
        summary.errors += [{"image_id": r["image_id"], "path": paths[r["image_id"]], "error": r["error"]}
                           for r in rows if r["error"]]
        if on_progress:
            on_progress(start, len(todo))
        if should_stop():
            summary.interrupted = start < len(todo)
            break
    summary.seconds = time.perf_counter() - t0
    return summary


def pool_ids(lib: Library, pool: str = "unlabelled") -> list[int]:
    """Ids of the images in a pool: unlabelled, unknown, rejected, labelled (active) or all."""
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
    with lib.session() as s:
        return list(s.scalars(select(Image.id).where(*where[pool]).order_by(Image.id)))


def bulk_identify(lib: Library, run: str = "latest", pool: str = "unlabelled", **options) -> ScoreSummary:
    """Predict every image of ``pool`` with ``run`` (see ``score`` for the options), resumable."""
    summary = score(lib, run, pool_ids(lib, pool), **options)
    summary.pool = pool
    return summary


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
