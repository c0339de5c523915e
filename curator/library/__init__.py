"""The image library: where it lives, how to open it, and its schema.

A library is a database (SQLite by default, any SQLAlchemy URL works) plus the folder it lives
in, which also holds FiftyOne's database and the models curator trains. The location comes from
``--db``, then ``CURATOR_DB``, then ``db/curator.sqlite``.

This package never imports torch, timm or fiftyone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from curator.errors import LibraryNotFound, SchemaOutOfDate
from curator.library import schema

DEFAULT_DB = Path("db") / "curator.sqlite"


def resolve_url(db: str | os.PathLike | None = None) -> str:
    """Turn ``--db`` (a path or an SQLAlchemy URL), ``CURATOR_DB`` or the default into a URL."""
    db = db or os.environ.get("CURATOR_DB") or DEFAULT_DB
    text = os.fspath(db)
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets a reader (the FiftyOne sync, a report) run beside a writer (an import); foreign
    # keys are off by default in SQLite and every connection must ask for them.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite connections get WAL mode and foreign keys."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


@dataclass
class Library:
    """An open library: its URL, engine, folder, and a session factory."""

    url: str
    engine: Engine
    home: Path | None = None  # the folder, where it is not the SQLite file's (PostgreSQL)

    def __post_init__(self) -> None:
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def folder(self) -> Path:
        """The library's own folder: FiftyOne's database and trained models live under it.

        An SQLite library's is the file's folder; a server library's is ``home`` when given,
        else ``CURATOR_HOME`` (default ``./db``).
        """
        if self.home is not None:
            return Path(self.home).resolve()
        url = make_url(self.url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return Path(url.database).parent
        return Path(os.environ.get("CURATOR_HOME", "db")).resolve()

    @property
    def display(self) -> str:
        """The URL without a password, for messages."""
        return make_url(self.url).render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        with self._sessions() as s, s.begin():
            yield s

    def close(self) -> None:
        self.engine.dispose()


def _exists(url: str) -> bool:
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:"):
        return True
    return Path(u.database).exists()


@dataclass
class InitResult:
    url: str
    created: bool
    from_revision: str | None
    to_revision: str


def init_library(db: str | os.PathLike | None = None) -> InitResult:
    """Create a library, or upgrade an existing one to this curator's schema.

    Returns:
        What was done: created or upgraded, and from which revision to which.
    """
    url = resolve_url(db)
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database:
        Path(u.database).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    try:
        before = schema.current_revision(engine)
        schema.upgrade(engine)
        return InitResult(url, before is None, before, schema.head_revision())
    finally:
        engine.dispose()


def open_library(db: str | os.PathLike | None = None, *, check_schema: bool = True,
                 home: str | os.PathLike | None = None) -> Library:
    """Open an existing library (``home``: its folder, see `Library.folder`).

    Raises:
        LibraryNotFound: nothing is there yet.
        SchemaOutOfDate: the schema is not the one this curator expects.
    """
    url = resolve_url(db)
    if not _exists(url):
        raise LibraryNotFound(
            f"no library at {make_url(url).database}: create one with `curator init`"
            " (or point --db / CURATOR_DB at an existing one)"
        )
    lib = Library(url, make_engine(url), Path(home) if home is not None else None)
    if check_schema:
        current, head = schema.current_revision(lib.engine), schema.head_revision()
        if current is None:
            lib.close()
            raise LibraryNotFound(f"{lib.display} is not a curator library yet: run `curator init`")
        if current != head and not schema.is_known(current):
            lib.close()
            raise SchemaOutOfDate(
                f"library schema is at revision {current}, newer than this curator knows ({head}):"
                " upgrade curator (pip install -U curator)"
            )
        if current != head:
            lib.close()
            raise SchemaOutOfDate(
                f"library schema is at revision {current}, this curator expects {head}:"
                f" back up {lib.display}, then run `curator db upgrade`"
            )
    return lib
