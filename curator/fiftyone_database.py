"""The library's FiftyOne database: one embedded mongod per library, in its folder.

The database lives in the library's folder (``db/fiftyone/``) unless ``FIFTYONE_DATABASE_URI``
names another, and holds one persistent dataset per library, named after its SQLite file
(``db/curator.sqlite`` gives ``curator``). FiftyOne itself joins any running database of the
user whatever its folder; curator only joins one serving this library, and checks that the
port it is given is served from that folder (``curator.fiftyone_internals`` does the part that
needs FiftyOne's internals).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from curator import fiftyone_internals as internals
from curator.errors import CuratorError
from curator.library import Library


class FiftyOneError(CuratorError):
    """FiftyOne's database cannot be used as asked."""


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

    internals.quiet_database_log()
    if external:
        return fo
    if internals.serving_folder() != str(folder):
        # Another library's database, or none yet: a database port inherited from a parent
        # process may be any library's, so curator finds its own.
        internals.disconnect()
        fo.config.database_dir = str(folder)
        internals.use_service(*_start_database(str(folder)))
    return fo


def disconnect() -> None:
    """Leave the database this process uses (see ``fiftyone_internals.disconnect``)."""
    internals.disconnect()


def _start_database(folder: str, attempts: int = 3):
    """Start (or join) the database service for ``folder`` and return it with its port, once a
    mongod on that port answers for that folder: FiftyOne reads the port off the service's child
    processes, and on a busy machine it once came back with one no mongod of this folder served."""
    for _ in range(attempts):
        try:
            service, port = internals.start_service(folder)
        except Exception as e:  # noqa: BLE001  mongod missing, folder not writable...
            raise FiftyOneError(f"cannot start FiftyOne's database in {folder}: {e}") from None
        if _serves(port, folder):
            return service, port
        internals.stop_service(service)
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


def where(lib: Library) -> str:
    """The database in use, for messages (a URI's password hidden)."""
    uri = os.environ.get("FIFTYONE_DATABASE_URI")
    return re.sub(r"//([^:/@]+):[^@/]+@", r"//\1:***@", uri) if uri else str(database_dir(lib))
