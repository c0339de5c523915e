"""``curator discover`` on real images with held-out classes (issue 22's "Must show"), and at
100,000 pool images.

Per kind (``real_images``: emoji ``views``, handwritten ``digits``, photo crops ``photos``...;
data no test uses, not ``sample_data/``) a library is built with the CLI, as
``discover_methods.py`` builds it (``real_library.prepare_held_out``, ``build`` and ``embed_lite0``):
``--held`` classes held out (labelled nowhere, all their images in the pool), the other classes
half labelled, half pool. Then, before import, ``--held-unknown`` (0.2) of each held-out class's
images and ``--known-unknown`` (0.02) of the known classes' pool images are moved to a folder
imported with ``curator import --unknown`` (users save what fits no class, and some images that
do). Every image embedded with ``curator embed --weights lite0`` at ``--size`` px.

1. **Clusters.** ``curator discover --embedder lite0 --json`` for each ``--share`` x
   ``--min-size`` (the defaults, 0.3 and 5, first); each cluster's members read back with
   ``discover.members``. A held-out class's *pool images* are its unknown and unlabelled ones.
   Per held-out class: ``share`` = its pool images in clusters of purity >= 0.8 whose majority it
   is, over its pool images (issue 22's target: 0.5), and ``clusters`` = how many such clusters.
   Overall: clusters, images clustered, noise. ``inside``: of the clusters whose majority is a
   known class, the share flagged ``inside`` (wanted: high); of those whose majority is a
   held-out class, the share NOT flagged (wanted: high).
2. **The inside quantile, offline.** For ``--quantiles`` (0.05, 0.1, 0.25) the inside decision
   is recomputed from the stored clusters and vectors as ``discover._describe_into`` makes it
   (``discover.describe``; the class floor: that quantile of the class's labelled images'
   similarity to its centre); 0.1 must reproduce the stored ``inside`` (checked, reported). Each
   cluster's rank (the share of its nearest class's own images less similar to the centre than
   its members' median) is kept too, so any quantile can be read off the JSON.
3. **Review cost**, against ``find``. A quick run is trained on the labelled images
   (``real_library.train_run``: ``build-splits --min-count 10``, ``train --model
   tf_efficientnet_lite0 --weights lite0 --img-size 64 --epochs E``, ``bulk-identify --pool
   all``). ``find`` list: ``curator find --max-confidence 1`` (the unlabelled pool) and ``curator
   find --label unknown --max-confidence 1`` merged, lowest top confidence first (ties by image
   id): the pool paged from the lowest score. ``discover`` list: the clusters in the order
   ``curator discover`` lists them (largest first).
   (a) *to first see a class*: find: rows paged up to and including the first image of that
   class; discover: ``discover.EXAMPLES`` (5) example images per cluster, up to and including
   the first cluster whose majority is that class (None: no such cluster).
   (b) *to collect half of a class's pool images*: find: rows paged until half of them have
   been seen; discover: walking the list, a cluster whose majority is that class is opened
   (all its images reviewed, its images of that class collected), any other costs its 5
   examples; images reviewed until half are collected (None: the clusters never hold half;
   the share they reach is reported).
4. **At 100,000 pool images** (``--scale``): ``scale_library.generate`` makes a library of
   ``--scale-images`` (150,000: ~30% labelled over 1,000 classes, ~3% unknown, the rest
   unlabelled, 2% rejected), and every image gets a synthetic 1,280-d unit vector (float16, as
   curator stores them) under embedder ``bench-1280``: a shared mean direction (Lite0's
   features are non-negative, so all images are alike to some degree), a class direction and an
   8-d class-specific spread of modes, plus isotropic noise; pool images are 90% known classes,
   8% 100 classes no image is labelled with, 2% scattered. Then ``discover`` in a child process
   with ``on_step`` timings, cold (the embedding index is deleted first, then built and timed
   apart from the scoring), and the whole CLI command under ``/usr/bin/time -v`` with the index
   kept: wall seconds and peak RSS of each.

Usage:
    .venv/bin/python benchmarks/discover.py             # views, digits, photos + 100k: ~45 min on 2 busy cores
    .venv/bin/python benchmarks/discover.py --kinds digits --no-scale --seed 1
    .venv/bin/python benchmarks/discover.py --kinds views --no-train --json benchmarks/out/discover-views.json
    .venv/bin/python benchmarks/discover.py --kinds --json benchmarks/out/discover-scale.json   # the 100k part alone
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
from real_library import CURATOR, build, cli, embed_lite0, image_ids, prepare_held_out, rows_of, train_run  # noqa: E402

PURE = 0.8
TARGET = 0.5


# -- the library ----------------------------------------------------------------------------------


def stage_unknown(folder: Path, d: dict, seed: int, held_share: float, known_share: float) -> dict:
    """Move a share of each held-out class's files, and of the known classes' pool files, from
    files/pool/ to files/unknown/ (imported with --unknown); ``d["truth"]`` follows them."""
    rng = random.Random(f"discover-unknown-{seed}")
    pool = sorted(p for p in d["truth"] if "/files/pool/" in p)
    by = collections.defaultdict(list)
    for p in pool:
        by[d["truth"][p]].append(p)
    moved = collections.Counter()
    (folder / "files" / "unknown").mkdir(parents=True)
    for c, paths in sorted(by.items()):
        share = held_share if c in d["held"] else known_share
        for p in rng.sample(paths, round(share * len(paths))):
            dest = folder / "files" / "unknown" / Path(p).name
            os.rename(p, dest)
            d["truth"][str(dest.resolve())] = d["truth"].pop(p)
            moved["held" if c in d["held"] else "known"] += 1
    return dict(moved)


def truth_by_id(db: Path, d: dict) -> tuple[dict[int, str], dict[int, str]]:
    """(image id -> true class, pool image id -> label state)."""
    from sqlalchemy import select

    from curator.library import open_library
    from curator.library.models import Image

    lib = open_library(db)
    ids = image_ids(lib)
    with lib.session() as s:
        states = dict(s.execute(select(Image.id, Image.label_state)
                                .where(Image.label_state.in_(("unknown", "unlabelled")))).all())
    lib.close()
    return {i: d["truth"][p] for p, i in ids.items() if p in d["truth"]}, states


# -- one discovery, scored ------------------------------------------------------------------------


def clusters_of(db: Path, listed: dict) -> list[dict]:
    """The listed clusters, in listed order, each with its member ids."""
    from curator import discover
    from curator.library import open_library

    lib = open_library(db)
    out = [{**row, "ids": [m["image_id"] for m in discover.members(lib, row["cluster"])["images"] if not m["excluded"]]}
           for row in listed["clusters"]]
    lib.close()
    return out


def majority(ids: list[int], truth: dict[int, str]) -> tuple[str, float]:
    top, k = collections.Counter(truth[i] for i in ids).most_common(1)[0]
    return top, k / len(ids)


def score(clusters: list[dict], truth: dict[int, str], states: dict[int, str], held: list[str]) -> dict:
    """Issue 22's figure per held-out class, and how ``inside`` separates known from new."""
    pool_n = collections.Counter(truth[i] for i in states)
    found = {h: {"pool": pool_n[h], "in_pure": 0, "clusters": 0} for h in held}
    inside = {"known": [0, 0], "held": [0, 0]}  # [flagged as wanted, clusters]
    for c in clusters:
        top, purity = majority(c["ids"], truth)
        c["majority"], c["purity"] = top, round(purity, 3)
        side = "held" if top in held else "known"
        inside[side][1] += 1
        inside[side][0] += (c["inside"] is not None) == (side == "known")
        if purity >= PURE and top in found:
            found[top]["in_pure"] += sum(truth[i] == top for i in c["ids"])
            found[top]["clusters"] += 1
    for f in found.values():
        f["share"] = round(f["in_pure"] / f["pool"], 3) if f["pool"] else None
    return {"held_out": found,
            "known_flagged_inside": _share(*inside["known"]), "held_not_inside": _share(*inside["held"]),
            "known_clusters": inside["known"][1], "held_clusters": inside["held"][1]}


