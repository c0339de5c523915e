"""A curator library built from a real image set as a user would build it: through the CLI.

The set is one of ``real_images.KINDS``, staged under ``folder/files/`` as hard links:
``library/<class>/`` (imported labelled, ``--labels-from-folders``) and ``pool/`` (imported
unlabelled). Two stagings:

- ``prepare``: one class held out (labelled nowhere), the others half labelled, half pool, and
  ``MISLABELLED`` pool images labelled as a wrong class; near duplicates planted and look-alike
  pairs listed (what ``embeddings.py`` scores);
- ``prepare_held_out``: ``held`` classes held out, the others half labelled, half pool (what
  ``discover_methods.py`` and ``discover.py`` cluster).

Then ``build`` (``curator init`` and the two imports), ``embed_lite0`` (``curator embed
--weights lite0``) and ``train_run`` (a quick fine-tuned run ``ft`` and its ``bulk-identify``),
each a ``curator ... --db DB --json`` subprocess through ``cli``.

Usage (benchmarks/ on sys.path, as the other benchmarks put it):

    from real_library import build, cli, embed_lite0, prepare_held_out
    d = prepare_held_out("digits", folder, seed=0, held=2)
    db, seconds = build(d, folder)
    embed_lite0(db, 128)
    found, _ = cli(db, "find", "--unfamiliar", "--embedder", "lite0", "--limit", 50)
"""

from __future__ import annotations

import collections
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import real_images

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CURATOR = str(ROOT / ".venv" / "bin" / "curator")
# `train` and `bulk-identify` set torch's threads to the core count; on the project's 2 shared
# cores, busy with other work, one thread trained Lite0 at 64 px 5x faster (23 against 4 images/s).
# THREADS[0] = N runs the CLI with torch held to N threads (0: curator's own choice); embeddings.py
# sets it from --threads.
ONE_THREAD = ("import sys, torch; torch.set_num_threads({n}); torch.set_num_threads = lambda n: None;"
              " from curator.cli import main; sys.argv[0] = 'curator'; sys.exit(main())")
THREADS = [1]
MISLABELLED = 10


def cli(db: Path, *args, json_out: bool = True):
    """``curator ARGS --db DB [--json]`` in a subprocess: its parsed JSON and its wall seconds."""
    head = [sys.executable, "-c", ONE_THREAD.format(n=THREADS[0])] if THREADS[0] else [CURATOR]
    cmd = [*head, *map(str, args), "--db", str(db)] + (["--json"] if json_out else [])
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"curator {' '.join(map(str, args))}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return (json.loads(done.stdout) if json_out else done.stdout), seconds


def rows_of(found) -> list[dict]:
    """The rows of a ``--json`` listing (``find``: a dict with "rows"; others: the list itself)."""
    return found["rows"] if isinstance(found, dict) else found


# -- the data -------------------------------------------------------------------------------------


def prepare(kind: str, folder: Path, seed: int, per_class: int | None, per_kind: int) -> dict:
    """Write the set, choose the held-out class, the halves and the label errors, and stage
    them as hard links: files/library/<class>/ (labelled) and files/pool/ (unlabelled)."""
    data = folder / "data"
    paths, classes = real_images.labelled_set(kind, data, seed)
    rng = random.Random(f"embeddings-{kind}-{seed}")
    by_class = _by_class(paths, classes)
    if per_class:
        by_class = {c: sorted(rng.sample(ps, min(per_class, len(ps)))) for c, ps in by_class.items()}
    held = rng.choice(sorted(by_class))
    library, pool = {}, {}  # path -> (true class, labelled as)
    for c in sorted(by_class):
        members = list(by_class[c])
        rng.shuffle(members)
        half = 0 if c == held else len(members) // 2
        library.update({p: (c, c) for p in members[:half]})
        pool.update({p: (c, None) for p in members[half:]})
    known = sorted(c for c in by_class if c != held)
    for p in rng.sample(sorted(p for p, (c, _) in pool.items() if c != held), MISLABELLED):
        true = pool.pop(p)[0]
        library[p] = (true, rng.choice([c for c in known if c != true]))
    files = folder / "files"
    truth, staged = {}, {}  # staged path -> (true class, labelled as); data path -> staged path
    for k, (p, (true, label)) in enumerate(sorted({**library, **pool}.items())):
        dest = files / ("library" if label else "pool") / (label or "") / f"{k:05d}-{p.name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.link(p, dest)
        truth[str(dest.resolve())], staged[p] = (true, label), str(dest.resolve())
    planted = real_images.plant_duplicates(sorted(staged), data / "planted", seed, per_kind=per_kind)
    negatives = [(a, b, r) for a, b, r in real_images.negative_pairs(kind, data, seed)
                 if r == "skin-tone" or (a in staged and b in staged)]
    return {"kind": kind, "held": held, "truth": truth, "staged": staged, "classes": known, "data": data,
            "planted": planted, "negatives": negatives}


