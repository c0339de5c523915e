"""Import benchmark: curator's ``import_paths`` against FiftyOne, on N generated photos.

For each N (1,000 and 10,000 by default) it imports the same folder of JPEGs three ways, each
in a fresh subprocess so that peak memory belongs to that run alone:

  curator x2  ``import_paths(lib, [folder], workers=2)`` into a fresh library: images/s, peak
              RSS of the importing process and of its largest child (a pool worker).
  curator x1  the same with ``workers=1``: images/s, and the speed-up of x2 over it.
  fiftyone    ``fo.Dataset.from_images(paths)`` then ``dataset.compute_metadata()``, timed
              together, on FiftyOne's embedded MongoDB in a fresh database folder: images/s,
              peak RSS of the Python process and of its largest descendant (mongod).

Targets: x2 is at least 1.6x faster than x1; curator's peak memory stays flat from N=1k to
N=10k (within 25%); curator x2 is at least as fast per image as FiftyOne while doing more
(sha256 of every byte, a perceptual hash and a decode check, where FiftyOne reads the header).

Images are seeded JPEGs (smooth colour fields, shapes and film grain, so they compress like
photos), 70% 640x480, 20% 1600x1200 and 10% 4000x3000, made once on every core and cached in
benchmarks/out/images/; benchmarks/out/n<N>/ holds hard links to the first N. The set is read
once before the runs to warm the page cache (a VM that pages out cold memory may still send
part of a 4.6 GiB set back to disk).

Before each run, "2-core" measures how much more JPEG decoding two processes get done than one
right then (2.0 on two free cores; less when a VM's neighbours share them): the ceiling for the
speed-up, so a missed target can be told apart from a busy host.

Usage:
    python benchmarks/ingest.py                    # N = 1,000 and 10,000
    python benchmarks/ingest.py --n 1000 --json benchmarks/out/ingest.json
    python benchmarks/ingest.py --quick            # N = 200, a smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import peak_memory, print_result, result_of  # noqa: E402

OUT = HERE / "out"
GEN_VERSION = 1  # bump when the images change: the cache is keyed on it
SIZES = [(640, 480)] * 7 + [(1600, 1200)] * 2 + [(4000, 3000)]  # image i has SIZES[i % 10]
WORKERS = 2
SPEEDUP_TARGET = 1.6
FLAT_TOLERANCE = 1.25  # "flat": the 10k peak is at most 25% above the 1k peak


# -- the images ------------------------------------------------------------------------------


def image_path(i: int) -> Path:
    w, h = SIZES[i % len(SIZES)]
    return OUT / "images" / f"v{GEN_VERSION}-{i:06d}-{w}x{h}.jpg"


def make_image(i: int) -> None:
    """Write image ``i``: a seeded, photo-like JPEG (runs in a pool worker)."""
    import numpy as np
    from PIL import Image, ImageChops, ImageDraw, ImageFilter

    w, h = SIZES[i % len(SIZES)]
    rng, nrng = random.Random(i), np.random.default_rng(i)
    # Shapes on a smooth colour field, drawn at 1/4 scale and blown up: soft edges, cheap.
    sw, sh = w // 4, h // 4
    img = Image.fromarray(nrng.integers(0, 256, (3, 4, 3), dtype=np.uint8))
    img = img.resize((sw, sh), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(8, 20)):
        fill = tuple(rng.randrange(256) for _ in range(3))
        x, y = rng.randrange(sw), rng.randrange(sh)
        box = (x, y, x + rng.randint(sw // 20, sw // 3), y + rng.randint(sh // 20, sh // 3))
        shape = rng.choice(("ellipse", "rectangle", "polygon"))
        if shape == "polygon":
            points = [(rng.randrange(sw), rng.randrange(sh)) for _ in range(rng.randint(3, 6))]
            draw.polygon(points, fill=fill)
        else:
            getattr(draw, shape)(box, fill=fill)
    img = img.filter(ImageFilter.GaussianBlur(1)).resize((w, h), Image.BICUBIC)
    # Grain from a tiled 256x256 noise patch: as costly to compress as real noise, cheap to make.
    noise = (nrng.normal(0, 6, (256, 256)) + 128).clip(0, 255).astype(np.uint8)
    patch, grain = Image.fromarray(noise).convert("RGB"), Image.new("RGB", (w, h))
    for top in range(0, h, 256):
        for left in range(0, w, 256):
            grain.paste(patch, (left, top))
    buf = io.BytesIO()
    ImageChops.add(img, grain, offset=-128).save(buf, "JPEG", quality=90)
    tmp = image_path(i).with_suffix(".part")
    tmp.write_bytes(buf.getvalue())
    tmp.rename(image_path(i))  # a killed run never leaves half an image in the cache


def dataset(n: int) -> tuple[Path, int]:
    """The folder of the first ``n`` images (made if missing) and their total bytes."""
    missing = [i for i in range(n) if not image_path(i).exists()]
    if missing:
        image_path(0).parent.mkdir(parents=True, exist_ok=True)
        print(f"making {len(missing):,} images in {image_path(0).parent} ...", flush=True)
        started = time.perf_counter()
        with multiprocessing.Pool(WORKERS) as pool:
            for _ in pool.imap_unordered(make_image, missing, chunksize=8):
                pass
        print(f"  made in {time.perf_counter() - started:.0f} s", flush=True)
    folder = OUT / f"n{n}"
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {image_path(i).name for i in range(n)}
    for stale in (p for p in folder.iterdir() if p.name not in wanted):
        stale.unlink()
    for i in range(n):
        link = folder / image_path(i).name
        if not link.exists():
            os.link(image_path(i), link)
    return folder, sum(p.stat().st_size for p in folder.iterdir())


def _decode_loop(_=None) -> float:
    """Seconds to decode one 4000x3000 test image 20 times, as an import does."""
    from PIL import Image

    started = time.perf_counter()
    for _ in range(20):
        with Image.open(image_path(9)) as img:
            img.draft("RGB", (128, 128))
            img.load()
    return time.perf_counter() - started


def cpu_scaling() -> float:
    """How much more decoding 2 processes get done than 1, here and now (ideally 2.0).

    A VM's cores may be shared with its neighbours: this is the ceiling for the speed-up.
    """
    one = min(_decode_loop() for _ in range(2))
    with multiprocessing.Pool(WORKERS) as pool:
        both = max(pool.map(_decode_loop, range(WORKERS), chunksize=1))
    return WORKERS * one / both


def read_all(folder: Path) -> None:
    """Read every file once, so every run finds the set in the page cache alike."""
    for p in folder.iterdir():
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass


# -- the measured runs (each in its own subprocess) ------------------------------------------


def run_curator(folder: str, workers: int, scratch: str) -> dict:
    from curator.ingest import import_paths
    from curator.library import init_library, open_library

    db = Path(scratch) / "curator.sqlite"
    init_library(db)
    lib = open_library(db)
    started = time.perf_counter()
    summary = import_paths(lib, [folder], workers=workers)
    seconds = time.perf_counter() - started
    lib.close()
    bad = len(summary.rejected) + len(summary.failed)
    return {"seconds": seconds, "images": summary.added, "problems": bad}


def run_fiftyone(folder: str, workers: int, scratch: str) -> dict:
    """FiftyOne's import with its own database service, started in FIFTYONE_DATABASE_DIR."""
    import fiftyone as fo
    import fiftyone.core.odm.database as fod

    client = fod.get_db_client()  # starts mongod: kept out of the timing, as init_library is
    db_path = client.admin.command("getCmdLineOpts")["parsed"]["storage"]["dbPath"]
    if fod._db_service is None or fod._db_service.attached or db_path != fo.config.database_dir:
        # FiftyOne joins any FiftyOne database service of this user, whatever its folder.
        raise SystemExit(f"FiftyOne attached to another mongod ({db_path}): close other FiftyOne"
                         " sessions (or the App) and run again")
    started = time.perf_counter()
    paths = sorted(str(p) for p in Path(folder).iterdir() if p.suffix == ".jpg")
    ds = fo.Dataset.from_images(paths)
    ds.compute_metadata(num_workers=workers)
    seconds = time.perf_counter() - started
    images = len(ds.exists("metadata"))
    ds.delete()
    stop_mongod(fod)
    return {"seconds": seconds, "images": images, "problems": len(paths) - images}