def _share(k: int, n: int) -> float | None:
    return round(k / n, 3) if n else None


def discover_costs(clusters: list[dict], truth: dict[int, str], pool_n: dict[str, int], held: list[str],
                   examples: int) -> dict:
    """(a) and (b) of the docstring for the discover list, per held-out class."""
    out = {}
    for h in held:
        first, seen, collected, cost, half = None, 0, 0, 0, None
        for c in clusters:
            mine = c["majority"] == h
            seen += examples
            if mine and first is None:
                first = seen
            if half is None:
                cost += len(c["ids"]) if mine else examples
                collected += sum(truth[i] == h for i in c["ids"]) if mine else 0
                if collected * 2 >= pool_n[h]:
                    half = cost
        out[h] = {"first": first, "half": half, "reached": round(collected / pool_n[h], 3)}
    return out


def find_costs(db: Path, truth: dict[int, str], pool_n: dict[str, int], held: list[str]) -> dict:
    """(a) and (b) for the pool paged from the lowest top confidence."""
    rows = [r for label in ("unlabelled", "unknown")
            for r in rows_of(cli(db, "find", "--label", label, "--max-confidence", 1, "--run", "ft")[0])]
    rows.sort(key=lambda r: (r["confidence"], r["image_id"]))
    out = {}
    for h in held:
        marks = np.cumsum([truth[r["image_id"]] == h for r in rows])
        first = int(np.argmax(marks >= 1)) + 1 if marks[-1] >= 1 else None
        half = int(np.argmax(marks * 2 >= pool_n[h])) + 1 if marks[-1] * 2 >= pool_n[h] else None
        out[h] = {"first": first, "half": half}
    return {"rows": len(rows), "classes": out}


