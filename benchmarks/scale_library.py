"""The library benchmarks/scale.py times: generated in bulk, and the PostgreSQL server it lives on.

``generate(url, folder, n, classes, min_count)`` makes a valid curator library of ``n`` images
(see scale.py's docstring for what is in it): ``init_library`` runs the migrations, then rows
go in with the DBAPI (SQLite ``executemany`` in chunks, PostgreSQL ``COPY``) with foreign-key
checks off; PostgreSQL is ANALYZEd after, SQLite is left as a user's library is.
``add_new_images`` appends unlabelled images at real file paths (for dedup and bulk-identify).

``pg_server(folder)`` starts Debian's PostgreSQL binaries on 127.0.0.1 with the cluster kept in
``folder`` (initdb the first time; trust authentication, fsync off; as root the folder goes to
the ``postgres`` user): the approach of tests/postgres.py, written again here because
benchmarks do not import test helpers, and kept rather than thrown away so a library is reused.
``library(backend, folder)`` yields the kept library's URL on either backend (the server started
for PostgreSQL); ``scratch_copy`` makes the copy the write paths change, ``drop_scratch`` removes it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

EPOCH = datetime(2026, 1, 1)
CHUNK = 20_000
SIGNATURES = 4096  # distinct colour signatures to draw from

# --- a private PostgreSQL server (the approach of tests/postgres.py, kept in the size's folder)


def _pg_bin() -> Path | None:
    found = sorted((Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
                   key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


def _as_postgres():
    """subprocess.run as ourselves, or as root as the `postgres` user (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return None, subprocess.run
    account = pwd.getpwnam("postgres")
    return account, lambda cmd, **kw: subprocess.run(cmd, user=account.pw_uid, group=account.pw_gid,
                                                     extra_groups=[], **kw)


@contextmanager
def pg_server(folder: Path):
    """Start the cluster kept in ``folder`` (initdb the first time); yields its base URL."""
    bin_ = _pg_bin()
    if bin_ is None:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    account, run = _as_postgres()
    data, log = folder / "pgdata", folder / "server.log"
    folder.mkdir(parents=True, exist_ok=True)
    if account is not None:
        os.chown(folder, account.pw_uid, account.pw_gid)
    quiet = dict(cwd=folder, capture_output=True, text=True)
    if not (data / "PG_VERSION").exists():
        r = run([bin_ / "initdb", "-D", data, "-U", "curator", "--auth=trust", "-E", "UTF8", "--locale=C",
                 "--no-sync"], **quiet)
        if r.returncode:
            raise RuntimeError(f"initdb failed: {r.stdout}{r.stderr}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opts = (f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=50 -c shared_buffers=512MB")
    r = run([bin_ / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "120", "-o", opts, "start"], **quiet)
    if r.returncode:
        raise RuntimeError(f"pg_ctl start failed: {r.stdout}{r.stderr}{log.read_text()[-2000:]}")
    try:
        yield f"postgresql+psycopg://curator@127.0.0.1:{port}"
    finally:
        run([bin_ / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"], **quiet)


def pg_admin(base: str, sql: str) -> None:
    import psycopg

    port = int(base.rsplit(":", 1)[1])
    with psycopg.connect(host="127.0.0.1", port=port, user="curator", dbname="postgres", autocommit=True) as c:
        c.execute(sql)


# --- the library on its backend, and a copy of it for the write paths


@contextmanager
def library(backend: str, folder: Path):
    """The library's URL (a server started for PostgreSQL), the server's base URL, and its env."""
    env = {**os.environ}
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'curator.sqlite'}", None, env
        return
    with pg_server(folder) as base:
        if not (folder / "generated.json").exists():
            pg_admin(base, "DROP DATABASE IF EXISTS scale")
            pg_admin(base, "CREATE DATABASE scale")
        (folder / "home").mkdir(exist_ok=True)
        yield f"{base}/scale", base, {**env, "CURATOR_HOME": str(folder / "home")}


def scratch_copy(backend: str, url: str, folder: Path, base: str | None):
    """A copy of the library for the write paths: (url, env home) ; removed by ``drop_scratch``."""
    if backend == "sqlite":
        target = folder.parent / (folder.name + "-scratch")
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for f in folder.glob("curator.sqlite*"):
            shutil.copyfile(f, target / f.name)
        shutil.copytree(folder / "runs", target / "runs")
        return f"sqlite:///{target / 'curator.sqlite'}", target
    pg_admin(base, "DROP DATABASE IF EXISTS scale_scratch")
    pg_admin(base, "CREATE DATABASE scale_scratch TEMPLATE scale")
    return f"{base}/scale_scratch", folder / "home"


def drop_scratch(backend: str, target: Path, base: str | None) -> None:
    """Remove ``scratch_copy``'s copy: its folder (SQLite) or its database (PostgreSQL)."""
    if backend == "sqlite":
        shutil.rmtree(target, ignore_errors=True)
    else:
        pg_admin(base, "DROP DATABASE IF EXISTS scale_scratch")


def vacuum(url: str) -> None:
    """VACUUM ANALYZE the tally tables (PostgreSQL): what autovacuum does within its minute."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        for table in ("image_tallies", "prediction_tallies", "row_tallies"):
            conn.execute(f"VACUUM ANALYZE {table}")


# --- generation


def _stamp(seconds) -> str:
    """A timestamp as SQLAlchemy stores DateTime in SQLite (PostgreSQL's COPY reads it too)."""
    return (EPOCH + timedelta(seconds=int(seconds))).strftime("%Y-%m-%d %H:%M:%S.%f")


def plan(n: int, n_classes: int, min_count: int, seed: int = 0, first_id: int = 1) -> dict:
    """Every image's label, flags, hashes and duplicate partner, as arrays (index i is id first_id+i)."""
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    state = np.where(u < 0.30, 1, np.where(u < 0.33, 2, 0))  # 1 labelled, 2 unknown, 0 unlabelled
    cls = np.full(n, -1)
    lab = np.flatnonzero(state == 1)
    weights = np.arange(1, n_classes, dtype=float) ** -0.7
    cls[lab] = np.where(rng.random(lab.size) < 1 / 3, 0,
                        rng.choice(np.arange(1, n_classes), size=lab.size, p=weights / weights.sum()))
    r = rng.random(n)
    with_sub = (cls >= 0) & (cls % 10 == 0)
    sub = np.where(with_sub & (r < 0.5), 0, np.where(with_sub & (r < 0.75), 1, -1))
    phash = rng.integers(-2**63, 2**63 - 1, size=n, dtype=np.int64)
    color = rng.integers(0, SIGNATURES, size=n)
    dup = rng.choice(np.arange(1, n, 2), size=n // 100, replace=False) if n > 200 else np.array([], int)
    phash[dup] = phash[dup - 1] ^ np.left_shift(np.int64(1), rng.integers(0, 62, size=dup.size))
    color[dup] = color[dup - 1]
    return {"n": n, "first_id": first_id, "state": state, "cls": cls, "sub": sub,
            "rejected": rng.random(n) < 0.02, "staged": (state == 1) & (rng.random(n) < 0.03),
            "synthetic": (state == 1) & (rng.random(n) < 0.02), "phash": phash, "color": color, "dup": dup,
            "rng": rng, "seed": seed, "min_count": min_count, "n_classes": n_classes}


def _signatures(seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed + 99)
    shares = rng.dirichlet(np.ones(8), size=(SIGNATURES, 3)) * 65535
    return [row.round().astype("<u2").tobytes() for row in shares.reshape(SIGNATURES, 24)]


def _sub_id(k: int, j: int) -> int:
    return (k // 10) * 2 + j + 1


def _label(p: dict, i: int) -> str:
    if p["state"][i] == 0:
        return "unlabelled"
    if p["state"][i] == 2:
        return "unknown"
    k, j = int(p["cls"][i]), int(p["sub"][i])
    return f"c{k:04d}" + ("" if j < 0 else f"/{'ab'[j]}")


def image_rows(p: dict, paths: list[str] | None = None):
    """images, image_locations and label_events rows (tuples in the column order of TABLES)."""
    sigs = _signatures(p["seed"])
    groups = {int(d) - 1: g + 1 for g, d in enumerate(p["dup"])}
    groups.update({int(d): g + 1 for g, d in enumerate(p["dup"])})
    images, locations, events = [], [], []
    lid = p.get("first_event", 1)
    for i in range(p["n"]):
        iid = p["first_id"] + i
        path = paths[i] if paths else f"/data/scale/{iid // 1000:04d}/{iid:07d}.jpg"
        at, label = _stamp(iid), _label(p, i)
        state = ("unlabelled", "labelled", "unknown")[p["state"][i]]
        k, j = int(p["cls"][i]), int(p["sub"][i])
        rejected = bool(p["rejected"][i])
        images.append((iid, hashlib.sha256(f"scale-{p['seed']}-{iid}".encode()).hexdigest(), int(p["phash"][i]),
                       640, 480, "JPEG", "RGB", 50_000 + iid % 100_000, None, sigs[p["color"][i]], path, "scale",
                       1, at, "rejected" if rejected else "active", "blurry" if rejected else None, state,
                       k + 1 if k >= 0 else None, _sub_id(k, j) if j >= 0 else None,
                       bool(p["staged"][i]), bool(p["synthetic"][i]), False, None, groups.get(i)))
        locations.append((iid, iid, path, 50_000 + iid % 100_000, 1_700_000_000_000_000_000 + iid,
                          label if state == "labelled" else None, 1, at))
        second = {"labelled": ("label", "label", "unlabelled", label),
                  "unknown": ("unknown", "label", "unlabelled", "unknown"),
                  "unlabelled": ("move", "path", "/old" + path, path)}[state]
        todo = [("import", "label", None, "unlabelled", "import"), (*second, "cli")]
        if rejected:
            todo.append(("reject", "status", "active", "rejected: blurry", "cli"))
        for action, field, old, new, source in todo:
            events.append((lid, iid, at, action, field, old, new, source, None, "batch 1"))
            lid += 1
        if len(images) >= CHUNK:
            yield images, locations, events
            images, locations, events = [], [], []
    p["next_event"] = lid
    yield images, locations, events


def split_rows(p: dict, build_id: int, cutoff: int, seed: int) -> tuple[list[str], list[tuple]]:
    """A build's classes (those with ``cutoff`` active labelled images) and its member rows."""
    ok = (p["state"] == 1) & ~p["rejected"]
    counts = np.bincount(p["cls"][ok], minlength=p["n_classes"])
    keep = counts >= cutoff
    rng = np.random.default_rng(seed + 7)
    chosen = np.flatnonzero(ok & keep[np.maximum(p["cls"], 0)])
    u = rng.random(chosen.size)
    split = np.where(u < 0.8, "train", np.where(u < 0.9, "val", "test"))
    return ([f"c{k:04d}" for k in np.flatnonzero(keep)],
            [(build_id, int(i) + p["first_id"], s) for i, s in zip(chosen, split.tolist())])


def prediction_rows(p: dict, run_id: int, classes: list[str]):
    """One prediction per image: top-5 over the run's classes, and a 512-d float16 embedding."""
    rng = np.random.default_rng(p["seed"] + 1)
    idx = {int(c[1:]): j for j, c in enumerate(classes)}
    weights = np.array([int(c[1:]) + 1 for c in classes], dtype=float) ** -0.7
    weights /= weights.sum()
    m = len(classes)
    for start in range(0, p["n"], CHUNK):
        stop = min(start + CHUNK, p["n"])
        size = stop - start
        own = np.array([idx.get(int(k), -1) for k in p["cls"][start:stop]])
        pick = rng.choice(m, size=size, p=weights)
        pred = np.where((own >= 0) & (rng.random(size) < 0.7), own, pick)
        conf = np.round(rng.beta(2.0, 1.3, size=size), 6)
        step = rng.integers(1, max(2, m // 5), size=size)
        emb = rng.standard_normal((size, 512), dtype=np.float32).astype(np.float16)
        rows = []
        for j in range(size):
            c = float(conf[j])
            top = [[classes[pred[j]], c]]
            for r, share in enumerate((0.4, 0.2, 0.1, 0.05)[:m - 1]):
                top.append([classes[(pred[j] + (r + 1) * step[j]) % m], round(min(c, (1 - c) * share), 6)])
            rows.append((run_id, p["first_id"] + start + j, _stamp(p["first_id"] + start + j), classes[pred[j]],
                         c, json.dumps(top), emb[j].tobytes(), None))
        yield rows


COLUMNS = {
    "import_batches": "id source roots options status started_at finished_at added duplicates rejected unchanged",
    "classes": "id name created_at",
    "subclasses": "id class_id name created_at",
    "duplicate_groups": "id canonical_id created_at updated_at",
    "images": ("id sha256 phash width height format mode bytes exif_orientation color_sig path source batch_id"
               " added_at status reject_reason label_state class_id subclass_id staged synthetic benchmark note"
               " dup_group_id"),
    "image_locations": "id image_id path size mtime_ns folder_label batch_id added_at",
    "label_events": "id image_id at action field old_value new_value source actor detail",
    "dedup_runs": "id started_at finished_at threshold color_threshold last_image_id compared new_pairs groups",
    "duplicate_pairs": "image_a image_b kind distance color_distance run_id",
    "split_builds": "id name created_at params classes report previous_id",
    "split_members": "build_id image_id split",
    "runs": ("id name created_at finished_at status build_id parent_id model params classes throwaway promoted_at"
             " best_epoch best_val_acc best_val_loss epochs_run folder device world_size purpose"),
    "predictions": "run_id image_id created_at predicted confidence top_k embedding error",
}


class Loader:
    """Bulk rows into a library with the DBAPI: SQLite executemany, PostgreSQL COPY (FK checks off)."""

    def __init__(self, url: str):
        from sqlalchemy.engine import make_url

        u = make_url(url)
        self.sqlite = u.get_backend_name() == "sqlite"
        if self.sqlite:
            import sqlite3

            self.conn = sqlite3.connect(u.database)
            self.conn.execute("PRAGMA synchronous=OFF")
            self.conn.execute("PRAGMA cache_size=-262144")
        else:
            import psycopg

            self.conn = psycopg.connect(host=u.host, port=u.port, user=u.username, dbname=u.database)
            self.conn.execute("SET session_replication_role = replica")

    def put(self, table: str, rows) -> None:
        cols = COLUMNS[table].split()
        if self.sqlite:
            self.conn.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                                  rows)
        else:  # bytea as hex text: psycopg's escaping of bytes in a text COPY is far slower
            with self.conn.cursor().copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([("\\x" + v.hex()) if type(v) is bytes else v for v in row])

    def finish(self, tables=()) -> None:
        if not self.sqlite:  # ids were given: move each table's sequence past them
            for t in tables:
                self.conn.execute(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT max(id) FROM {t}))")
        self.conn.commit()
        if not self.sqlite:
            self.conn.autocommit = True
            self.conn.execute("ANALYZE")
        self.conn.close()


def write_checkpoint(folder: Path, classes: list[str]) -> None:
    """runs/r1/best.pt: an untrained test_resnet over the run's classes (bulk-identify reads it)."""
    import timm
    import timm.data

    from curator import checkpoints

    model = timm.create_model("test_resnet", num_classes=len(classes))
    dc = timm.data.resolve_model_data_config(model)
    data_config = {"input_size": [3, 64, 64], "mean": list(dc["mean"]), "std": list(dc["std"]),
                   "interpolation": "bilinear", "crop_pct": 1.0}
    (folder / "runs" / "r1").mkdir(parents=True, exist_ok=True)
    checkpoints.save(checkpoints.describe(model, model_name="test_resnet", classes=classes, data_config=data_config,
                                          epoch=0, metrics={}, build="scale-b1", run="r1", parent=None),
                     folder / "runs" / "r1" / "best.pt")


def generate(url: str, folder: Path, n: int, n_classes: int, min_count: int) -> dict:
    """Create the library at ``url`` and fill it; returns what was made and how long each part took."""
    from curator.library import init_library

    t0 = time.perf_counter()
    init_library(url)
    p = plan(n, n_classes, min_count)
    load = Loader(url)
    now = _stamp(0)
    load.put("import_batches", [(1, "scale", '["/data/scale"]', "{}", "done", now, now, n, 0, 0, 0)])
    load.put("classes", [(k + 1, f"c{k:04d}", now) for k in range(n_classes)])
    load.put("subclasses", [(_sub_id(k, j), k + 1, "ab"[j], now) for k in range(0, n_classes, 10) for j in (0, 1)])
    load.put("duplicate_groups", [(g + 1, int(d) - 1 + 1, now, now) for g, d in enumerate(p["dup"])])
    for images, locations, events in image_rows(p):
        load.put("images", images)
        load.put("image_locations", locations)
        load.put("label_events", events)
    load.put("dedup_runs", [(1, now, now, 8, 0.09, n, n, len(p["dup"]), len(p["dup"]))])
    load.put("duplicate_pairs", [(int(d), int(d) + 1, "phash", 1, 0.0, 1) for d in p["dup"]])
    builds = []
    for b, (cutoff, seed) in enumerate(((max(1, min_count // 4), 0), (max(1, min_count // 2), 1)), start=1):
        classes, members = split_rows(p, b, cutoff, seed)
        params = {"min_count": cutoff, "max_count": None, "val": 0.1, "test": 0.1, "seed": seed, "include_staged": True}
        load.put("split_builds", [(b, f"scale-b{b}", now, json.dumps(params), json.dumps(classes), "{}", None)])
        load.put("split_members", members)
        builds.append({"classes": len(classes), "members": len(members), "names": classes})
    builds[1].pop("names")
    classes = builds[0].pop("names")
    load.put("runs", [(1, "r1", now, now, "done", 1, None, "test_resnet", "{}", json.dumps(classes), False, None,
                       0, 0.5, 1.0, 1, "runs/r1", "cpu", 1, "train")])
    t_rows = time.perf_counter()
    for rows in prediction_rows(p, 1, classes):
        load.put("predictions", rows)
    t_done = time.perf_counter()
    load.finish(("import_batches", "classes", "subclasses", "duplicate_groups", "images", "image_locations",
                 "label_events", "dedup_runs", "split_builds", "runs"))
    write_checkpoint(folder, classes)
    return {"images": n, "classes": n_classes, "min_count": min_count, "builds": builds,
            "run_classes": len(classes), "events": p["next_event"] - 1, "duplicate_groups": len(p["dup"]),
            "seconds": round(time.perf_counter() - t0, 1),
            "prediction_seconds": round(t_done - t_rows, 1), "rows_seconds": round(t_done - t0, 1)}


def add_new_images(url: str, n_new: int, paths: list[str], n_classes: int) -> int:
    """``n_new`` unlabelled images after the last id, at real PNG paths (for dedup and bulk-identify).

    Returns:
        The first new image's id.
    """
    from sqlalchemy import create_engine, func, select

    from curator.library.models import Image, LabelEvent

    engine = create_engine(url)
    with engine.connect() as c:
        first = (c.scalar(select(func.max(Image.id))) or 0) + 1
        first_event = (c.scalar(select(func.max(LabelEvent.id))) or 0) + 1
    engine.dispose()
    p = plan(n_new, n_classes, 1, seed=1, first_id=first)
    p["state"][:], p["cls"][:], p["sub"][:] = 0, -1, -1
    p["rejected"][:], p["staged"][:], p["synthetic"][:] = False, False, False
    p["dup"] = np.array([], int)
    p["first_event"] = first_event
    load = Loader(url)
    for images, locations, events in image_rows(p, paths):
        load.put("images", images)
        load.put("image_locations", locations)
        load.put("label_events", events)
    load.finish(("images", "image_locations", "label_events"))
    return first


def disk_bytes(url: str, folder: Path) -> int:
    if url.startswith("sqlite"):
        return sum(f.stat().st_size for f in folder.glob("curator.sqlite*"))
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    with psycopg.connect(host=u.host, port=u.port, user=u.username, dbname=u.database) as c:
        return c.execute("SELECT pg_database_size(current_database())").fetchone()[0]
