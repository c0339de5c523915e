"""curator's embedding index at scale: build, refresh and query over N stored embeddings.

Issue 21's targets, at 1,000,000 stored 512-d embeddings: a query in at most 50 ms, the index
built in at most 5 minutes within 2 GiB. benchmarks/vector_index.py chose the index among the
libraries on bare arrays; this measures curator's own path, from the library's table:

1. A copy of a kept scale library (benchmarks/scale.py makes them; ``--source``), brought to
   the current schema, gets an embedder ``bench-512`` and N synthetic unit vectors stored as
   curator stores them (float16 blobs, one row per image): 2,000 Gaussian clusters of varying
   spread plus 5% scattered points, seeded. Written once; a later call reuses the copy.
2. In a child process (its peak RSS is the figure): ``vector_index.open_index`` builds the index
   from the table (``--rebuild`` deletes the file first) and saves it beside the library.
3. In another child: the index opened again (load + the freshness check), then 200 single
   queries of ``index.search(v, 50)`` (p50/p95), the same through ``similarity.similar`` for a
   one-image seed when that service exists, and recall@50 of 50 queries against exact search
   over the stored vectors.
4. Refresh: 1% more images get vectors; ``open_index`` adds them (time, and the file is not
   rebuilt).

Usage:
    .venv/bin/python benchmarks/embedding_index.py --n 100000 --source benchmarks/out/scale-100000-sqlite
    .venv/bin/python benchmarks/embedding_index.py --n 1000000 --source benchmarks/out/scale-1000000-sqlite \\
        --work /work/scratch-emb1m --json benchmarks/out/embedding_index-1000000.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NAME = "bench-512"
DIM = 512
STORE_CHUNK = 20_000


def vectors(n: int, lo: int, hi: int, seed: int = 0) -> np.ndarray:
    """Rows ``lo:hi`` of the seeded set: unit float16 vectors around 2,000 centres, 5% scattered."""
    centres = np.random.default_rng(seed).normal(size=(2000, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng(seed * 1_000_003 + lo)
    m = hi - lo
    which = rng.integers(0, 2000, m)
    spread = rng.uniform(0.02, 0.08, m)[:, None]
    v = centres[which] + rng.normal(size=(m, DIM)).astype(np.float32) * spread
    scattered = rng.random(m) < 0.05
    v[scattered] = rng.normal(size=(int(scattered.sum()), DIM))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.astype(np.float16)


def prepare(work: Path, source: Path, n: int) -> str:
    """The scratch library's --db, with ``n`` vectors stored under embedder NAME."""
    from sqlalchemy import func, select

    from curator.library import init_library, open_library
    from curator.library.inserts import insert_new
    from curator.library.models import Embedder, Embedding, Image

    db = work / "curator.sqlite"
    if not db.exists():
        work.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        shutil.copy(source / "curator.sqlite", db)
        print(f"copied {source} in {time.perf_counter() - t:.0f} s", flush=True)
    init_library(str(db))  # brought to the current schema
    lib = open_library(str(db))
    with lib.session() as s:
        e = s.scalar(select(Embedder).where(Embedder.name == NAME))
        if e is None:
            e = Embedder(name=NAME, kind="model", model="synthetic", weights=None, dim=DIM)
            s.add(e)
            s.flush()
        have = s.scalar(select(func.count()).select_from(Embedding).where(Embedding.embedder_id == e.id))
        ids = np.fromiter(s.scalars(select(Image.id).order_by(Image.id).limit(n)), dtype=np.int64)
        eid = e.id
    if have >= n:
        return str(db)
    t = time.perf_counter()
    for lo in range(have, n, STORE_CHUNK):
        hi = min(n, lo + STORE_CHUNK)
        v = vectors(n, lo, hi)
        with lib.session() as s:
            insert_new(s, Embedding, [{"embedder_id": eid, "image_id": int(i), "vector": v[k].tobytes()}
                                      for k, i in enumerate(ids[lo:hi])])
        print(f"\rstored {hi:,} vectors ({time.perf_counter() - t:.0f} s)", end="", flush=True)
    print()
    return str(db)


def build(db: str, rebuild: bool) -> dict:
    from curator import embeddings, vector_index
    from curator.library import open_library

    lib = open_library(db)
    with lib.session() as s:
        e = embeddings.find_embedder(s, NAME)
    path = vector_index.folder(lib) / f"{e.id}.faiss"
    if rebuild:
        path.unlink(missing_ok=True)
    t = time.perf_counter()
    index = vector_index.open_index(lib, e)
    return {"build_s": round(time.perf_counter() - t, 1), "kind": index.meta["kind"], "size": index.size,
            "file_mib": round(path.stat().st_size / 2**20, 1), "peak_rss_mib": _peak()}