# -- the inside decision at other quantiles, offline ----------------------------------------------


def inside_at(db: Path, clusters: list[dict], quantiles: list[float], held: list[str]) -> dict:
    """Per quantile: known-majority clusters flagged inside, held-out-majority ones not, as
    ``score`` counts them; and whether 0.1 (the default) reproduces the stored flags."""
    from curator import discover, embeddings
    from curator.library import open_library
    from curator.library.models import Image

    from sqlalchemy import select

    lib = open_library(db)
    with lib.session() as s:
        e = embeddings.find_embedder(s, "lite0")
        known = discover.class_centres(s, e)
        sims = {}
        for k, cid in enumerate(known.ids):
            ids = s.scalars(select(Image.id).where(Image.class_id == cid, Image.status == "active",
                                                   Image.label_state == "labelled").order_by(Image.id)
                            .limit(discover.FLOOR_SAMPLE))
            _, v = embeddings.vectors(s, e, list(ids))
            sims[k] = v @ known.centres[k]
        typical = []
        for c in clusters:
            _, v = embeddings.vectors(s, e, c["ids"])
            info = discover.describe(v, known.centres)
            typical.append((info["nearest"][0][0], info["typical"]))
    lib.close()
    # where each cluster's typical similarity falls among its nearest class's own images (0-1):
    # at quantile q a cluster is inside when this is q or more
    out = {"ranks": [{"cluster": c["cluster"], "majority": c["majority"], "held": c["majority"] in held,
                      "rank": round(float(np.mean(sims[k] < t)), 3)} for (k, t), c in zip(typical, clusters)]}
    for q in quantiles:
        flags = [t >= float(np.quantile(sims[k], q)) for k, t in typical]
        known_c = [f for f, c in zip(flags, clusters) if c["majority"] not in held]
        held_c = [not f for f, c in zip(flags, clusters) if c["majority"] in held]
        out[str(q)] = {"known_flagged_inside": _share(sum(known_c), len(known_c)),
                       "held_not_inside": _share(sum(held_c), len(held_c))}
        if q == discover.INSIDE_QUANTILE:
            out[str(q)]["matches_stored"] = all(f == (c["inside"] is not None) for f, c in zip(flags, clusters))
    return out


# -- one kind -------------------------------------------------------------------------------------


