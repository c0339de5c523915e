"""Every read and write command on a library of N images, on SQLite and PostgreSQL (issue 20).

Generates a valid curator library of ``--images`` N (default 1,000,000) once per backend and
size, and keeps it under benchmarks/out/scale-N-BACKEND/ (git-ignored):

  schema      ``curator.library.init_library(url)``: the migrations make it, as for a user
  classes     1,000 (``--classes``), every tenth with sub-classes a and b; class c0000 holds
              10% of N (what ``relabel --of`` moves), the others share 20% of N on a
              power law (rank^-0.7: a few big classes, a long tail below any cutoff)
  images      30% labelled, 3% unknown, the rest unlabelled; 2% rejected; 3% of the labelled
              staged and 2% synthetic; unique sha256 and random 64-bit pHash; one location each
  history     an import event per image and a second one (label, unknown or a move), plus a
              reject event for the rejected: about 2 an image
  duplicates  1% of the images are a near copy of the one before (pHash one bit off, same
              colour signature): a group and a pair each, and a finished dedup run
  splits      two builds (at a quarter and half the cutoff, seeds 0 and 1)
  run r1      trained on the first build (an untrained ``test_resnet`` checkpoint of its
              classes, so ``bulk-identify`` can run), with top-5 predictions and a 512-d
              float16 embedding on every image

Rows go in with the DBAPI in bulk (SQLite ``executemany`` in chunks, PostgreSQL ``COPY``),
foreign-key checks off while loading; PostgreSQL is then ANALYZEd, SQLite is left as a user's
library is. A later call reuses the library (and runs ``init_library`` on it, so a newer
migration is applied and timed first). The cutoff scales with N: ``--min-count`` defaults to
400 * N / 1,000,000 (400 at 1M, 8 at 20k) so the questions have the same shape at any size.

Then it times, on each backend:

  reads       find --lowest 100 --json, find --low-count, coverage, stats, classes --json and
              find --class C --max-confidence 0.6: the service call in this process (median of
              ``--repeat``) and ``curator ... --db URL`` in a subprocess (median wall, its peak
              RSS from GNU time); and ``curator --help`` start-up
  writes      on a copy of the library made for the call (file copy, or CREATE DATABASE ...
              TEMPLATE), so the kept one stays as generated: relabel --of c0000 (10% of N),
              find --max-confidence 0.5 --limit N/10 --tag, build-splits --min-count M, dedup
              after adding 1% new images (SQL rows pointing at real small PNGs),
              bulk-identify of those 1% with r1 (decode and an untrained test_resnet forward
              included: the database side is the "already predicted" check and the insert),
              two ``curator import`` at once of overlapping folders (``--import-images`` PNGs
              each, half shared; PASS when both finish and every image is there once with all
              its locations), and ``browse --working-set --no-launch`` (SKIP where that mode is missing);
              review r1 (--limit 1000, and every problem of its ~26% build) and the database and
              ranking side of suspects on a build of every labelled image (~30% of N) x 1,000
              classes, fold probabilities fabricated (benchmarks/suspects.py --fabricate)

and prints one table: command, backend, in-process ms, wall s, peak MiB, targets, verdict.
Targets (issue 20): read query <= 100 ms, read command <= 1.0 s wall, start-up <= 0.5 s,
build-splits and browse <= 60 s, no command above 1 GiB peak, PostgreSQL within 2x of SQLite (in-process ms
for reads, wall for writes; differences under 10 ms / 0.1 s do not count).

The PostgreSQL server is Debian's binaries started for the call (initdb once into the size's
folder, trust authentication on 127.0.0.1, fsync off): benchmarks/scale_library.py, with the
generation; the approach of tests/postgres.py, written again because benchmarks do not import
test helpers.

Usage:
    .venv/bin/python benchmarks/scale.py                               # 1M, SQLite and PostgreSQL
    .venv/bin/python benchmarks/scale.py --images 20000 --backend sqlite
    .venv/bin/python benchmarks/scale.py --images 100000 --no-writes --json benchmarks/out/scale.json
    .venv/bin/python benchmarks/scale.py --images 20000 --generate-only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from scale_library import add_new_images, disk_bytes, drop_scratch, generate, library, scratch_copy, vacuum  # noqa: E402

OUT = HERE / "out"
CURATOR = str(ROOT / ".venv" / "bin" / "curator")
TIME = "/usr/bin/time"  # GNU time: the peak RSS of the command alone
BIG = "c0000"  # the class relabel --of moves (10% of N)
TAG = "scale-bench"
MiB = 1024 * 1024

# --- timing


def cli(args: list[str], url: str, env: dict, timeout: float, program: list[str] | None = None) -> dict:
    """``curator ARGS --db URL`` in a subprocess: wall seconds, exit code and peak RSS.

    The peak is /usr/bin/time's (%M) of the command alone: a child's own ru_maxrss would start
    from this process's RSS at the fork, which the in-process timings have made large.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as rss:
        t0 = time.perf_counter()
        proc = subprocess.Popen([TIME, "-f", "%M", "-o", rss.name, *(program or [CURATOR]), *args,
                                 *(["--db", url] if url else [])],
                                stdout=out, stderr=err, env=env, start_new_session=True)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:  # the whole group: time, curator and its workers
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        wall = time.perf_counter() - t0
        err.seek(0)
        tail = [line for line in err.read().decode(errors="replace").splitlines() if line.strip()][-1:]
        kib = rss.read().strip().splitlines()
    return {"wall_s": wall, "peak_mib": int(kib[-1]) / 1024 if kib and kib[-1].isdigit() else float("nan"),
            "rc": proc.returncode, "stderr": ("timed out" if wall > timeout else tail[0][:160] if tail else "")}


