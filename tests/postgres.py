"""A private, throwaway PostgreSQL server for the tests that need one (Debian's `postgresql`
package, never its system service). Helpers only: pytest collects nothing here; conftest.py's
`pg_server` (one per test session) and `pg_url` (a fresh database per test) fixtures use them.

    def test_something(pg_url):  # postgresql+psycopg://curator@127.0.0.1:PORT/test_3
        init_library(pg_url)

`cluster()` runs `initdb` into a new folder under /tmp (trust authentication, superuser
`curator`) and starts the server with `pg_ctl`, listening on 127.0.0.1 only, on a free port,
with its unix socket in that folder; on exit it stops the server and deletes the folder.
PostgreSQL refuses to run as root: as root, the folder is handed to the `postgres` user the
package creates (`nobody` where there is none) and initdb/pg_ctl run as that user
(subprocess's `user=`/`group=`). The folder is made with `tempfile` rather than pytest's
tmp_path, whose parents are private to root.

Where the binaries are missing the tests skip, saying what to install; .ci/run sets
CURATOR_REQUIRE_POSTGRES=1, and there they fail instead.
"""

from __future__ import annotations

import glob
import importlib.util
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SUPERUSER = "curator"
# A throwaway cluster: durability buys nothing and costs seconds.
SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
            "max_connections": "50"}


def bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin holding initdb and pg_ctl (else initdb on PATH)."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if not found and shutil.which("initdb"):
        found = [Path(shutil.which("initdb")).parent]
    return next((d for d in reversed(found) if (d / "pg_ctl").exists()), None)


def missing() -> str | None:
    """Why a PostgreSQL test cannot run here, or None."""
    if bin_dir() is None:
        return "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
    if importlib.util.find_spec("psycopg") is None:
        return "no psycopg driver (pip install 'psycopg[binary]')"
    return None


def required() -> bool:
    """.ci/run sets CURATOR_REQUIRE_POSTGRES=1: there a missing server fails, never skips."""
    return os.environ.get("CURATOR_REQUIRE_POSTGRES") == "1"


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running cluster: where it listens, and a way to make databases on it."""

    port: int
    folder: Path
    host: str = "127.0.0.1"
    user: str = SUPERUSER
    _names: itertools.count = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str | None = None, template: str | None = None) -> str:
        """Create a database (``test_N`` unless named; empty, or a copy of ``template``, which
        must have no open connections) and return its SQLAlchemy URL."""
        import psycopg

        name = name or f"test_{next(self._names)}"
        copy = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(host=self.host, port=self.port, user=self.user, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)


def _runner():
    """subprocess.run with the right user: ourselves, or as root the `postgres` user."""
    if os.geteuid() != 0:
        return None, subprocess.run
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        account = pwd.getpwnam("nobody")

    def run(cmd, **kw):
        return subprocess.run(cmd, user=account.pw_uid, group=account.pw_gid, extra_groups=[], **kw)

    return account, run


def _check(result: subprocess.CompletedProcess, what: str, log: Path | None = None) -> None:
    if result.returncode != 0:
        tail = log.read_text()[-2000:] if log and log.exists() else ""
        raise RuntimeError(f"{what} failed ({result.returncode}): {result.stdout}{result.stderr}{tail}")


@contextmanager
def cluster(tries: int = 3):
    """Start a private cluster; yields its `Server` and stops and deletes it afterwards.

    Raises:
        RuntimeError: initdb or pg_ctl failed (their output and the server log say why).
    """
    bin_ = bin_dir()
    if bin_ is None:
        raise RuntimeError(missing())
    folder = Path(tempfile.mkdtemp(prefix="curator-pg-"))
    account, run = _runner()
    if account is not None:
        os.chown(folder, account.pw_uid, account.pw_gid)
    data, log = folder / "data", folder / "server.log"
    quiet = dict(cwd=folder, capture_output=True, text=True)
    started = False
    try:
        _check(run([bin_ / "initdb", "-D", data, "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                    "--locale=C", "--no-sync"], **quiet), "initdb")
        for attempt in range(tries):  # another process may take the free port first
            port = free_port()
            opts = " ".join([f"-h 127.0.0.1 -p {port} -k {folder}",
                             *(f"-c {k}={v}" for k, v in SETTINGS.items())])
            result = run([bin_ / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o", opts,
                          "start"], **quiet)
            if result.returncode == 0:
                started = True
                break
            if attempt == tries - 1:
                _check(result, "pg_ctl start", log)
        yield Server(port=port, folder=folder)
    finally:
        if started:
            run([bin_ / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"], **quiet)
        shutil.rmtree(folder, ignore_errors=True)
