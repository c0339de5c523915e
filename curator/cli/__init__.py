"""The ``curator`` command: a thin Typer layer over the ``curator`` library.

Every command parses its options, opens the library, makes one library call and shows the
result. This package is the only place that prints or exits; a ``CuratorError`` becomes
``Error: ...`` on stderr with exit code 1. A command imports its library modules (and with them
SQLAlchemy) when it runs, so ``curator --help`` and ``curator COMMAND --help`` stay instant.
"""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

from curator.errors import CuratorError


class _Group(TyperGroup):
    """Turns a CuratorError raised anywhere below, or the database refusing (a server that
    cannot be reached, a library locked too long), into one line and exit code 1."""

    def parse_args(self, ctx, args):
        # `curator --db X stats`: options belong to the command, so say where --db goes.
        if args and (args[0] == "--db" or args[0].startswith("--db=")):
            value = args[0].partition("=")[2] if "=" in args[0] else (args[1] if len(args) > 1 else "PATH")
            rest = args[1:] if "=" in args[0] else args[2:]
            command = " ".join(rest) if rest else "COMMAND"
            typer.echo(f"Error: --db goes after the command: curator {command} --db {value}", err=True)
            raise typer.Exit(1)
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CuratorError as e:
            typer.echo(f"Error: {e}", err=True)
            raise typer.Exit(1) from None
        except Exception as e:
            if not _database_failed(e):
                raise
            first = str(e.orig if e.orig is not None else e).strip().splitlines()[0]
            typer.echo(f"Error: the library's database failed: {first}", err=True)
            raise typer.Exit(1) from None


def _database_failed(e: Exception) -> bool:
    """An SQLAlchemy OperationalError, checked without importing SQLAlchemy for `--help`:
    a command that never loaded it cannot have raised one."""
    exc = sys.modules.get("sqlalchemy.exc")
    return exc is not None and isinstance(e, exc.OperationalError)


app = typer.Typer(
    cls=_Group,
    help="curator: curate an image library, train on it, and find what to label next.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

from curator.cli import (  # noqa: E402
    browse, classes, dedup, demo, discover, embed, filters, ingest, labels, library, locations, predict, report, serve,
    similar, splits, status, suspects, sweep, train,
)

for group in (status, library, ingest, locations, labels, classes, dedup, splits, train, sweep, predict, embed, filters, similar,
              discover, suspects, browse, serve, report, demo):  # register commands
    group.register(app)


def main() -> None:
    app()
