"""Which clustering finds new classes in the pool (issue 22, "choose by measurement"): scikit-learn's
HDBSCAN on the stored embeddings as they are, after PCA, and on the unfamiliar images only.

Per kind (``real_images``: emoji ``views``, handwritten ``digits``; data no test uses) a library is
built with the CLI: ``--held`` classes held out (all their images in the pool, none labelled), the
other classes half labelled, half in the pool; every image embedded with ``curator embed
--weights lite0`` (ImageNet EfficientNet-Lite0, no training). Then the pool's vectors are
clustered by each method, and for each held-out class: the share of its pool images that land in
clusters of purity 0.8 or more whose majority it is (issue 22's target: 0.5), and how many such
clusters. Also the clusters, the noise share, the share of the pool in pure clusters and seconds.

Methods (``--min-size`` is HDBSCAN's ``min_cluster_size``):
  hdbscan                 the unit vectors as they are (euclidean on unit vectors ~ cosine)
  pca<d>+hdbscan          PCA to d dimensions, re-normalised
  unfamiliar+pca<d>       the same on the pool images `find --unfamiliar` ranks in its top
                          ``--unfamiliar-share`` of the pool only (the rest: not clustered)

Usage:
    .venv/bin/python benchmarks/discover_methods.py                       # views and digits, ~10 min
    .venv/bin/python benchmarks/discover_methods.py --kinds digits --held 2 --json benchmarks/out/discover_methods.json
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import real_images  # noqa: E402
from real_library import build, cli, embed_lite0, image_ids, prepare_held_out, rows_of  # noqa: E402  the library


def pool_vectors(db: Path, truth: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image ids, unit vectors, true classes) of the pool (unlabelled) images."""
    from sqlalchemy import select

    from curator import embeddings
    from curator.library import open_library
    from curator.library.models import Image

    lib = open_library(db)
    ids = image_ids(lib)
    with lib.session() as s:
        pool = [i for i in s.scalars(select(Image.id).where(Image.label_state == "unlabelled").order_by(Image.id))]
        got, vecs = embeddings.vectors(s, embeddings.find_embedder(s, "lite0"), pool)
    lib.close()
    cls = {i: truth[p] for p, i in ids.items() if p in truth}
    got = np.asarray(got)
    return got, np.asarray(vecs, dtype=np.float32), np.array([cls[i] for i in got])


def cluster(vecs: np.ndarray, dims: int | None, min_size: int) -> np.ndarray:
    from sklearn.cluster import HDBSCAN
    from sklearn.decomposition import PCA

    z = vecs
    if dims:
        z = PCA(dims, random_state=0).fit_transform(vecs)
        z /= np.linalg.norm(z, axis=1, keepdims=True) + 1e-12
    return HDBSCAN(min_cluster_size=min_size, copy=True).fit_predict(z)


def score(labels: np.ndarray, truth: np.ndarray, held: list[str]) -> dict:
    found = {h: {"pool": int((truth == h).sum()), "in_pure": 0, "clusters": 0} for h in held}
    pure = 0
    for c in set(labels.tolist()) - {-1}:
        m = labels == c
        top, k = collections.Counter(truth[m].tolist()).most_common(1)[0]
        if k / m.sum() >= 0.8:
            pure += int(m.sum())
            if top in found:
                found[top]["in_pure"] += k
                found[top]["clusters"] += 1
    for f in found.values():
        f["share"] = round(f["in_pure"] / f["pool"], 3) if f["pool"] else None
    return {"held_out": found, "clusters": len(set(labels.tolist()) - {-1}),
            "noise": round(float(np.mean(labels == -1)), 3), "pure_share": round(pure / len(labels), 3)}


def one_kind(kind: str, args) -> dict:
    folder = args.out / kind
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    d = prepare_held_out(kind, folder, args.seed, args.held)
    db, timing = build({"truth": d["truth"]}, folder)
    timing["embed"] = embed_lite0(db, args.size)
    ids, vecs, truth = pool_vectors(db, d["truth"])
    print(f"{kind}: pool {len(ids)}, held out {d['held']} ({sum(int((truth == h).sum()) for h in d['held'])} images)", flush=True)
    n_unfamiliar = max(1, int(len(ids) * args.unfamiliar_share))
    found, _ = cli(db, "find", "--unfamiliar", "--embedder", "lite0", "--limit", n_unfamiliar)
    unfamiliar = np.isin(ids, [r["image_id"] for r in rows_of(found)])
    rows = {}
    for size in args.min_size:
        for name, dims, subset in [("hdbscan", None, None), *[(f"pca{k}+hdbscan", k, None) for k in args.pca],
                                   *[(f"unfamiliar+pca{k}", k, unfamiliar) for k in args.pca]]:
            t0 = time.perf_counter()
            labels = np.full(len(ids), -1)
            if subset is None:
                labels = cluster(vecs, dims, size)
            elif subset.sum() > size:
                labels[subset] = cluster(vecs[subset], min(dims, int(subset.sum()) - 1), size)
            r = rows[f"{name} min{size}"] = score(labels, truth, d["held"]) | {"seconds": round(time.perf_counter() - t0, 2)}
            print(f"  {name:20s} min-size {size:2d}: " + ", ".join(
                f"{h} {v['share']} in {v['clusters']}" for h, v in r["held_out"].items())
                + f"; {r['clusters']} clusters, noise {r['noise']}, pure {r['pure_share']}, {r['seconds']} s", flush=True)
    return {"kind": kind, "held": d["held"], "pool": len(ids), "timing": timing, "methods": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", nargs="+", default=["views", "digits"], choices=real_images.KINDS)
    ap.add_argument("--out", type=Path, default=HERE / "out" / "discover-methods")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--held", type=int, default=3, help="classes held out of the library")
    ap.add_argument("--size", type=int, default=128, help="Lite0's input size in pixels")
    ap.add_argument("--min-size", type=int, nargs="+", default=[5, 10])
    ap.add_argument("--pca", type=int, nargs="+", default=[16, 50])
    ap.add_argument("--unfamiliar-share", type=float, default=0.3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = [one_kind(k, args) for k in args.kinds]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