def one_kind(kind: str, args) -> dict:
    from curator import discover

    folder = args.out / f"{kind}-s{args.seed}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    d = prepare_held_out(kind, folder, args.seed, args.held)
    moved = stage_unknown(folder, d, args.seed, args.held_unknown, args.known_unknown)
    db, timing = build({"truth": d["truth"]}, folder)
    _, timing["import unknown"] = cli(db, "import", folder / "files" / "unknown", "--unknown")
    timing["embed"] = embed_lite0(db, args.size)
    truth, states = truth_by_id(db, d)
    pool_n = collections.Counter(truth[i] for i in states)
    print(f"{kind}: pool {len(states)} ({moved} unknown), held out "
          + ", ".join(f"{h} {pool_n[h]}" for h in d["held"]), flush=True)
    settings, kept = {}, {}
    for share, size in [(s, m) for s in args.share for m in args.min_size]:
        listed, seconds = cli(db, "discover", "--embedder", "lite0", "--share", share, "--min-size", size)
        clusters = clusters_of(db, listed)
        r = score(clusters, truth, states, d["held"])
        r |= {"clusters": len(clusters), "clustered": listed["discovery"]["clustered"],
              "noise": listed["discovery"]["noise"], "seconds": round(seconds, 1),
              "discover_cost": discover_costs(clusters, truth, pool_n, d["held"], discover.EXAMPLES)}
        name = f"share {share} min {size}"
        settings[name], kept[name] = r, clusters
        print(f"  {name:18s}: " + ", ".join(f"{h} {v['share']} in {v['clusters']}" for h, v in r["held_out"].items())
              + f"; {r['clusters']} clusters ({r['held_clusters']} held-out), {r['clustered']} clustered,"
              f" noise {r['noise']}; inside: known {r['known_flagged_inside']}, held not {r['held_not_inside']};"
              f" {r['seconds']} s", flush=True)
    default = f"share {args.share[0]} min {args.min_size[0]}"
    quantiles = {name: inside_at(db, kept[name], args.quantiles, d["held"]) for name in kept}
    print(f"  inside by quantile ({default}): " + str({q: v for q, v in quantiles[default].items() if q != "ranks"}),
          flush=True)
    result = {"kind": kind, "seed": args.seed, "held": d["held"], "pool": len(states), "pool_n": dict(pool_n),
              "unknown": moved, "timing": timing, "settings": settings, "inside_quantiles": quantiles,
              "default_clusters": [{k: c[k] for k in ("cluster", "size", "majority", "purity", "inside", "unknown")}
                                   for c in kept[default]]}
    if args.train:
        timing |= train_run(db, args)
        result["find_cost"] = find_costs(db, truth, pool_n, d["held"])
        for h in d["held"]:
            f, g = result["find_cost"]["classes"][h], settings[default]["discover_cost"][h]
            print(f"  review {h}: first seen after {g['first']} (discover) / {f['first']} (find);"
                  f" half after {g['half']} (discover, reaches {g['reached']}) / {f['half']} (find)", flush=True)
    return result


# -- 100,000 pool images --------------------------------------------------------------------------

DIM = 1280
SCALE_EMBEDDER = "bench-1280"