def prepare_held_out(kind: str, folder: Path, seed: int, held: int) -> dict:
    """Stage the set: held-out classes all in the pool, the others half labelled, half pool."""
    paths, classes = real_images.labelled_set(kind, folder / "data", seed)
    rng = random.Random(f"discover-{kind}-{seed}")
    by_class = _by_class(paths, classes)
    out = sorted(rng.sample(sorted(by_class), held))
    truth = {}
    for k, (c, members) in enumerate(sorted(by_class.items())):
        members = sorted(members)
        rng.shuffle(members)
        half = 0 if c in out else len(members) // 2
        for j, p in enumerate(members):
            dest = folder / "files" / ("library/" + c if j < half else "pool") / f"{k:03d}-{j:04d}-{p.name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(p, dest)
            truth[str(dest.resolve())] = c
    return {"held": out, "truth": truth}


def _by_class(paths: list[Path], classes: list[str]) -> dict[str, list[Path]]:
    """class -> its paths, in the set's order."""
    by_class = collections.defaultdict(list)
    for p, c in zip(paths, classes):
        by_class[c].append(p)
    return by_class


def image_ids(lib) -> dict[str, int]:
    """Every imported path (resolved) -> its image id."""
    from sqlalchemy import select

    from curator.library.models import ImageLocation

    with lib.session() as s:
        return {str(Path(p).resolve()): i for i, p in s.execute(select(ImageLocation.image_id, ImageLocation.path))}


# -- the library and its embedders ----------------------------------------------------------------


def build(d: dict, folder: Path) -> tuple[Path, dict]:
    """``curator init`` a library under folder/library/ and import the staged files into it;
    the database's path and the seconds of each import."""
    db = folder / "library" / "curator.sqlite"
    db.parent.mkdir(parents=True)
    cli(db, "init", json_out=False)
    t = {}
    _, t["import library"] = cli(db, "import", folder / "files" / "library", "--labels-from-folders")
    _, t["import pool"] = cli(db, "import", folder / "files" / "pool")
    return db, t


def embed_lite0(db: Path, size: int) -> float:
    """``curator embed --weights lite0 --name lite0 --pool all`` at ``size`` px; its seconds."""
    found, seconds = cli(db, "embed", "--weights", "lite0", "--name", "lite0", "--pool", "all", "--size", size)
    print(f"  embed lite0: {found.get('embedded')} images in {seconds:.0f} s", flush=True)
    return seconds


def train_run(db: Path, args) -> dict:
    """A quick fine-tuned run ``ft`` (Lite0 at 64 px, ``args.epochs`` at ``args.lr``) on a split
    build ``b``, then its ``bulk-identify --pool all``: each step's seconds and the best val."""
    t = {}
    _, t["build-splits"] = cli(db, "build-splits", "--min-count", 10, "--name", "b")
    found, t["train"] = cli(db, "train", "--splits", "b", "--model", "tf_efficientnet_lite0", "--weights", "lite0",
                            "--img-size", 64, "--epochs", args.epochs, "--patience", args.epochs, "--name", "ft",
                            "--lr", args.lr, "--no-score", "--workers", 1, "--batch-size", 32)
    best = next((found[k] for k in ("best_val_acc", "best_val_accuracy", "val_acc") if k in found), None)
    print(f"  train ft: {t['train']:.0f} s, best val {best}", flush=True)
    _, t["bulk-identify"] = cli(db, "bulk-identify", "--run", "ft", "--pool", "all", "--workers", 1)
    t["val_acc"] = best
    return t
