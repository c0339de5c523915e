"""Warm start against training from scratch, and what data loading costs, on sample_data.

1. A fresh library from sample_data/ (library + staged), split at --min-count 40 (5 classes)
   and at 35 (7 classes: two classes added).
2. "base": from scratch on the 40 build, to its plateau (early stopping).
3. On the 35 build, "scratch" (random init, learning rate 1e-3) and "warm" (warm-started from
   base: every weight but the classifier, with a fresh 7-class head, and curator's fine-tuning
   defaults: one head-only epoch, then 3e-4); and "warm-plain": the same warm start with the
   from-scratch schedule (``--head-epochs 0 --lr 1e-3``).
4. Prints, per run, epochs run, best epoch and best validation accuracy, test accuracy; and for
   warm: the first epoch whose validation accuracy reaches scratch's best (target: at most a
   third of scratch's best epoch) and whether it ends at least as accurate.
5. Training images/s (epochs 2+, the first includes decoding the cache; each epoch's time
   includes its validation pass) against the model's raw forward+backward+AdamW rate on random
   tensors of the same shape, the best of 6 timings before and after the runs (target: data
   loading, augmentation included, costs under 15%).

Usage:
    .venv/bin/python benchmarks/warm_start.py                       # resnet18 at 64 px, ~5 min
    .venv/bin/python benchmarks/warm_start.py --model test_resnet --epochs 10   # a quick look
    .venv/bin/python benchmarks/warm_start.py --seeds 0 1 2 --json benchmarks/out/warm_start.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from curator import evaluation, ingest, runs, splits, train  # noqa: E402
from curator.library import init_library, open_library  # noqa: E402

SAMPLE = ROOT / "sample_data"


def raw_rate(model_name: str, num_classes: int, img_size: int, batch_size: int, steps: int = 30, repeats: int = 3) -> float:
    """Images/s of forward + backward + AdamW step on random tensors: the ceiling for training.

    The best of ``repeats`` timings: the cores are shared, and the ceiling is what they give
    when nothing else takes them.
    """
    import timm

    model = timm.create_model(model_name, num_classes=num_classes).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch_size, 3, img_size, img_size)
    y = torch.randint(0, num_classes, (batch_size,))
    best = 0.0
    for repeat in range(repeats):
        for i in range(steps + 3):
            if i == 3:  # warm-up steps excluded
                t0 = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        best = max(best, steps * batch_size / (time.perf_counter() - t0))
    return best


def reached(curve: list[dict], target: float) -> int | None:
    return next((r["epoch"] for r in curve if r["val_acc"] is not None and r["val_acc"] >= target), None)


def one_seed(lib, args, seed: int) -> dict:
    cfg = dict(model=args.model, img_size=args.img_size, epochs=args.epochs, patience=args.patience,
               batch_size=args.batch_size, seed=seed)  # learning rate: curator's defaults
    out = {}
    plans = (("base", "min40", None, {}), ("scratch", "min35", None, {}), ("warm", "min35", f"base-s{seed}", {}),
             ("warm-plain", "min35", f"base-s{seed}", {"head_epochs": 0, "lr": args.lr}))
    for name, build, warm, extra in plans:
        t0 = time.perf_counter()
        c = train.TrainConfig(**{**cfg, "model": None if warm else args.model, **extra})
        run = train.train(lib, build, c, name=f"{name}-s{seed}", warm_start=warm)
        curve = runs.epochs(lib, run["name"])
        test = evaluation.evaluate(lib, run["name"], "test")["test"]["metrics"]["accuracy"]
        rates = [r["images_per_s"] for r in curve[1:]] or [curve[0]["images_per_s"]]
        out[name] = {"epochs": run["epochs"], "best_epoch": run["best_epoch"], "best_val_acc": run["best_val_acc"],
                     "test_acc": test, "train_images_per_s": statistics.median(rates),
                     "seconds": time.perf_counter() - t0, "curve": curve}
        print(f"  seed {seed} {name:8s} epochs {run['epochs']:3d}  best epoch {run['best_epoch']:3d}"
              f"  best val acc {run['best_val_acc']:.3f}  test acc {test:.3f}"
              f"  {out[name]['train_images_per_s']:.0f} images/s  {out[name]['seconds']:.0f} s", flush=True)
    target = out["scratch"]["best_val_acc"]
    for name in ("warm", "warm-plain"):
        out[name]["epochs_to_scratch_best"] = reached(out[name]["curve"], target)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3, help="for warm-plain only")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    raw_before = raw_rate(args.model, 7, args.img_size, args.batch_size)  # and again at the end
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "curator.sqlite"
        init_library(db)
        lib = open_library(db)
        ingest.import_paths(lib, [SAMPLE / "library"], labels_from_folders=True)
        ingest.import_paths(lib, [SAMPLE / "staged"], labels_from_folders=True, staged=True)
        b40 = splits.build(lib, min_count=40, name="min40")
        b35 = splits.build(lib, min_count=35, name="min35")
        print(f"min40: {len(b40['classes'])} classes, {b40['totals']}; min35: {len(b35['classes'])} classes,"
              f" {b35['totals']}; {args.model} at {args.img_size} px, torch threads {torch.get_num_threads()}")
        results = [one_seed(lib, args, seed) for seed in args.seeds]
        lib.close()

    raw = max(raw_rate(args.model, 7, args.img_size, args.batch_size), raw_before)
    train_rate = statistics.median(r[k]["train_images_per_s"] for r in results for k in ("base", "scratch", "warm", "warm-plain"))
    report(results, raw, train_rate)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "runs": results,
                                         "raw_images_per_s": raw, "train_images_per_s": train_rate}, indent=2))
        print(f"figures written to {args.json}")


def report(results: list[dict], raw: float, train_rate: float) -> None:
    print()
    for r in results:
        s = r["scratch"]
        third = s["best_epoch"] / 3
        for name in ("warm", "warm-plain"):
            w, e = r[name], r[name]["epochs_to_scratch_best"]
            fast = e is not None and e <= third
            print(f"{'PASS' if fast else 'FAIL'}  {name} reaches scratch's best val acc {s['best_val_acc']:.3f} at epoch"
                  f" {e if e is not None else 'never'} vs scratch's {s['best_epoch']} (target <= {third:.1f})")
            good = w["best_val_acc"] >= s["best_val_acc"] and w["test_acc"] >= s["test_acc"]
            print(f"{'PASS' if good else 'FAIL'}  {name} ends at val {w['best_val_acc']:.3f} / test {w['test_acc']:.3f}"
                  f" vs scratch val {s['best_val_acc']:.3f} / test {s['test_acc']:.3f} (target: at least as accurate)")
    cost = 1 - train_rate / raw
    print(f"{'PASS' if cost < 0.15 else 'FAIL'}  training {train_rate:.0f} images/s vs raw forward+backward"
          f" {raw:.0f} images/s: data loading costs {cost:.0%} (target < 15%)")


if __name__ == "__main__":
    main()