def synthetic_vectors(classes: np.ndarray, seed: int, part: int) -> np.ndarray:
    """Unit float16 vectors for class indices ``classes`` (-1: scattered): mean + class direction
    + an 8-d class-specific spread of modes + noise (see the docstring); ``part`` seeds the noise."""
    rng = np.random.default_rng([seed, 10**6 + part])
    mean = np.abs(np.random.default_rng(seed).normal(size=DIM)).astype(np.float32)
    mean /= np.linalg.norm(mean)
    out = np.empty((len(classes), DIM), np.float16)
    for lo in range(0, len(classes), 5000):
        c = classes[lo:lo + 5000]
        v = np.empty((len(c), DIM), np.float32)
        for k in np.unique(c):
            m = c == k
            r = np.random.default_rng([seed, int(k) + 1])  # the same class is the same wherever it occurs
            direction = r.normal(size=DIM).astype(np.float32) / np.sqrt(DIM)
            modes = r.normal(size=(8, DIM)).astype(np.float32) / np.sqrt(DIM)
            z = rng.normal(size=(int(m.sum()), 8)).astype(np.float32)
            if k < 0:
                v[m] = mean * 0.7 + rng.normal(size=(int(m.sum()), DIM)).astype(np.float32) / np.sqrt(DIM)
            else:
                v[m] = mean * 0.7 + direction * 0.6 + z @ modes * 0.12 \
                    + rng.normal(size=(int(m.sum()), DIM)).astype(np.float32) * (0.35 / np.sqrt(DIM))
        out[lo:lo + 5000] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def scale_library(args) -> tuple[str, dict]:
    """The 100k library with its vectors (made once, kept under ``--out``)."""
    import scale_library as sl
    from sqlalchemy import select

    from curator.library import open_library
    from curator.library.inserts import insert_new
    from curator.library.models import Embedder, Embedding, Image

    folder = args.out / f"scale-{args.scale_images}"
    marker = folder / "made.json"
    url = f"sqlite:///{folder / 'curator.sqlite'}"
    if marker.exists():
        return url, json.loads(marker.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    info = sl.generate(url, folder, args.scale_images, 1000, 40)
    lib = open_library(url)
    with lib.session() as s:
        rows = s.execute(select(Image.id, Image.class_id, Image.label_state).order_by(Image.id)).all()
        e = Embedder(name=SCALE_EMBEDDER, kind="model", model="synthetic", weights=None, dim=DIM)
        s.add(e)
        s.flush()
        eid = e.id
    rng = np.random.default_rng(args.seed)
    ids = np.array([r[0] for r in rows])
    cls = np.array([(r[1] or 0) - 1 for r in rows])  # class ids are 1..1000 -> 0..999
    pool = np.array([r[2] != "labelled" for r in rows])
    u = rng.random(len(rows))
    labelled_cls = cls[~pool]
    cls[pool] = np.where(u[pool] < 0.90, rng.choice(labelled_cls, int(pool.sum())),
                         np.where(u[pool] < 0.98, 1000 + rng.integers(0, 100, int(pool.sum())), -1))
    for lo in range(0, len(ids), 20_000):
        v = synthetic_vectors(cls[lo:lo + 20_000], args.seed, lo)
        with lib.session() as s:
            insert_new(s, Embedding, [{"embedder_id": eid, "image_id": int(i), "vector": v[k].tobytes()}
                                      for k, i in enumerate(ids[lo:lo + 20_000])])
        print(f"\r  stored {min(lo + 20_000, len(ids)):,} vectors", end="", flush=True)
    print()
    lib.close()
    sample = synthetic_vectors(cls[:4000], args.seed, 0).astype(np.float32)
    sims = sample @ sample.T
    same = cls[:4000, None] == cls[None, :4000]
    info |= {"pool": int(pool.sum()), "pool_known": int((pool & (cls >= 0) & (cls < 1000)).sum()),
             "pool_new": int((cls >= 1000).sum()), "pool_scattered": int((cls < 0).sum()),
             "cos_same_class": round(float(sims[same & ~np.eye(4000, dtype=bool)].mean()), 3),
             "cos_other_class": round(float(sims[~same].mean()), 3),
             "made_seconds": round(time.perf_counter() - t0, 1)}
    np.save(folder / "classes.npy", np.stack([ids, cls]))
    marker.write_text(json.dumps(info, indent=1))
    return url, info


STEPS_CHILD = """
import json, sys, time
from pathlib import Path
from curator import discover
from curator.library import open_library
from curator import embeddings, vector_index
marks = []
lib = open_library(sys.argv[1])
t0 = time.perf_counter()
marks.append(("index", 0.0))  # built or brought up to date apart, so the scoring step is the search alone
with lib.session() as s:
    vector_index.open_index(lib, embeddings.find_embedder(s, sys.argv[2]))
r = discover.discover(lib, embedder=sys.argv[2], on_step=lambda name: marks.append((name, time.perf_counter() - t0)))
total = time.perf_counter() - t0
peak = next(int(l.split()[1]) for l in Path('/proc/self/status').read_text().splitlines() if l.startswith('VmHWM:'))
print(json.dumps({"marks": marks, "total": total, "peak_mib": peak / 1024, "discovery": r["discovery"],
                  "clusters": len(r["clusters"])}))
"""


def scale_run(args) -> dict:
    url, info = scale_library(args)
    print(f"scale: {info['images']:,} images, {info['pool']:,} pool ({info['pool_new']:,} of 100 new classes),"
          f" cos same class {info['cos_same_class']}, other {info['cos_other_class']}", flush=True)
    db = url.removeprefix("sqlite:///")
    index = Path(db).parent / "embeddings"  # vector_index.folder
    shutil.rmtree(index, ignore_errors=True)  # a cold first run: the embedding index is built in it
    load = os.getloadavg()
    done = subprocess.run([sys.executable, "-c", STEPS_CHILD, url, SCALE_EMBEDDER], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    steps = json.loads(done.stdout.strip().splitlines()[-1])
    marks = steps["marks"] + [["end", steps["total"]]]
    split = {a[0].split(" ")[0]: round(b[1] - a[1], 1) for a, b in zip(marks, marks[1:])}
    print(f"  cold (child): {steps['total']:.0f} s, peak {steps['peak_mib']:.0f} MiB, steps {split}", flush=True)
    t0 = time.perf_counter()
    command = [CURATOR, "discover", "--embedder", SCALE_EMBEDDER, "--db", db, "--json"]
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    rss = next(int(line.split()[-1]) for line in done.stderr.splitlines() if "Maximum resident" in line)
    listed = json.loads(done.stdout)
    print(f"  warm (CLI): {wall:.0f} s, peak {rss / 1024:.0f} MiB, {len(listed['clusters'])} clusters,"
          f" {listed['discovery']['clustered']:,} clustered", flush=True)
    return {"library": info, "load_before": [round(x, 2) for x in load],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "cold": {"seconds": round(steps["total"], 1), "peak_mib": round(steps["peak_mib"]), "steps": split,
                     "discovery": steps["discovery"], "clusters": steps["clusters"]},
            "warm_cli": {"seconds": round(wall, 1), "peak_mib": round(rss / 1024), "clusters": len(listed["clusters"]),
                         "discovery": listed["discovery"]}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", nargs="*", default=["views", "digits", "photos"], choices=real_images.KINDS)
    ap.add_argument("--out", type=Path, default=HERE / "out" / "discover")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--held", type=int, default=3, help="classes held out of the library")
    ap.add_argument("--held-unknown", type=float, default=0.2, help="of each held-out class, imported as unknown")
    ap.add_argument("--known-unknown", type=float, default=0.02, help="of the known classes' pool, imported as unknown")
    ap.add_argument("--size", type=int, default=128, help="Lite0's input size in pixels")
    ap.add_argument("--share", type=float, nargs="+", default=[0.3, 0.2, 0.5], help="the first is the default")
    ap.add_argument("--min-size", type=int, nargs="+", default=[5, 10], help="the first is the default")
    ap.add_argument("--quantiles", type=float, nargs="+", default=[0.05, 0.1, 0.25])
    ap.add_argument("--no-train", dest="train", action="store_false", help="skip the review cost against find")
    ap.add_argument("--epochs", type=int, default=3, help="the run's training epochs")
    ap.add_argument("--lr", type=float, default=1e-3, help="the run's peak learning rate")
    ap.add_argument("--no-scale", dest="scale", action="store_false", help="skip the 100k pool images")
    ap.add_argument("--scale-images", type=int, default=150_000, help="images in the scale library (~70%% pool)")
    ap.add_argument("--json", type=Path, default=HERE / "out" / "discover.json")
    args = ap.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = {"started": started, "load": os.getloadavg(), "args": {k: str(v) for k, v in vars(args).items()},
               "kinds": []}
    for kind in args.kinds:
        results["kinds"].append(one_kind(kind, args))
        _save(args.json, results)
    if args.scale:
        results["scale"] = scale_run(args)
    results["load_end"] = os.getloadavg()
    _save(args.json, results)


def _save(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