def stop_mongod(fod) -> None:
    """Stop FiftyOne's database now and wait for it, so its peak memory is counted."""
    service = fod._db_service
    fod._disconnect()
    wrapper = service.child  # fiftyone/service/main.py, the parent of mongod
    service.stop()  # closes the wrapper's stdin: it terminates mongod, waits and exits
    wrapper.wait(timeout=120)


def child_main(kind: str, folder: str, workers: int, scratch: str) -> None:
    result = RUNS[kind](folder, workers, scratch)
    print_result({**result, **peak_memory()})  # peak RSS of this process and of its largest child


RUNS = {"curator": run_curator, "fiftyone": run_fiftyone}


def fiftyone_env(scratch: str) -> dict:
    """Environment for a FiftyOne run on its embedded mongod, in a folder of its own."""
    return {
        **os.environ,
        "FIFTYONE_DATABASE_DIR": str(Path(scratch) / "fiftyone-db"),
        "FIFTYONE_DO_NOT_TRACK": "true",
        "FIFTYONE_SHOW_PROGRESS_BARS": "false",
    }


def measure(kind: str, folder: Path, workers: int) -> dict:
    """Run one import in a fresh interpreter and return its figures."""
    with tempfile.TemporaryDirectory(prefix=f"ingest-{kind}-", dir=OUT) as scratch:
        env = fiftyone_env(scratch) if kind == "fiftyone" else dict(os.environ)
        cmd = [sys.executable, __file__, "--child", kind, str(folder), str(workers), scratch]
        started = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3 * 3600)
        wall = time.perf_counter() - started
        strays = stop_strays(scratch)
        result = result_of(proc.stdout)
        if proc.returncode or result is None:
            sys.exit(f"{kind} run failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    result.update(wall_seconds=wall, strays=strays)
    result["images_per_s"] = result["images"] / result["seconds"]
    return result


def stop_strays(marker: str) -> int:
    """Terminate any process still naming ``marker`` (a run's scratch folder); how many."""
    import psutil

    strays = []
    for p in psutil.process_iter(["cmdline"]):
        if p.pid != os.getpid() and any(marker in a for a in p.info["cmdline"] or ()):
            strays.append(p)
    for p in strays:
        print(f"  warning: stray process {p.pid} {p.info['cmdline'][:2]}: terminating it")
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    psutil.wait_procs(strays, timeout=30)
    return len(strays)


# -- the report ------------------------------------------------------------------------------


def bench(n: int, skip_fiftyone: bool) -> list[dict]:
    folder, size = dataset(n)
    print(f"N={n:,}: {folder} holds {size / 2**30:.2f} GiB ({size / n / 2**10:.0f} KiB/image)")
    read_all(folder)
    plan = [("curator", "curator x2", WORKERS), ("curator", "curator x1", 1)]
    plan += [] if skip_fiftyone else [("fiftyone", "fiftyone", WORKERS)]
    rows = []
    for kind, name, workers in plan:
        scaling = cpu_scaling()  # just before the run: a VM's neighbours come and go
        print(f"  {name} (2-core scaling now {scaling:.2f}x) ...", end=" ", flush=True)
        row = {"n": n, "run": name, "dataset_bytes": size, "cpu_scaling": scaling}
        row.update(measure(kind, folder, workers))
        print(f"{row['images_per_s']:.1f} images/s, {row['wall_seconds']:.0f} s in all")
        if row["images"] != n or row["problems"]:
            print(f"  warning: {row['images']} of {n} images imported, {row['problems']} problems")
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    head = f"{'N':>7}  {'run':<11} {'data GiB':>8} {'seconds':>8} {'images/s':>9}"
    head += f" {'peak MiB':>9} {'child MiB':>10} {'wall s':>7} {'2-core':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['n']:>7,}  {r['run']:<11} {r['dataset_bytes'] / 2**30:>8.2f} {r['seconds']:>8.1f}"
            f" {r['images_per_s']:>9.1f} {r['peak_mib']:>9.0f} {r['child_peak_mib']:>10.0f}"
            f" {r['wall_seconds']:>7.0f} {r['cpu_scaling']:>5.2f}x"
        )
    return "\n".join(lines)


