"""curator's suspect labels against cleanlab's ``find_label_issues``, on the same probabilities.

10% of the labels are flipped on purpose (to a random other class); both methods get the same
out-of-sample probabilities and the flipped labels; the script prints precision, recall and F1
of each against the truth (target: curator's F1 within 0.02 of cleanlab's).

Probabilities come from two sources:

  synthetic   N images of K classes whose logits favour the true class by a margin, plus
              noise; several N, K and margins, each with 3 seeds.
  sample_data sample_data/library imported into a fresh library with 10% of its labels flipped,
              a test_resnet run at 64 px and ``curator suspects``' own 5-fold out-of-sample
              probabilities (``--no-sample-data`` skips it; a few minutes on 2 cores).

cleanlab is AGPL-3.0: it is installed for this benchmark only (``.venv/bin/pip install
cleanlab``), never imported by curator.

``--fabricate`` times instead the database and ranking side of ``curator suspects`` at scale,
without training, on the library ``--db`` names (use a copy: it adds a build and a run):
``--prepare`` first makes build and run ``suspects-bench`` of up to ``--images`` active labelled
images (all train) and ``--classes`` columns (the images' classes, then spare names); then
``--fabricate`` feeds made-up fold probabilities (rows leaning to the label, 10% to another
class) for each fold's images, a slice at a time, through ``suspects.rank_and_store``: the
gathering, ranking and storing code path of the command. It prints the seconds of each part
as JSON; benchmarks/scale.py runs it under GNU time for the peak RSS.

Usage:
    .venv/bin/python benchmarks/suspects.py
    .venv/bin/python benchmarks/suspects.py --no-sample-data --json benchmarks/out/suspects.json
    .venv/bin/python benchmarks/suspects.py --prepare --images 300000 --classes 1000 --db URL
    /usr/bin/time -f %M .venv/bin/python benchmarks/suspects.py --fabricate --db URL
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from curator.suspects import find_label_issues  # noqa: E402

FLIP = 0.10


def flip(truth: np.ndarray, k: int, rng) -> tuple[np.ndarray, np.ndarray]:
    given = truth.copy()
    idx = rng.choice(len(truth), int(len(truth) * FLIP), replace=False)
    given[idx] = (truth[idx] + rng.integers(1, k, len(idx))) % k
    return given, idx


def synthetic(n: int, k: int, margin: float, seed: int):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k)) + margin * np.eye(k)[truth]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    given, flipped = flip(truth, k, rng)
    return given, probs, flipped


def scores(issues: np.ndarray, flipped: np.ndarray) -> dict:
    truth = np.zeros(len(issues), dtype=bool)
    truth[flipped] = True
    tp = int((issues & truth).sum())
    p = tp / issues.sum() if issues.sum() else 0.0
    r = tp / truth.sum() if truth.sum() else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "flagged": int(issues.sum())}


def compare(name: str, given, probs, flipped) -> dict:
    from cleanlab.filter import find_label_issues as cleanlab_issues

    ours = scores(find_label_issues(given, probs), flipped)
    theirs = scores(cleanlab_issues(given, probs), flipped)
    gap = ours["f1"] - theirs["f1"]
    print(f"  {name:<34} curator P {ours['precision']:.3f} R {ours['recall']:.3f} F1 {ours['f1']:.3f}"
          f"  | cleanlab P {theirs['precision']:.3f} R {theirs['recall']:.3f} F1 {theirs['f1']:.3f}"
          f"  | gap {gap:+.3f}", flush=True)
    return {"case": name, "curator": ours, "cleanlab": theirs, "f1_gap": gap}


def sample_data_probs(folds: int = 5):
    """Flip 10% of sample_data's labels, train, and take curator suspects' fold probabilities."""
    from sqlalchemy import select

    from curator import ingest, labels, predict, splits, suspects, train
    from curator.library import init_library, open_library
    from curator.library.models import Image

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "curator.sqlite"
        init_library(db)
        lib = open_library(db)
        ingest.import_paths(lib, [ROOT / "sample_data" / "library"], labels_from_folders=True)
        splits.build(lib, min_count=20, name="all", val=0.1, test=0.0)
        classes = splits.show(lib, "all")["classes"]
        with lib.session() as s:
            images = [im for im in s.scalars(select(Image).where(Image.label_state == "labelled").order_by(Image.id))
                      if im.label_class.name in classes]
            truth = {im.id: im.label_class.name for im in images}
            picked = rng.choice(len(images), int(len(images) * FLIP), replace=False)
            for j in picked:
                others = [c for c in classes if c != truth[images[j].id]]
                labels.relabel(s, [images[j]], others[rng.integers(len(others))])
        flipped_ids = {images[j].id for j in picked}
        train.train(lib, "all", train.TrainConfig(model="test_resnet", img_size=64, epochs=30, patience=30),
                    name="r", throwaway=True)
        result = suspects.suspects(lib, "r", folds=folds)  # trains the fold runs
        ids, probs = [], []
        for f in range(folds):
            with lib.session() as s:
                held = [i for i in truth if suspects._fold_of(s.get(Image, i).sha256, folds, 0) == f]
            got, p, _ = predict.probabilities(lib, f"suspects-r-fold{f + 1}", held)
            ids += got
            probs.append(p)
        with lib.session() as s:
            given_names = {i: s.get(Image, i).label_class.name for i in ids}
        lib.close()
    index = {c: i for i, c in enumerate(classes)}
    given = np.array([index[given_names[i]] for i in ids])
    flipped = np.array([n for n, i in enumerate(ids) if i in flipped_ids])
    print(f"  sample_data: {len(ids)} images, {len(classes)} classes, {len(flipped)} flipped;"
          f" curator suspects flagged {len(result['suspects'])}")
    return given, np.concatenate(probs), flipped


BENCH = "suspects-bench"  # the build and run --prepare makes


def prepare(url: str, images: int, n_classes: int) -> int:
    """Build and run ``suspects-bench`` (once): up to ``images`` active labelled images, all
    train, and ``n_classes`` columns. Returns the number of images."""
    from sqlalchemy import func, insert, select

    from curator.library import init_library, open_library
    from curator.library.models import (ACTIVE, LABELLED, SUSPECTS_PURPOSE, Image, LabelClass, Run, SplitBuild,
                                        SplitMember)

    init_library(url)  # a library of an older schema is upgraded first
    lib = open_library(url)
    with lib.session() as s:
        build = s.scalar(select(SplitBuild).where(SplitBuild.name == BENCH))
        if build is None:
            labelled = (Image.status == ACTIVE) & (Image.label_state == LABELLED)
            ids = s.scalars(select(Image.id).where(labelled).order_by(Image.id).limit(images)).all()
            names = sorted(s.scalars(select(LabelClass.name).distinct().join(Image, Image.class_id == LabelClass.id)
                                     .where(labelled, Image.id <= ids[-1])))
            classes = json.dumps(names + [f"spare{j:04d}" for j in range(n_classes - len(names))])
            build = SplitBuild(name=BENCH, classes=classes, params="{}", report="{}")
            s.add(build)
            s.flush()
            for start in range(0, len(ids), 50_000):
                s.execute(insert(SplitMember), [{"build_id": build.id, "image_id": i, "split": "train"}
                                                for i in ids[start:start + 50_000]])
            s.add(Run(name=BENCH, build_id=build.id, model="test_resnet", status="done", classes=classes,
                      folder=f"runs/{BENCH}", purpose=SUSPECTS_PURPOSE))
        n = s.scalar(select(func.count()).select_from(SplitMember).where(SplitMember.build_id == build.id))
    lib.close()
    return n


def fabricated(rows, k: int, folds: int, seed: int = 0):
    """Each fold's images' made-up probabilities, ``suspects.SLICE`` at a time, as a fold run
    would give them; the seconds spent making them in ``fabricated.seconds``."""
    import time

    from curator import suspects

    rng = np.random.default_rng(seed)
    names = sorted({r[3] for r in rows})
    index = {c: i for i, c in enumerate(names)}  # the first columns are the images' classes
    ids, labels = np.array([r[0] for r in rows]), np.array([index[r[3]] for r in rows])
    fabricated.seconds = 0.0
    for held in suspects.fold_parts(rows, folds, seed):
        for start in range(0, len(held), suspects.SLICE):
            t0 = time.perf_counter()
            lean = labels[np.searchsorted(ids, held[start:start + suspects.SLICE])]
            flipped = rng.random(len(lean)) < 0.1
            lean[flipped] = rng.integers(0, len(names), flipped.sum())
            logits = rng.standard_normal((len(lean), k), dtype=np.float32)
            logits[np.arange(len(lean)), lean] += 4.0
            logits -= logits.max(1, keepdims=True)
            probs = np.exp(logits, out=logits)
            probs /= probs.sum(1, keepdims=True)
            fabricated.seconds += time.perf_counter() - t0
            yield held[start:start + suspects.SLICE], probs


def fabricate(url: str, folds: int) -> dict:
    """``suspects.rank_and_store`` on run ``suspects-bench`` with fabricated fold probabilities."""
    import time

    from curator import suspects
    from curator.library import open_library

    lib = open_library(url)
    t0 = time.perf_counter()
    run, rows = suspects.labelled_rows(lib, BENCH)
    t1 = time.perf_counter()
    k = len(json.loads(run.classes))
    result = suspects.rank_and_store(lib, run, rows, fabricated(rows, k, folds), folds=folds)
    t2 = time.perf_counter()
    lib.close()
    return {"images": result["images"], "classes": k, "suspects": len(result["suspects"]),
            "rows_s": round(t1 - t0, 2), "fabricating_s": round(fabricated.seconds, 2),
            "gather_rank_store_s": round(t2 - t1 - fabricated.seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-sample-data", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--db", help="the library of --prepare and --fabricate (a copy)")
    parser.add_argument("--prepare", action="store_true", help="make build and run suspects-bench in --db")
    parser.add_argument("--fabricate", action="store_true", help="time rank_and_store on suspects-bench")
    parser.add_argument("--images", type=int, default=300_000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    if args.prepare or args.fabricate:
        out = {"images": prepare(args.db, args.images, args.classes)} if args.prepare else {}
        print(json.dumps({**out, **(fabricate(args.db, args.folds) if args.fabricate else {})}), flush=True)
        return
    results = []
    print("synthetic probabilities, 10% of labels flipped:")
    for n, k, margin in ((1000, 10, 3.0), (1000, 10, 2.0), (10000, 100, 4.0), (5000, 20, 2.5)):
        for seed in range(3):
            results.append(compare(f"N={n} K={k} margin={margin} seed={seed}", *synthetic(n, k, margin, seed)))
    if not args.no_sample_data:
        print("sample_data, test_resnet 5-fold probabilities:")
        results.append(compare("sample_data 5 folds", *sample_data_probs()))
    worst = min(r["f1_gap"] for r in results)
    mean = sum(r["f1_gap"] for r in results) / len(results)
    ok = all(abs(r["f1_gap"]) <= 0.02 or r["f1_gap"] > 0 for r in results)
    print(f"\n{'PASS' if ok else 'FAIL'}  F1 curator - cleanlab: mean {mean:+.3f}, worst {worst:+.3f}"
          f" over {len(results)} cases (target: within 0.02)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
