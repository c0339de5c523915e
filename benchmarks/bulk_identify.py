"""``curator bulk-identify`` throughput and memory, against the raw model and FiftyOne.

Two pools of generated images (cached under benchmarks/out/, git-ignored):

  png     small 64x64 PNGs (drawn shapes), like the sample data
  jpeg    large photo-like JPEGs from benchmarks/ingest.py (70% 640x480, 20% 1600x1200,
          10% 4000x3000; 485 KiB each on average)

A resnet18 run at 128 px is trained once (one epoch on sample_data: accuracy does not matter
here). The times include loading the model (about 3 s), as a user's run does. Each measurement runs in a fresh process on a copy of that library with the pool
imported (not timed), and prints images/s and peak memory (the process and its largest
DataLoader worker):

  curator     ``predict.bulk_identify`` over the pool: decode in workers, batches of 64,
              top-5 and embeddings stored
  raw         the same model's forward pass on pre-decoded random tensors, same batch size
              (target: curator at least 0.8 of it on CPU)
  ceiling     the most any pipeline could reach here, decoding and forward sharing the
              cores: cores / (load_pixels CPU time per image, measured per image size and
              weighted by the pool's mix + forward CPU time per image at its most efficient:
              torch's threads as in raw, or one single-threaded stream per core)
  fiftyone    ``Dataset.from_images`` (not timed) then ``apply_model`` with the same torch
              model wrapped in ``TorchImageModel`` (resize to 128, same mean/std), same batch
              size and workers (target: curator faster)

Curator runs at 2,000 and 10,000 images (peak memory must not grow with the pool); the raw and
FiftyOne rates, and the verdicts, are at 10,000.

Usage:
    .venv/bin/python benchmarks/bulk_identify.py                    # ~25 minutes on 2 cores
    .venv/bin/python benchmarks/bulk_identify.py --n 2000 --no-fiftyone
    .venv/bin/python benchmarks/bulk_identify.py --json benchmarks/out/bulk_identify.json
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import ingest as ingest_bench  # noqa: E402  benchmarks/ingest.py: the JPEGs and FiftyOne helpers
from measure import peak_memory, print_result, result_of  # noqa: E402

OUT = HERE / "out"
MODEL_LIB = OUT / "bulk-model"
BATCH = 64


def png_pool(n: int) -> Path:
    """A folder of ``n`` small PNGs (made once)."""
    from PIL import Image, ImageDraw

    folder = OUT / f"png{n}"
    if folder.is_dir() and len(list(folder.iterdir())) == n:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rng = random.Random(i)
        img = Image.new("RGB", (64, 64), tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(img)
        for _ in range(6):
            x, y = rng.randrange(64), rng.randrange(64)
            draw.ellipse((x, y, x + rng.randint(6, 30), y + rng.randint(6, 30)),
                         fill=tuple(rng.randrange(256) for _ in range(3)))
        img.save(folder / f"png-{i:06d}.png")
    return folder


def jpeg_pool(n: int) -> Path:
    return ingest_bench.dataset(n)[0]


def model_library(folder: Path = MODEL_LIB, model: str = "resnet18", img_size: int = 128) -> Path:
    """A library in ``folder`` with one run "bench" of ``model`` at ``img_size`` px (trained once,
    one epoch on sample_data: accuracy does not matter to the benchmarks that use it)."""
    from curator import ingest, splits, train
    from curator.library import init_library, open_library

    db = folder / "curator.sqlite"
    if (folder / "runs" / "bench" / "best.pt").is_file():
        return db
    shutil.rmtree(folder, ignore_errors=True)
    init_library(db)
    lib = open_library(db)
    ingest.import_paths(lib, [ROOT / "sample_data" / "library"], labels_from_folders=True)
    splits.build(lib, min_count=40, name="b")
    train.train(lib, "b", train.TrainConfig(model=model, img_size=img_size, epochs=1), name="bench", throwaway=True)
    lib.close()
    return db


def run_curator(folder: str, scratch: str) -> dict:
    from curator import ingest, predict
    from curator.library import open_library

    shutil.copytree(MODEL_LIB, Path(scratch) / "lib")
    lib = open_library(Path(scratch) / "lib" / "curator.sqlite")
    ingest.import_paths(lib, [folder])
    t0 = time.perf_counter()
    s = predict.bulk_identify(lib, "bench", "unlabelled", batch_size=BATCH)
    seconds = time.perf_counter() - t0
    lib.close()
    return {"seconds": seconds, "images": s.scored, "problems": len(s.errors)}


def run_raw(folder: str, scratch: str) -> dict:
    import torch

    from curator import checkpoints

    ckpt = checkpoints.load(MODEL_LIB / "runs" / "bench" / "best.pt")
    model = checkpoints.build_model(ckpt)
    x = torch.randn(BATCH, 3, 128, 128)
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        t0 = time.perf_counter()
        steps = 40
        for _ in range(steps):
            model(x)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "images": steps * BATCH, "problems": 0}


def run_fiftyone(folder: str, scratch: str) -> dict:
    import fiftyone as fo
    import fiftyone.core.odm.database as fod
    import fiftyone.utils.torch as fout

    from curator import checkpoints
    from curator.data import default_workers

    fod.get_db_client()
    ckpt = checkpoints.load(MODEL_LIB / "runs" / "bench" / "best.pt")
    model = checkpoints.build_model(ckpt)
    dc = ckpt["data_config"]
    paths = sorted(str(p) for p in Path(folder).iterdir())
    ds = fo.Dataset.from_images(paths)
    config = fout.TorchImageModelConfig({
        "model": model, "classes": ckpt["classes"], "image_size": [128, 128], "image_mean": dc["mean"],
        "image_std": dc["std"], "output_processor_cls": "fiftyone.utils.torch.ClassifierOutputProcessor",
        "device": "cpu"})
    t0 = time.perf_counter()
    ds.apply_model(fout.TorchImageModel(config), label_field="predictions", batch_size=BATCH,
                   num_workers=default_workers())
    seconds = time.perf_counter() - t0
    images = len(ds.exists("predictions"))
    ds.delete()
    ingest_bench.stop_mongod(fod)
    return {"seconds": seconds, "images": images, "problems": len(paths) - images}


def side_by_side(target, args_list: list[tuple]) -> float:
    """Run ``target(*args)`` for each args on threads side by side; wall seconds until all end."""
    import threading

    threads = [threading.Thread(target=target, args=args) for args in args_list]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.perf_counter() - t0


def run_ceiling(folder: str, scratch: str) -> dict:
    """What the ceiling needs beyond the raw rate: the decode CPU time per image
    (``data.load_pixels`` one image at a time, median of 30 files per image size, weighted by
    the pool's mix) and the forward CPU time per image with one single-threaded batch per core
    running side by side (``raw`` is the same with torch's threads on one batch)."""
    import os
    import statistics
    from collections import Counter

    import torch

    from curator import checkpoints
    from curator.data import load_pixels

    cores = len(os.sched_getaffinity(0))
    files = sorted(Path(folder).iterdir())
    mix = Counter(f.stem.rsplit("-", 1)[-1] if f.suffix == ".jpg" else "png" for f in files)
    decode = {}
    for size in mix:
        sample = [f for f in files if f.stem.endswith(size) or size == "png"][:30]
        times = []
        for f in sample:
            t = time.perf_counter()
            load_pixels(str(f), 128)
            times.append(time.perf_counter() - t)
        decode[size] = statistics.median(times) * 1e3
    decode_ms = sum(decode[k] * mix[k] for k in mix) / len(files)

    model = checkpoints.build_model(checkpoints.load(MODEL_LIB / "runs" / "bench" / "best.pt"))
    x = torch.randn(BATCH, 3, 128, 128)

    def forward(steps):
        with torch.inference_mode():
            for _ in range(steps):
                model(x)

    torch.set_num_threads(1)
    forward(1)
    seconds = side_by_side(forward, [(6,)] * cores)
    return {"cores": cores, "decode_ms": {k: round(v, 2) for k, v in decode.items()}, "decode_mix_ms": decode_ms,
            "images": 6 * BATCH * cores, "seconds": seconds, "problems": 0}


def ceiling(streams: dict, raw: dict) -> dict:
    """The most any pipeline could reach on these cores, decoding and forward sharing them:
    cores / (decode CPU ms per image + forward CPU ms per image at its most efficient, of torch's
    threads (``raw``) and one single-threaded stream per core (``streams``, the ceiling row))."""
    cores = streams["cores"]
    forward_ms = {"threads": 1000 * cores / raw["images_per_s"], "streams": 1000 * cores / streams["images_per_s"]}
    return {"forward_cpu_ms": forward_ms,
            "ceiling_images_per_s": 1000 * cores / (min(forward_ms.values()) + streams["decode_mix_ms"])}


RUNS = {"curator": run_curator, "raw": run_raw, "fiftyone": run_fiftyone, "ceiling": run_ceiling}


def measure(kind: str, folder: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bulk-{kind}-", dir=OUT) as scratch:
        env = ingest_bench.fiftyone_env(scratch)
        cmd = [sys.executable, __file__, "--child", kind, str(folder), scratch]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3 * 3600)
        ingest_bench.stop_strays(scratch)
    r = result_of(proc.stdout)
    if proc.returncode or r is None:
        print(f"  {kind} failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}", flush=True)
        return {"failed": proc.stderr[-2000:]}
    r["images_per_s"] = r["images"] / r["seconds"]
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--no-fiftyone", action="store_true")
    parser.add_argument("--pools", nargs="+", default=["png", "jpeg"], choices=["png", "jpeg"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.child:
        kind, folder, scratch = args.child
        if kind == "model":
            return model_library()
        # peak memory: this process's (VmHWM) and its largest waited-for child's (DataLoader workers, mongod)
        print_result({**RUNS[kind](folder, scratch), **peak_memory()})
        return
    # Train in a child: this process stays small, so its children start small too.
    subprocess.run([sys.executable, __file__, "--child", "model", "-", "-"], check=True, capture_output=True)
    rows = []
    for pool_kind, make in (("png", png_pool), ("jpeg", jpeg_pool)):
        if pool_kind not in args.pools:
            continue
        for n in args.n:
            folder = make(n)
            kinds = ["curator"] + (["raw", "ceiling"] if n == args.n[-1] else []) + (
                ["fiftyone"] if n == args.n[-1] and not args.no_fiftyone else [])
            for kind in kinds:
                r = {"pool": pool_kind, "n": n, "run": kind, **measure(kind, folder)}
                rows.append(r)
                raw = find(rows, pool_kind, n, "raw")
                if kind == "ceiling" and "failed" not in r and raw:
                    r.update(ceiling(r, raw))
                    print(f"  {pool_kind:4s} N={n:>6,} ceiling  {r['ceiling_images_per_s']:8.1f} images/s at best on"
                          f" {r['cores']} cores: decode {r['decode_mix_ms']:.1f} CPU ms/image {r['decode_ms']},"
                          f" forward {min(r['forward_cpu_ms'].values()):.1f} CPU ms/image", flush=True)
                elif "failed" not in r and kind != "ceiling":
                    print(f"  {pool_kind:4s} N={n:>6,} {kind:8s} {r['images_per_s']:8.1f} images/s"
                          f"  peak {r['peak_mib']:.0f} MiB (worker {r['child_peak_mib']:.0f} MiB)", flush=True)
    verdicts(rows, args.n)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
        print(f"figures written to {args.json}")


def find(rows: list[dict], pool: str, n: int, run: str) -> dict | None:
    """The measurement of ``run`` on that pool, unless it failed."""
    return next((r for r in rows if (r["pool"], r["n"], r["run"]) == (pool, n, run) and "failed" not in r), None)


def verdicts(rows: list[dict], sizes: list[int]) -> None:
    def get(pool, n, run):
        return find(rows, pool, n, run)

    print()
    n = sizes[-1]  # rates at the largest pool, where loading the model weighs least
    for pool in ("png", "jpeg"):
        raw, cur = get(pool, n, "raw"), get(pool, n, "curator")
        if cur and raw:
            share = cur["images_per_s"] / raw["images_per_s"]
            print(f"{'PASS' if share >= 0.8 else 'FAIL'}  {pool} N={n:,}: curator {cur['images_per_s']:.0f} images/s ="
                  f" {share:.2f} of the raw forward rate {raw['images_per_s']:.0f} (target >= 0.8)")
            best = get(pool, n, "ceiling")
            if best and "ceiling_images_per_s" in best:
                print(f"      the most any decode + forward pipeline can reach on {best['cores']} cores:"
                      f" {best['ceiling_images_per_s']:.0f} images/s ="
                      f" {best['ceiling_images_per_s'] / raw['images_per_s']:.2f} of raw")
        fo_row = get(pool, n, "fiftyone")
        if cur and fo_row:
            ok = cur["images_per_s"] > fo_row["images_per_s"]
            print(f"{'PASS' if ok else 'FAIL'}  {pool} N={n:,}: curator {cur['images_per_s']:.0f} vs FiftyOne apply_model"
                  f" {fo_row['images_per_s']:.0f} images/s (target: faster)")
        small, big = get(pool, sizes[0], "curator"), get(pool, sizes[-1], "curator")
        if small and big and len(sizes) > 1:
            grow = big["peak_mib"] / small["peak_mib"]
            print(f"{'PASS' if grow <= 1.25 else 'FAIL'}  {pool}: peak {small['peak_mib']:.0f} MiB at {sizes[0]:,} ->"
                  f" {big['peak_mib']:.0f} MiB at {sizes[-1]:,} (target: flat, <= 1.25x)")


if __name__ == "__main__":
    main()