def median_cli(args, url, env, repeat, timeout) -> dict:
    runs = [cli(args, url, env, timeout) for _ in range(repeat)]
    bad = next((r for r in runs if r["rc"]), None)
    out = {"wall_s": statistics.median(r["wall_s"] for r in runs), "peak_mib": max(r["peak_mib"] for r in runs)}
    if bad:
        out["error"] = f"exit {bad['rc']}: {bad['stderr']}"
    return out


def in_process(fn, repeat: int) -> dict:
    times = []
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    except Exception as e:  # noqa: BLE001 - a service that changed under us is a row, not a crash
        return {"error": f"{type(e).__name__}: {e}"[:160]}
    return {"query_ms": statistics.median(times) * 1000}


def reads(min_count: int, find_class: str) -> list[tuple]:
    """(name, CLI args, service call) of each read command."""
    from curator import catalog, filters
    from curator.classes import class_table, state_counts

    def classes(lib):
        return class_table(lib), state_counts(lib)

    m = str(min_count)
    return [
        ("find --lowest 100 --json", ["find", "--run", "r1", "--lowest", "100", "--json"],
         lambda lib: filters.find(lib, filters.Query(run="r1", lowest=100))),
        (f"find --low-count --min-count {m} --limit 50",
         ["find", "--run", "r1", "--low-count", "--min-count", m, "--limit", "50"],
         lambda lib: filters.find(lib, filters.Query(run="r1", low_count=True, min_count=min_count, limit=50))),
        (f"coverage --min-count {m}", ["coverage", "--run", "r1", "--min-count", m],
         lambda lib: filters.class_coverage(lib, "r1", min_count=min_count)),
        ("stats", ["stats"], lambda lib: catalog.stats(lib)),
        ("classes --json", ["classes", "--json"], classes),
        (f"find --class {find_class} --max-confidence 0.6 --limit 50",
         ["find", "--run", "r1", "--class", find_class, "--max-confidence", "0.6", "--limit", "50"],
         lambda lib: filters.find(lib, filters.Query(run="r1", predicted=find_class, max_confidence=0.6, limit=50))),
    ]


def time_reads(url: str, env: dict, args) -> list[dict]:
    from curator.library import open_library

    rows = [{"command": "curator --help (start-up)", "kind": "startup",
             **median_cli(["--help"], "", env, args.repeat, args.timeout)}]
    lib = open_library(url, home=env.get("CURATOR_HOME"))
    for name, argv, fn in reads(args.min_count, args.find_class):
        row = {"command": name, "kind": "read", **in_process(lambda: fn(lib), args.repeat)}
        wall = median_cli(argv, url, env, args.repeat, args.timeout)
        row.update({k: v for k, v in wall.items() if k != "error"})
        if "error" in wall:
            row["error"] = "; ".join(filter(None, (row.get("error"), "CLI " + wall["error"])))
        rows.append(row)
        print(f"  {name}: {_fmt(row)}", flush=True)
    lib.close()
    return rows


