"""Embeddings on real images (issue 21): unfamiliar images, more like this, outliers and near
duplicates by embedding, with the pretrained EfficientNet-Lite0 and with a trained run's model,
side by side with FiftyOne Brain on the same vectors.

Per kind (``benchmarks/real_images.py``: ``views``, 50 emoji classes; ``digits``, 10
handwritten digits; ``photos``...), a fresh library under ``--out``/embeddings-<kind>/ built as a
user would (``real_library.py``), with the CLI (``curator import``, ``embed``, ``build-splits``,
``train``, ``bulk-identify``, ``find``) and the service calls where one question is asked many
times (``similarity.similar``, ``dedup.find_duplicates``):

1. Half of each class imported labelled (``--labels-from-folders``), the other half and ALL of
   one held-out class (labelled nowhere) imported as the unlabelled pool; 10 pool images of
   other classes imported labelled as a wrong class (the planted label errors).
2. Embedders: ``lite0`` (``curator embed --weights lite0 --pool all``: ImageNet weights, no
   training) and ``ft``, a run (``build-splits``, ``train --model tf_efficientnet_lite0
   --weights lite0 --img-size 64``, a few epochs, then ``bulk-identify --pool all``: the run's
   embeddings for every image).
3. Per embedder:
   - ``find --unfamiliar --limit N`` (N = the held-out class's pool count): the share of the
     held-out class in the top N over its pool base rate (target >= 3x);
   - ``similar`` with 3 labelled seeds of a class, ``--pool all --k 50``: precision@50 (the
     true class of each row; seeds left out), averaged over the classes (target >= 0.8);
   - ``find --outliers --limit 50``: the planted label errors in the top 20 and 50.
4. Near duplicates: ``real_images.plant_duplicates`` (re-encode, 80% resize, 3-5% crop,
   brightness, saturation, hue; ``--per-kind`` each) imported into the pool, and for ``views``
   the skin-tone look-alikes (``negative_pairs``: one emoji in two skin tones, the same view),
   embedded (``embed`` and ``bulk-identify`` again: incremental). Then ``dedup --full`` (pHash
   and colour alone) and ``dedup --full --embeddings E --min-similarity S`` for S in
   ``--sweep``. Per transform: recall (original and copy in one group) and precision (of the
   pairs of images sharing a group that touch a planted family, the share that are the
   family's original and copy); overall precision over every pair sharing a group; and the
   look-alike pairs (skin tones, same class) grouped. Target: recall and precision >= 0.95 on
   every transform.
5. FiftyOne Brain 0.25 on the same vectors (each side in a fresh child process, peak RSS of
   that process; FiftyOne's mongod not counted): ``compute_similarity(backend='sklearn')`` +
   ``sort_by_similarity`` for the same seeds against ``similar`` (top-50 overlap), and
   ``compute_near_duplicates(threshold=1 - S)`` against ``dedup --embeddings E
   --min-similarity S`` (Jaccard of the pairs of images grouped by embedding, pHash pairs
   left out; and of the images flagged). FiftyOne's database lives under
   ``--out``/embeddings-fiftyone-db/.

Usage:
    .venv/bin/python benchmarks/embeddings.py                       # views and digits, ~20 min on 2 busy cores
    .venv/bin/python benchmarks/embeddings.py --quick               # digits, 60 a class, ~3 min
    .venv/bin/python benchmarks/embeddings.py --report benchmarks/out/embeddings.json   # print saved figures again (one or more files)
    .venv/bin/python benchmarks/embeddings.py --kinds photos --no-run --json benchmarks/out/embeddings-photos.json
    .venv/bin/python benchmarks/embeddings.py --sweep 0.9 0.92 0.94 --fo-similarity 0.92
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import real_images  # noqa: E402
from duplicate_scores import added, co_grouped, dedup_line, embedding_groups, groups, score, staged  # noqa: E402
from measure import peak_mib  # noqa: E402
from real_library import THREADS, build, cli, embed_lite0, image_ids, prepare, rows_of, train_run  # noqa: E402

SWEEP = (0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99)
SEEDS = 3
K = 50
TARGETS = {"unfamiliar": 3.0, "similar": 0.8, "dedup": 0.95}


# -- unfamiliar, similar, outliers ----------------------------------------------------------------


def true_class(d: dict, ids: dict[str, int]) -> dict[int, str]:
    """image id -> true class (planted copies: their original's)."""
    out = {ids[p]: c for p, (c, _) in d["truth"].items() if p in ids}
    for original, copy, _ in d["planted"]:
        if staged(d, copy) in ids:
            out.setdefault(ids[staged(d, copy)], d["truth"][staged(d, original)][0])
    return out


def seeds_of(d: dict, ids: dict[str, int], seed: int) -> dict[str, list[int]]:
    """3 correctly labelled images of each known class (seeded)."""
    rng = random.Random(f"embeddings-seeds-{d['kind']}-{seed}")
    by = collections.defaultdict(list)
    for p, (true, label) in sorted(d["truth"].items()):
        if label and label == true:
            by[true].append(ids[p])
    return {c: sorted(rng.sample(by[c], SEEDS)) for c in sorted(by) if len(by[c]) >= SEEDS}


def measure(db: Path, lib, d: dict, ids: dict[str, int], embedder: str, seeds: dict) -> dict:
    from curator import similarity

    truth = true_class(d, ids)
    pool = [ids[p] for p, (_, label) in d["truth"].items() if not label]
    held_n = sum(truth[i] == d["held"] for i in pool)
    base = held_n / len(pool)
    found, t_unf = cli(db, "find", "--unfamiliar", "--embedder", embedder, "--limit", held_n)
    top = [r["image_id"] for r in rows_of(found)]
    hits = sum(truth.get(i) == d["held"] for i in top)
    unfamiliar = {"pool": len(pool), "held_out": held_n, "base_rate": round(base, 4), "top_n": len(top),
                  "hits": hits, "ratio": round(hits / max(len(top), 1) / base, 2), "seconds": round(t_unf, 2)}
    precisions, t0 = {}, time.perf_counter()
    for c, seed_ids in seeds.items():
        rows = similarity.similar(lib, [str(i) for i in seed_ids], embedder=embedder, pool="all", k=K)["rows"]
        precisions[c] = sum(truth.get(r["image_id"]) == c for r in rows) / K
    t_sim = (time.perf_counter() - t0) / max(len(seeds), 1)
    wrong = {ids[p] for p, (true, label) in d["truth"].items() if label and label != true}
    found, t_out = cli(db, "find", "--outliers", "--embedder", embedder, "--limit", 50)
    top = [r["image_id"] for r in rows_of(found)]
    outliers = {"planted": len(wrong), "top20": len(wrong & set(top[:20])), "top50": len(wrong & set(top[:50])),
                "seconds": round(t_out, 2)}
    return {"unfamiliar": unfamiliar, "similar": {"p_at_50": round(float(np.mean(list(precisions.values()))), 4),
                                                  "worst": sorted(precisions.items(), key=lambda kv: kv[1])[:3],
                                                  "classes": len(precisions), "ms_per_query": round(t_sim * 1000, 1)},
            "outliers": outliers}


# -- near duplicates ------------------------------------------------------------------------------


def add_copies(db: Path, d: dict, args, embedders: list[str]) -> dict:
    t = {}
    _, t["import copies"] = cli(db, "import", d["data"] / "planted")
    if (d["data"] / "skin-tones").is_dir() and d["kind"] == "views":
        _, t["import skin tones"] = cli(db, "import", d["data"] / "skin-tones")
    t["embed lite0 (copies)"] = embed_lite0(db, args.size)
    if "ft" in embedders:
        _, t["bulk-identify ft"] = cli(db, "bulk-identify", "--run", "ft", "--pool", "all", "--workers", 1)
    return t


def all_vectors(lib, embedder: str) -> tuple[np.ndarray, np.ndarray]:
    """Every stored vector of the embedder: (ids, (N, D) unit float32)."""
    from curator import embeddings

    with lib.session() as s:
        ids, vecs = zip(*embeddings.batches(s, embeddings.find_embedder(s, embedder)))
    return np.concatenate(ids), np.concatenate(vecs)


def dedup_sweep(lib, d: dict, ids: dict[str, int], embedders: list[str], sweep) -> dict:
    from curator import dedup

    t0 = time.perf_counter()
    dedup.find_duplicates(lib, full=True)
    out = {"phash": score(d, ids, groups(lib)) | {"seconds": round(time.perf_counter() - t0, 2)}}
    for e in embedders:
        got, vecs = all_vectors(lib, e)
        sims = vecs @ vecs.T
        for s in sweep:
            t0 = time.perf_counter()
            summary = dedup.find_duplicates(lib, full=True, embeddings=e, min_similarity=s)
            out[f"{e}@{s}"] = score(d, ids, groups(lib)) | {"seconds": round(time.perf_counter() - t0, 2),
                                                             "embedding_pairs": summary.embedding_pairs,
                                                             "alone": score(d, ids, embedding_groups(got, sims, s))}
            print(f"  dedup {e} >= {s}: {dedup_line(out[f'{e}@{s}'])}", flush=True)
    return out


def passes(r: dict) -> bool:
    return all(v["recall"] >= TARGETS["dedup"] and (v["precision"] or 0) >= TARGETS["dedup"]
               for v in r["transforms"].values())


# -- FiftyOne Brain, side by side -----------------------------------------------------------------


def side_by_side(db: Path, lib, folder: Path, embedder: str, seeds: dict, s: float) -> dict:
    """Export the embedder's vectors, then curator and FiftyOne Brain each in a child process."""
    from sqlalchemy import select

    from curator import embeddings
    from curator.library.models import Image

    with lib.session() as sess:
        e = embeddings.find_embedder(sess, embedder)
        ids, vecs = zip(*embeddings.batches(sess, e))
        ids, vecs = np.concatenate(ids), np.concatenate(vecs)
        path = dict(sess.execute(select(Image.id, Image.path).where(Image.id.in_(ids.tolist()))).all())
    inputs = folder / f"fo-{embedder}.npz"
    np.savez(inputs, ids=ids, vectors=vecs, paths=np.array([path[i] for i in ids.tolist()]))
    job = {"db": str(db), "inputs": str(inputs), "embedder": embedder, "seeds": list(seeds.values()),
           "min_similarity": s, "fo_db": str(folder.parent / "embeddings-fiftyone-db"),
           "thresholds": {"1-S": 1 - s, "matched": matched_threshold(vecs, s)}}
    res = {side: child(side, job) for side in ("curator", "fiftyone")}
    cur, fo = res["curator"], res["fiftyone"]
    overlap = [len(set(a) & set(b)) / K for a, b in zip(cur.pop("top"), fo.pop("top"))]
    pc = {tuple(p) for p in cur.pop("pairs")}
    ic = {i for p in pc for i in p}
    near = {}
    for name, r in fo.pop("near", {}).items():
        pf = {tuple(p) for p in r.pop("pairs")}
        i_f = {i for p in pf for i in p}
        near[name] = r | {"grouped_pairs": len(pf), "pair_jaccard": round(len(pc & pf) / max(len(pc | pf), 1), 4),
                          "image_jaccard": round(len(ic & i_f) / max(len(ic | i_f), 1), 4)}
    return {"curator": cur | {"grouped_pairs": len(pc)}, "fiftyone": fo, "near": near, "min_similarity": s,
            "top50_overlap": round(float(np.mean(overlap)), 4) if overlap else None}


def matched_threshold(vecs: np.ndarray, s: float) -> float:
    """FiftyOne's sklearn backend centres the vectors (subtracts their mean) before its cosine
    distances: the centred distance below which as many pairs fall as have raw similarity >= s."""
    iu = np.triu_indices(len(vecs), 1)
    m = int(((vecs @ vecs.T)[iu] >= s).sum())
    c = vecs - vecs.mean(axis=0)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    d = 1 - (c @ c.T)[iu]
    return float(np.partition(d, m - 1)[m - 1]) if m else 0.0


def child(side: str, job: dict) -> dict:
    env = dict(os.environ, FIFTYONE_DATABASE_DIR=job["fo_db"], FIFTYONE_DO_NOT_TRACK="true")
    done = subprocess.run([sys.executable, __file__, "--child", side, json.dumps(job)],
                          capture_output=True, text=True, env=env)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}",
                "top": [], "pairs": []}
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_curator(job: dict) -> dict:
    from curator import dedup, embedding_pairs, embeddings, similarity, vector_index
    from curator.library import open_library

    lib = open_library(job["db"])
    t0 = time.perf_counter()
    top = [[r["image_id"] for r in similarity.similar(lib, [str(i) for i in seeds], embedder=job["embedder"],
                                                      pool="all", k=K)["rows"]] for seeds in job["seeds"]]
    t_sim = time.perf_counter() - t0
    t0 = time.perf_counter()
    dedup.find_duplicates(lib, full=True, embeddings=job["embedder"], min_similarity=job["min_similarity"])
    t_dup = time.perf_counter() - t0
    with lib.session() as s:
        e = embeddings.find_embedder(s, job["embedder"])
    index = vector_index.open_index(lib, e)
    with lib.session() as s:  # every pair >= S (the stored ones leave out pHash's); replaces the stored
        edges = embedding_pairs.find_pairs(lib, s, e, index, job["min_similarity"], full=True)[0].tolist()
    return {"similar_s": round(t_sim, 3), "queries": len(top), "near_duplicates_s": round(t_dup, 3),
            "peak_mib": peak_mib(), "top": top, "pairs": co_grouped(edges)}


