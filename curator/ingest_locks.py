"""Imports side by side: whose turn it is to write a chunk, and whether a 'running' import is alive.

Two imports into one library (two terminals, or two machines against PostgreSQL) take turns
to write: each chunk's transaction first takes the library's import turn (``take_turn``), then
looks up the hashes and paths it holds and writes them. What another import committed before
is seen, so an image is stored once and a path recorded once. Reading and hashing, the slow
part, still run side by side; only the short writes queue.

- SQLite: the library's one write lock (``classes.write_lock``), taken before the reads.
- PostgreSQL: a transaction-level advisory lock (``pg_advisory_xact_lock``), released at
  commit; labelling and other writers do not take it and are not slowed.

An import's batch is 'running' while it goes. The import holds a lock of its own for as long
as it lives, and the operating system or the server drops it when the process dies (a kill,
a crash); a new import marks 'interrupted' only the running batches whose lock is free
(``alive``): never a live import's, on this machine or another.

- SQLite: a POSIX lock (``lockf``) on a file beside the library (``<file>.import-<batch>.lock``);
  it belongs to the process alone, so the hashing workers it forks do not keep it.
- PostgreSQL: a session-level advisory lock on a connection the import keeps open.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from curator.classes import write_lock
from curator.library import Library

NAMESPACE = 0x43555241  # 'CURA': the first key of curator's advisory locks; the second is 0 for
TURN = 0  # the import turn, else the batch id whose import is alive
_HELD: set[Path] = set()  # lock files this process holds: a POSIX lock never conflicts with
# its own process, and closing any descriptor of the file would drop it


def take_turn(session: Session) -> None:
    """Wait for the library's import turn; held until this transaction ends."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        write_lock(session)
    elif dialect == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(NAMESPACE, TURN)))


def alive(session: Session, lib: Library, batch_id: int) -> bool:
    """Whether the import that runs batch ``batch_id`` still holds its lock."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":  # free: take it for this transaction only, which tells it was
        return not session.scalar(select(func.pg_try_advisory_xact_lock(NAMESPACE, batch_id)))
    path = _lock_file(lib, batch_id)
    if path is None:  # a server without advisory locks: as before, taken for a killed import
        return False
    if path in _HELD:  # this process's own import (one call started inside another)
        return True
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:  # its import is gone
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # EAGAIN or EACCES: another process holds it
        return True
    finally:
        os.close(fd)
    path.unlink(missing_ok=True)
    return False


@contextlib.contextmanager
def holding(lib: Library, batch_id: int) -> Iterator[None]:
    """Hold batch ``batch_id``'s lock while the import runs (see ``alive``)."""
    if lib.engine.dialect.name == "postgresql":
        with lib.engine.connect() as conn:
            conn.execute(select(func.pg_advisory_lock(NAMESPACE, batch_id)))
            conn.commit()  # a session-level lock outlives the transaction
            try:
                yield
            finally:
                conn.execute(select(func.pg_advisory_unlock(NAMESPACE, batch_id)))
                conn.commit()
        return
    path = _lock_file(lib, batch_id)
    if path is None:  # in memory, or a server without advisory locks: nothing to hold
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        _HELD.add(path)
        yield
    finally:
        _HELD.discard(path)
        path.unlink(missing_ok=True)
        os.close(fd)


def _lock_file(lib: Library, batch_id: int) -> Path | None:
    """Beside an SQLite library's file; None for an in-memory one or a server's."""
    url = make_url(lib.url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    database = Path(url.database)
    return database.with_name(f"{database.name}.import-{batch_id}.lock")
