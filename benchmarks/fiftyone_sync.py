"""``curator browse``'s dataset build and refresh, against a plain ``Dataset.add_samples``.

A library of N images (rows written straight into SQLite: the files are never read, as neither
side reads them) with 200 classes, 70% labelled, 30% unlabelled, a split build and a finished
run whose top-5 predictions cover every image. In a fresh process per N, with FiftyOne's
database in a scratch folder (started before any timing):

  build       ``fiftyone_sync.sync`` on a new library: read the library, add every sample,
              save the views (low-confidence, look-alike per class, low-count...)
  views       of which saving the views (timed again on its own)
  refresh     ``sync`` again with nothing changed
  refresh 1%  ``sync`` after relabelling 1% of the images in the library
  plain       ``fo.Dataset(...).add_samples`` of the same samples (same fields, built from
              rows already in memory), no views

Usage:
    .venv/bin/python benchmarks/fiftyone_sync.py                 # 10k and 50k, ~6 minutes
    .venv/bin/python benchmarks/fiftyone_sync.py --n 10000 --json benchmarks/out/fiftyone_sync.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from measure import print_result, result_of  # noqa: E402

OUT = HERE / "out"
CLASSES = 200


def make_library(db: Path, n: int):
    """A library of ``n`` image rows with labels, a build and a run's predictions."""
    from sqlalchemy import insert

    from curator.library import init_library, open_library
    from curator.library.models import (
        LABELLED, UNLABELLED, Image, LabelClass, Prediction, Run, SplitBuild, SplitMember,
    )

    init_library(db)
    lib = open_library(db)
    rng = random.Random(0)
    names = [f"class-{c:03d}" for c in range(CLASSES)]
    with lib.session() as s:
        s.execute(insert(LabelClass), [{"name": c} for c in names])
        build = SplitBuild(name="b", classes=json.dumps(names))
        s.add(build)
        s.flush()
        run = Run(name="r", build_id=build.id, model="resnet18", status="done", folder="runs/r",
                  classes=json.dumps(names))
        s.add(run)
        s.flush()
        images, members, predictions = [], [], []
        for i in range(1, n + 1):
            cls = rng.randrange(CLASSES)
            labelled = rng.random() < 0.7
            images.append({"id": i, "sha256": f"{i:064x}", "bytes": 50_000, "width": 640, "height": 480,
                           "path": f"/data/images/{i:07d}.jpg", "source": "bench",
                           "label_state": LABELLED if labelled else UNLABELLED,
                           "class_id": cls + 1 if labelled else None})
            if labelled:
                members.append({"build_id": build.id, "image_id": i,
                                "split": rng.choices(["train", "val", "test"], [8, 1, 1])[0]})
            conf = sorted((rng.random() for _ in range(5)), reverse=True)
            total = sum(conf) * 1.2
            top = [[names[rng.randrange(CLASSES)], round(c / total, 4)] for c in conf]
            predictions.append({"run_id": run.id, "image_id": i, "predicted": top[0][0],
                                "confidence": top[0][1], "top_k": json.dumps(top)})
        for table, rows in ((Image, images), (SplitMember, members), (Prediction, predictions)):
            for k in range(0, len(rows), 10_000):
                s.execute(insert(table), rows[k:k + 10_000])
    return lib


def relabel_some(lib, share: float) -> int:
    """Relabel ``share`` of the labelled images to another class (with history, as a user would)."""
    from sqlalchemy import select

    from curator import labels
    from curator.library.models import LABELLED, Image

    with lib.session() as s:
        images = list(s.scalars(select(Image).where(Image.label_state == LABELLED).order_by(Image.id)))
        picked = images[:: max(1, int(1 / share))]
        for k, image in enumerate(picked):
            labels.relabel(s, [image], f"class-{k % CLASSES:03d}")
        return len(picked)


def child(n: int, scratch: str) -> dict:
    from curator import fiftyone_database, fiftyone_internals, fiftyone_samples, fiftyone_sync, fiftyone_views

    lib = make_library(Path(scratch) / "lib" / "curator.sqlite", n)
    fo = fiftyone_database.connect(lib)
    fo.list_datasets()  # starts mongod: not timed
    out = {"n": n}
    started = time.perf_counter()
    built = fiftyone_sync.sync(lib, "r")
    out["build_s"] = time.perf_counter() - started
    dataset = fiftyone_sync.open_dataset(lib, create=False)
    dataset.info = {**dataset.info, "views": {}}  # forget them: all are saved again
    dataset.save()
    started = time.perf_counter()
    fiftyone_views.save_views(lib, dataset, fiftyone_samples.resolve_run(lib, "r")[0])
    out["views_s"] = time.perf_counter() - started
    out["views"] = len(built["views"])
    started = time.perf_counter()
    again = fiftyone_sync.sync(lib, "r")
    out["refresh_s"] = time.perf_counter() - started
    assert again["added"] == again["updated"] == 0
    out["relabelled"] = relabel_some(lib, 0.01)
    started = time.perf_counter()
    changed = fiftyone_sync.sync(lib, "r")
    out["refresh_1pct_s"] = time.perf_counter() - started
    assert changed["updated"] == out["relabelled"], changed
    rows = list(fiftyone_samples.library_rows(lib, fiftyone_samples.resolve_run(lib, "r")[0]).values())
    started = time.perf_counter()
    plain = fo.Dataset("plain")
    plain.add_samples([fo.Sample(filepath=r["path"], tags=fiftyone_samples.sample_tags(r),
                                **{f: fiftyone_internals.label_object(v) for f, v in fiftyone_samples.sample_fields(r).items()})
                      for r in rows], progress=False)
    out["plain_s"] = time.perf_counter() - started
    assert len(plain) == len(dataset) == n
    out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def measure(n: int) -> dict:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fo-sync-", dir=OUT) as scratch:
        env = {**os.environ, "FIFTYONE_DO_NOT_TRACK": "true", "FIFTYONE_SHOW_PROGRESS_BARS": "false"}
        proc = subprocess.run([sys.executable, __file__, "--child", str(n), scratch], env=env,
                              capture_output=True, text=True, timeout=3600)
        result = result_of(proc.stdout)
        if proc.returncode or result is None:
            sys.exit(f"N={n} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.child:
        print_result(child(int(args.child[0]), args.child[1]))
        return
    rows = []
    print(f"{'N':>7} {'build':>8} {'(views)':>8} {'refresh':>8} {'1% changed':>10} {'plain add':>10}  peak")
    for n in args.n:
        r = measure(n)
        rows.append(r)
        print(f"{n:>7,} {r['build_s']:7.1f}s {r['views_s']:7.1f}s {r['refresh_s']:7.1f}s {r['refresh_1pct_s']:9.1f}s"
              f" {r['plain_s']:9.1f}s  {r['peak_mib']:.0f} MiB  ({r['views']} views, {r['relabelled']} relabelled)",
              flush=True)
    for r in rows:
        print(f"N={r['n']:,}: build {r['build_s'] / r['plain_s']:.2f}x plain add_samples;"
              f" unchanged refresh {r['refresh_s']:.1f} s ({r['refresh_s'] / r['build_s']:.0%} of a build)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