def child_fiftyone(job: dict) -> dict:
    import fiftyone as fo
    import fiftyone.brain as fob

    z = np.load(job["inputs"])
    ids, vecs, paths = z["ids"].tolist(), z["vectors"], z["paths"].tolist()
    t0 = time.perf_counter()
    ds = fo.Dataset(f"curator-embeddings-bench-{os.getpid()}")
    try:
        ds.add_samples([fo.Sample(filepath=p, image_id=i) for p, i in zip(paths, ids)], progress=False)
        sample_ids = ds.values("id")
        of_sample = dict(zip(sample_ids, ds.values("image_id")))
        t_add = time.perf_counter() - t0
        t0 = time.perf_counter()
        fob.compute_similarity(ds, embeddings=vecs, backend="sklearn", brain_key="emb", progress=False)
        t_index = time.perf_counter() - t0
        where = {i: k for k, i in enumerate(ids)}
        t0 = time.perf_counter()
        top = []
        for seeds in job["seeds"]:
            view = ds.sort_by_similarity([sample_ids[where[i]] for i in seeds], k=K + len(seeds), brain_key="emb")
            top.append([of_sample[x] for x in view.values("id") if of_sample[x] not in seeds][:K])
        t_sim = time.perf_counter() - t0
        near = {}
        for name, thresh in job["thresholds"].items():
            t0 = time.perf_counter()
            nd = fob.compute_near_duplicates(ds, embeddings=vecs, threshold=thresh, progress=False)
            edges = [(of_sample[u], of_sample[x[0] if isinstance(x, (tuple, list)) else x])
                     for u, dups in nd.neighbors_map.items() for x in dups]
            near[name] = {"threshold": round(thresh, 4), "seconds": round(time.perf_counter() - t0, 3),
                          "duplicates": len(nd.duplicate_ids), "pairs": co_grouped(edges)}
    finally:
        ds.delete()
    return {"add_samples_s": round(t_add, 3), "index_s": round(t_index, 3), "similar_s": round(t_sim, 3),
            "queries": len(top), "peak_mib": peak_mib(), "top": top, "near": near}