def query(db: str, n: int) -> dict:
    from curator import embeddings, vector_index
    from curator.library import open_library

    lib = open_library(db)
    with lib.session() as s:
        e = embeddings.find_embedder(s, NAME)
    t = time.perf_counter()
    index = vector_index.open_index(lib, e)
    opened = time.perf_counter() - t
    rng = np.random.default_rng(1)
    qids = rng.integers(1, n, 200).tolist()
    with lib.session() as s:
        got, q = embeddings.vectors(s, e, qids)
    lat = []
    for v in q:
        t = time.perf_counter()
        index.search(v[None], 50)
        lat.append(time.perf_counter() - t)
    out = {"open_s": round(opened, 3), "query_p50_ms": round(1000 * float(np.median(lat)), 2),
           "query_p95_ms": round(1000 * float(np.percentile(lat, 95)), 2)}
    with lib.session() as s:
        stored = embeddings.image_ids(s, e)  # in id order, as prepare() stored vectors() by position
    out.update(_recall(index, q[:50], stored))
    out.update(_similar(lib, got[:20].tolist()))
    out["peak_rss_mib"] = _peak()
    return out


def _recall(index, q: np.ndarray, ids: np.ndarray) -> dict:
    """recall@50 against exact inner products over every stored vector (recomputed, blocked)."""
    n = len(ids)
    best_s = np.full((len(q), 50), -np.inf, np.float32)
    best_i = np.zeros((len(q), 50), np.int64)
    for lo in range(0, n, STORE_CHUNK):  # the chunks prepare() stored: each is seeded by where it starts
        hi = min(n, lo + STORE_CHUNK)
        sims = q @ vectors(n, lo, hi).astype(np.float32).T
        s = np.concatenate([best_s, sims], axis=1)
        i = np.concatenate([best_i, np.broadcast_to(ids[lo:hi], sims.shape)], axis=1)
        top = np.argpartition(-s, 49, axis=1)[:, :50]
        best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
    _, found = index.search(q, 50)
    hits = [len(set(a) & set(b)) / 50 for a, b in zip(found.tolist(), best_i.tolist())]
    return {"recall_at_50": round(float(np.mean(hits)), 3)}


def _similar(lib, seeds: list[int]) -> dict:
    try:
        from curator import similarity
    except ImportError:
        return {}
    lat = []
    for seed in seeds:
        t = time.perf_counter()
        similarity.similar(lib, [str(seed)], embedder=NAME, pool="all", k=50)
        lat.append(time.perf_counter() - t)
    return {"similar_p50_ms": round(1000 * float(np.median(lat)), 1),
            "similar_p95_ms": round(1000 * float(np.percentile(lat, 95)), 1)}


def refresh(db: str, n: int) -> dict:
    """The last 1% of the images lose their vectors, then get them back: ``open_index`` removes,
    then adds them (times; and whether the file was rebuilt: it should not be)."""
    from sqlalchemy import delete

    from curator import embeddings, vector_index
    from curator.library import open_library
    from curator.library.inserts import insert_new
    from curator.library.models import Embedding

    lib = open_library(db)
    with lib.session() as s:
        e = embeddings.find_embedder(s, NAME)
        stored = embeddings.image_ids(s, e)
    extra = len(stored) // 100
    ids, before = stored[-extra:].tolist(), _meta(lib, e)
    with lib.session() as s:
        s.execute(delete(Embedding).where(Embedding.embedder_id == e.id, Embedding.image_id.in_(ids)))
    t = time.perf_counter()
    vector_index.open_index(lib, e)
    removed_s = time.perf_counter() - t
    v = vectors(n, len(stored) - extra, len(stored))
    with lib.session() as s:
        insert_new(s, Embedding, [{"embedder_id": e.id, "image_id": i, "vector": v[k].tobytes()} for k, i in enumerate(ids)])
    t = time.perf_counter()
    index = vector_index.open_index(lib, e)
    return {"changed": extra, "remove_s": round(removed_s, 2), "add_s": round(time.perf_counter() - t, 2),
            "size_after": index.size, "rebuilt": index.meta.get("trained_on") != before.get("trained_on")
            or index.meta.get("kind") != before.get("kind"), "peak_rss_mib": _peak()}


def _meta(lib, e) -> dict:
    from curator import vector_index

    path = (vector_index.folder(lib) / f"{e.id}.json")
    return json.loads(path.read_text()) if path.exists() else {}


def _peak() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def child(step: str, db: str, n: int, rebuild: bool) -> dict:
    args = [sys.executable, __file__, "--child", step, "--db", db, "--n", str(n)] + (["--rebuild"] if rebuild else [])
    r = subprocess.run(args, capture_output=True, text=True, env=os.environ | {"PYTHONPATH": str(ROOT)})
    if r.returncode:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--source", type=Path, default=HERE / "out" / "scale-100000-sqlite")
    ap.add_argument("--work", type=Path)
    ap.add_argument("--rebuild", action="store_true", help="build the index from scratch (the default on a first call)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child")
    ap.add_argument("--db")
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps({"build": build, "query": query, "refresh": refresh}[a.child](
            *((a.db, a.rebuild) if a.child == "build" else (a.db, a.n)))))
        return
    work = a.work or HERE / "out" / f"embedding-index-{a.n}"
    db = prepare(work, a.source, a.n)
    result = {"n": a.n, "dim": DIM, "when": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count()}
    for step in ("build", "query", "refresh"):
        result[step] = child(step, db, a.n, a.rebuild)
        print(step, json.dumps(result[step]), flush=True)
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