def _fmt(row: dict) -> str:
    parts = [f"{row['query_ms']:.0f} ms" if "query_ms" in row else "",
             f"{row['wall_s']:.2f} s" if "wall_s" in row else "",
             f"{row['peak_mib']:.0f} MiB" if "peak_mib" in row else "", row.get("error", "")]
    return ", ".join(p for p in parts if p)


def png_paths(count: int) -> list[str]:
    import bulk_identify  # benchmarks/bulk_identify.py: its cached folders of small PNGs

    return sorted(str(p) for p in bulk_identify.png_pool(count).iterdir())


def import_folders(k: int) -> tuple[Path, Path]:
    """Two folders of ``k`` PNGs each sharing k/2 (hard links into one pool of 1.5k)."""
    pool = png_paths(k + k // 2)
    base = OUT / f"scale-import-{k}"
    folders = (base / "a", base / "b")
    if not folders[1].is_dir():
        for folder, chosen in zip(folders, (pool[:k], pool[k // 2:])):
            folder.mkdir(parents=True, exist_ok=True)
            for src in chosen:
                os.link(src, folder / Path(src).name)
    return folders


def concurrent_imports(url: str, env: dict, k: int, timeout: float) -> dict:
    import threading

    from sqlalchemy import create_engine, func, select

    from curator.library.models import Image, ImageLocation

    folders = import_folders(k)
    results = [None, None]

    def one(i):
        results[i] = cli(["import", str(folders[i])], url, env, timeout)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=one, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    engine = create_engine(url)
    with engine.connect() as c:
        like = f"{folders[0].parent}%"
        images = c.scalar(select(func.count(func.distinct(ImageLocation.image_id))).where(ImageLocation.path.like(like)))
        locations = c.scalar(select(func.count()).select_from(ImageLocation).where(ImageLocation.path.like(like)))
        shas = c.scalar(select(func.count()).select_from(Image).where(Image.path.like(like)))
    engine.dispose()
    want = (k + k // 2, 2 * k)
    row = {"wall_s": wall, "peak_mib": max(r["peak_mib"] for r in results)}
    failed = [f"import {'ab'[i]} exit {r['rc']}: {r['stderr']}" for i, r in enumerate(results) if r["rc"]]
    if failed or (images, locations, shas) != (want[0], want[1], want[0]):
        row["error"] = "; ".join(failed) or (f"{images} images / {locations} locations, expected"
                                               f" {want[0]} / {want[1]}")
    return row


def time_writes(backend: str, url: str, folder: Path, base: str | None, env: dict, args) -> list[dict]:
    t0 = time.perf_counter()
    url, home = scratch_copy(backend, url, folder, base)
    env = {**env, "CURATOR_HOME": str(home)}
    from curator.library import init_library

    init_library(url)  # a migration that landed since the reads (the tree is shared) goes in first
    print(f"  copy of the library for the writes: {time.perf_counter() - t0:.1f} s", flush=True)
    n_new = max(1, args.images // 100)
    added = []

    def with_new_images(argv):  # the 1% arrive (untimed) before the first of dedup and bulk-identify
        if not added:
            added.append(add_new_images(url, n_new, png_paths(n_new), args.classes))
        return cli(argv, url, env, args.timeout)

    steps = [
        (f"relabel --of {BIG} ({args.images // 10} images)", "write",
         lambda: cli(["relabel", "--of", BIG, "--class", "c0000x", "--create"], url, env, args.timeout)),
        (f"find --max-confidence 0.5 --limit {args.images // 10} --tag", "write",
         lambda: cli(["find", "--run", "r1", "--max-confidence", "0.5", "--limit", str(args.images // 10),
                      "--tag", TAG, "--paths"], url, env, args.timeout)),
        (f"build-splits --min-count {args.min_count}", "build-splits",
         lambda: cli(["build-splits", "--min-count", str(args.min_count), "--name", "scale-bench"], url, env,
                     args.timeout)),
        (f"dedup after adding {n_new} images (1%)", "write",
         lambda: with_new_images(["dedup"])),
        (f"bulk-identify {n_new} new images (test_resnet)", "write",
         lambda: predicted_new(url, with_new_images(["bulk-identify", "--run", "r1", "--workers", "1"]),
                               added[0], n_new)),
        (f"import x2 at once, {args.import_images} PNGs each, half shared", "write",
         lambda: concurrent_imports(url, env, args.import_images, args.timeout)),
        ("browse --working-set --no-launch", "browse", lambda: browse(url, env, args.timeout)),
        ("review r1 --limit 1000 --json", "write",
         lambda: cli(["review", "r1", "--limit", "1000", "--json"], url, env, args.timeout)),
        ("review r1 --json (every problem)", "write", lambda: cli(["review", "r1", "--json"], url, env, args.timeout)),
        ("suspects on every labelled image x 1000 classes, folds made up", "write",
         lambda: suspects_fabricated(url, env, args)),
    ]
    rows = []
    for name, kind, step in steps:
        try:
            result = {"skip": "--skip"} if name.split()[0] in args.skip else step()
        except Exception as e:  # noqa: BLE001 - a missing feature is a SKIP row, not a crash
            result = {"skip": f"{type(e).__name__}: {e}"[:160]}
        row = {"command": name, "kind": kind, **{k: v for k, v in result.items() if k in
                                                   ("wall_s", "peak_mib", "error", "skip")}}
        if result.get("rc"):
            row["error"] = f"exit {result['rc']}: {result['stderr']}"
        rows.append(row)
        print(f"  {name}: {_fmt(row) or row.get('skip', '')}", flush=True)
    drop_scratch(backend, home if backend == "sqlite" else folder, base)
    return rows


def suspects_fabricated(url: str, env: dict, args) -> dict:
    """suspects' gathering, ranking and storing, fold probabilities made up (no training)."""
    script = [sys.executable, str(HERE / "suspects.py")]
    subprocess.run([*script, "--prepare", "--images", str(args.images * 3 // 10), "--db", url], env=env, check=True,
                   capture_output=True)  # the build and run, untimed
    return cli(["--fabricate"], url, env, args.timeout, program=script)


def predicted_new(url: str, result: dict, first: int, n_new: int) -> dict:
    """bulk-identify's result, an error unless run r1 now has a prediction for each new image."""
    from sqlalchemy import create_engine, func, select

    from curator.library.models import Prediction

    engine = create_engine(url)
    with engine.connect() as c:
        done = c.scalar(select(func.count()).select_from(Prediction)
                        .where(Prediction.run_id == 1, Prediction.image_id >= first))
    engine.dispose()
    if done != n_new and not result.get("rc"):
        result["error"] = f"{done} of the {n_new} new images predicted"
    return result


def browse(url: str, env: dict, timeout: float) -> dict:
    """browse's working-set mode (FiftyOne refreshed, no app), once it exists; SKIP until then."""
    text = subprocess.run([CURATOR, "browse", "--help"], capture_output=True, text=True, env=env).stdout
    if "--working-set" not in text:
        return {"skip": "browse has no --working-set mode yet"}
    return cli(["browse", "--run", "r1", "--working-set", "--no-launch"], url, env, timeout)


# --- the table


TARGETS = {"startup": ("wall_s", 0.5), "read": ("query_ms", 100.0), "build-splits": ("wall_s", 60.0),
           "browse": ("wall_s", 60.0)}


def verdicts(rows: list[dict]) -> None:
    """Each row's targets and PASS/FAIL/SKIP, including PostgreSQL against SQLite's same row."""
    sqlite = {r["command"]: r for r in rows if r["backend"] == "sqlite"}
    for r in rows:
        if "skip" in r:
            r["target"], r["verdict"] = "", "SKIP"
            continue
        checks = []
        if r["kind"] in TARGETS:
            key, limit = TARGETS[r["kind"]]
            checks.append((f"{'<=' + str(int(limit)) + ' ms' if key == 'query_ms' else '<=' + str(limit) + ' s'}",
                           r.get(key, float("inf")) <= limit))
        if r["kind"] == "read":
            checks.append(("<=1.0 s wall", r.get("wall_s", float("inf")) <= 1.0))
        checks.append(("<=1024 MiB", r.get("peak_mib", 0) <= 1024))
        base = sqlite.get(r["command"])
        if r["backend"] == "postgresql" and base and r["kind"] != "startup":
            key, floor = ("query_ms", 10.0) if r["kind"] == "read" else ("wall_s", 0.1)
            if key in r and key in base:
                r["vs_sqlite"] = r[key] / max(base[key], 1e-9)
                checks.append(("<=2x SQLite", r[key] <= 2 * max(base[key], floor)))
        r["target"] = ", ".join(c for c, _ in checks)
        r["verdict"] = "FAIL" if "error" in r or not all(ok for _, ok in checks) else "PASS"


def print_table(rows: list[dict]) -> None:
    head = f"{'command':<50} {'backend':<10} {'in-proc ms':>10} {'wall s':>8} {'peak MiB':>8}  {'target':<42} verdict"
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        ms = f"{r['query_ms']:.0f}" if "query_ms" in r else "-"
        wall = f"{r['wall_s']:.2f}" if "wall_s" in r else "-"
        peak = f"{r['peak_mib']:.0f}" if "peak_mib" in r else "-"
        why = r.get("error") or r.get("skip") or (f"{r['vs_sqlite']:.1f}x SQLite" if "vs_sqlite" in r else "")
        print(f"{r['command'][:50]:<50} {r['backend']:<10} {ms:>10} {wall:>8} {peak:>8}  {r['target']:<42}"
              f" {r['verdict']}{'  ' + why if why else ''}")


# --- one backend


def one_backend(backend: str, args) -> tuple[dict, list[dict]]:
    folder = (args.library or OUT) / f"scale-{args.images}-{backend}"
    marker = folder / "generated.json"
    if args.regenerate or (marker.exists() and json.loads(marker.read_text())["images"] != args.images):
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    info = json.loads(marker.read_text()) if marker.exists() else None
    migrated = None
    with library(backend, folder) as (url, base, env):
        home = folder / "home" if backend == "postgresql" else folder
        if info is None:
            print(f"{backend}: generating {args.images:,} images in {folder} ...", flush=True)
            info = generate(url, home, args.images, args.classes, args.min_count)
            info["disk_bytes"] = disk_bytes(url, folder)
            marker.write_text(json.dumps(info, indent=1))
        else:
            from curator.library import init_library

            t0 = time.perf_counter()
            done = init_library(url)
            if done.from_revision != done.to_revision:
                migrated = {"command": f"db upgrade {done.from_revision} -> {done.to_revision}", "kind": "migration",
                            "wall_s": time.perf_counter() - t0}
                print(f"{backend}: schema {migrated['command']} in {migrated['wall_s']:.1f} s", flush=True)
            if backend == "postgresql":  # what autovacuum does within its minute: visibility maps and
                vacuum(url)  # statistics of the tables a migration made or filled
        print(f"{backend}: {info['images']:,} images, generated in {info['seconds']} s,"
              f" {info['disk_bytes'] / MiB:,.0f} MiB on disk", flush=True)
        if args.generate_only:
            return info, []
        rows = ([migrated] if migrated else []) + time_reads(url, env, args)
        if args.writes:
            rows += time_writes(backend, url, folder, base, env, args)
    for r in rows:
        r["backend"] = backend
    return info, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--min-count", type=int, help="the cutoff [default: 400 * N / 1,000,000, at least 2]")
    parser.add_argument("--find-class", default="c0010", help="the class of find --class C --max-confidence 0.6")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--library", type=Path, help="folder to keep the libraries in [default: benchmarks/out]")
    parser.add_argument("--regenerate", action="store_true", help="make the library again")
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument("--writes", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--import-images", type=int, default=2000, help="PNGs in each concurrent import")
    parser.add_argument("--skip", nargs="+", default=[], metavar="COMMAND",
                        help="write paths to leave out, by first word: relabel find build-splits dedup"
                             " bulk-identify import browse review suspects")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=900, help="seconds before a command is killed (FAIL)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.min_count = args.min_count or max(2, round(400 * args.images / 1_000_000))
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    libraries, rows = {}, []
    for backend in backends:
        libraries[backend], found = one_backend(backend, args)
        rows += found
        verdicts(rows)
        if args.json:  # after each backend: a later one that is stopped keeps the first's figures
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"images": args.images, "min_count": args.min_count,
                                             "libraries": libraries, "rows": rows,
                                             "taken": datetime.now(timezone.utc).isoformat(timespec="seconds")},
                                            indent=1, default=str))
    if rows:
        print_table(rows)


if __name__ == "__main__":
    main()