# -- one kind -------------------------------------------------------------------------------------


def one_kind(kind: str, args) -> dict:
    folder = args.out / f"embeddings-{kind}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    d = prepare(kind, folder, args.seed, args.per_class, args.per_kind)
    print(f"{kind}: {len(d['truth'])} images, held-out class {d['held']!r}, {len(d['planted'])} planted copies,"
          f" {len(d['negatives'])} look-alike pairs ({time.perf_counter() - t0:.0f} s)", flush=True)
    db, timing = build(d, folder)
    timing["embed lite0"] = embed_lite0(db, args.size)
    embedders = ["lite0"]
    if not args.no_run:
        timing |= train_run(db, args)
        embedders.append("ft")
    from curator.library import open_library

    lib = open_library(db)
    ids = image_ids(lib)
    seeds = seeds_of(d, ids, args.seed)
    result = {"kind": kind, "images": len(d["truth"]), "held_out": d["held"], "classes": len(d["classes"]) + 1,
              "timing": timing, "embedders": {}}
    for e in embedders:
        result["embedders"][e] = measure(db, lib, d, ids, e, seeds)
        print(f"  {e}: {json.dumps(result['embedders'][e])}", flush=True)
    timing |= add_copies(db, d, args, embedders)
    ids = image_ids(lib)
    result["dedup"] = dedup_sweep(lib, d, ids, embedders, args.sweep)
    print(f"  dedup pHash alone: {dedup_line(result['dedup']['phash'])}", flush=True)
    if not args.no_fiftyone:
        result["fiftyone"] = {e: side_by_side(db, lib, folder, e, seeds, args.fo_similarity) for e in embedders}
        print(f"  fiftyone: {json.dumps(result['fiftyone'])}", flush=True)
    lib.close()
    result["seconds"] = round(time.perf_counter() - t0)
    return result