def verdicts(rows: list[dict]) -> list[str]:
    """The targets, each with the figures it was judged on."""
    by = {(r["n"], r["run"]): r for r in rows}
    ns = sorted({r["n"] for r in rows})
    out = []
    for n in ns:
        x2, x1, fo = by[n, "curator x2"], by[n, "curator x1"], by.get((n, "fiftyone"))
        speedup = x2["images_per_s"] / x1["images_per_s"]
        text = f"N={n:,} speed-up x2/x1 {speedup:.2f}x (2-core scaling {x2['cpu_scaling']:.2f}x)"
        out.append(_verdict(text, speedup >= SPEEDUP_TARGET, f">= {SPEEDUP_TARGET}x"))
        if fo:
            ratio = x2["images_per_s"] / fo["images_per_s"]
            out.append(_verdict(f"N={n:,} curator x2 / fiftyone {ratio:.2f}x", ratio >= 1, ">= 1x"))
    if len(ns) > 1:
        lo, hi = by[ns[0], "curator x2"], by[ns[-1], "curator x2"]
        for key, what in (("peak_mib", "parent"), ("child_peak_mib", "largest child")):
            growth = hi[key] / lo[key]
            text = f"peak {what} N={ns[0]:,} {lo[key]:.0f} MiB -> N={ns[-1]:,} {hi[key]:.0f} MiB"
            out.append(_verdict(text, growth <= FLAT_TOLERANCE, f"flat: <= {FLAT_TOLERANCE}x"))
    return out


def _verdict(text: str, ok: bool, target: str) -> str:
    return f"{'PASS' if ok else 'FAIL'}  {text} (target {target})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 10000], help="image counts")
    parser.add_argument("--quick", action="store_true", help="N=200 only: a smoke test")
    parser.add_argument("--skip-fiftyone", action="store_true", help="curator runs only")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)  # kind folder workers dir
    args = parser.parse_args(argv)
    if args.child:
        kind, folder, workers, scratch = args.child
        return child_main(kind, folder, int(workers), scratch)
    rows = []
    for n in [200] if args.quick else args.n:
        rows += bench(n, args.skip_fiftyone)
    print("\n" + table(rows) + "\n")
    print("\n".join(verdicts(rows)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