# -- report ---------------------------------------------------------------------------------------


def report(results: list[dict], sweep) -> dict:
    print("\n## Unfamiliar, similar, outliers\n")
    print("| kind | embedder | held-out base rate | unfamiliar top-N ratio | similar p@50 | outliers top 20 / 50 |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for r in results:
        for e, m in r["embedders"].items():
            u, o = m["unfamiliar"], m["outliers"]
            print(f"| {r['kind']} | {e} | {u['held_out']}/{u['pool']} = {u['base_rate']:.3f} |"
                  f" {u['ratio']:.2f}x ({u['hits']}/{u['top_n']}) {'PASS' if u['ratio'] >= TARGETS['unfamiliar'] else 'FAIL'} |"
                  f" {m['similar']['p_at_50']:.3f} {'PASS' if m['similar']['p_at_50'] >= TARGETS['similar'] else 'FAIL'} |"
                  f" {o['top20']} / {o['top50']} of {o['planted']} |")
    print("\n## Near duplicates: recall / precision per transform\n")
    transforms = real_images.TRANSFORMS
    print("| kind | pairs by | " + " | ".join(transforms) + " | all grouped pairs: precision | look-alikes grouped | verdict |"
          " pairs the embeddings add: true / false |")
    print("| --- | --- |" + " ---: |" * len(transforms) + " ---: | --- | --- | ---: |")
    for r in results:
        for key, v in r["dedup"].items():
            cells = [(f"{v['transforms'][t]['recall']:.2f} / "
                      + ("-" if v["transforms"][t]["precision"] is None else f"{v['transforms'][t]['precision']:.2f}"))
                     if t in v["transforms"] else "" for t in transforms]
            print(f"| {r['kind']} | {key} | " + " | ".join(cells) + f" | {v['precision']} ({v['grouped_pairs']}) |"
                  f" {v['negatives_grouped'] or 0} | {'PASS' if passes(v) else 'FAIL'} | {added(v, r['dedup']['phash'])} |")
            if "alone" in v:
                a = v["alone"]
                cells = [(f"{a['transforms'][t]['recall']:.2f} / " + ("-" if a["transforms"][t]["precision"] is None
                                                                      else f"{a['transforms'][t]['precision']:.2f}"))
                         if t in a["transforms"] else "" for t in transforms]
                print(f"| {r['kind']} | {key} alone | " + " | ".join(cells) + f" | {a['precision']} ({a['grouped_pairs']}) |"
                      f" {a['negatives_grouped'] or 0} | {'PASS' if passes(a) else 'FAIL'} | |")
    best = {}
    for e in {e for r in results for e in r["embedders"]}:
        ok = [s for s in sweep if all(passes(r["dedup"][f"{e}@{s}"]) for r in results)]
        best[e] = ok
        print(f"\n{e}: --min-similarity meeting every target on {', '.join(r['kind'] for r in results)}:"
              f" {', '.join(map(str, ok)) or 'none'}")
    if any("fiftyone" in r for r in results):
        print("\n## FiftyOne Brain side by side (same vectors; each side a fresh process)\n")
        print("| kind | embedder | curator similar s (n) | FO add + index + sort s | top-50 overlap |"
              " S | curator dedup s, grouped pairs | FO threshold: s, grouped pairs, pair / image Jaccard |"
              " peak MiB curator / FO |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
        for r in results:
            for e, f in r.get("fiftyone", {}).items():
                c, o = f["curator"], f["fiftyone"]
                if "error" in c or "error" in o:
                    print(f"| {r['kind']} | {e} | error: {c.get('error') or o.get('error')} |")
                    continue
                near = "; ".join(f"{n} {v['threshold']}: {v['seconds']} s, {v['grouped_pairs']}, {v['pair_jaccard']} /"
                                 f" {v['image_jaccard']}" for n, v in f["near"].items())
                print(f"| {r['kind']} | {e} | {c['similar_s']} ({c['queries']}) |"
                      f" {o['add_samples_s']} + {o['index_s']} + {o['similar_s']} | {f['top50_overlap']:.3f} |"
                      f" {f['min_similarity']} | {c['near_duplicates_s']}, {c['grouped_pairs']} | {near} |"
                      f" {c['peak_mib']} / {o['peak_mib']} |")
    return best


def main() -> None:
    if len(sys.argv) >= 3 and sys.argv[1] == "--report":  # one or more saved --json files
        saved = [json.loads(Path(f).read_text()) for f in sys.argv[2:]]
        report([r for one in saved for r in one["results"]], saved[0]["args"]["sweep"])
        return
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps({"curator": child_curator, "fiftyone": child_fiftyone}[sys.argv[2]](json.loads(sys.argv[3]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", nargs="+", default=["views", "digits"], choices=real_images.KINDS)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-class", type=int, help="at most this many images a class (seeded sample)")
    ap.add_argument("--per-kind", type=int, default=20, help="planted copies per transform")
    ap.add_argument("--size", type=int, default=128, help="lite0's input size in pixels")
    ap.add_argument("--epochs", type=int, default=5, help="the run's training epochs")
    ap.add_argument("--lr", type=float, default=1e-3, help="the run's peak learning rate")
    ap.add_argument("--no-run", action="store_true", help="lite0 only: train no run")
    ap.add_argument("--no-fiftyone", action="store_true")
    ap.add_argument("--sweep", type=float, nargs="+", default=list(SWEEP))
    ap.add_argument("--fo-similarity", type=float, default=0.95, help="S for the FiftyOne near-duplicate comparison")
    ap.add_argument("--quick", action="store_true", help="digits, 60 a class, 10 copies a transform, 2 epochs")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the curator commands (0: curator's)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    THREADS[0] = args.threads  # real_library's curator commands
    if args.quick:
        args.kinds, args.per_class, args.per_kind, args.epochs = ["digits"], args.per_class or 60, 10, 2
    results = []
    for kind in args.kinds:
        results.append(one_kind(kind, args))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"args": vars(args) | {"out": str(args.out), "json": str(args.json)},
                                             "results": results}, indent=1, default=str))
    best = report(results, args.sweep)
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"out": str(args.out), "json": str(args.json)},
                                         "results": results, "passing_min_similarity": best}, indent=1, default=str))


if __name__ == "__main__":
    main()
