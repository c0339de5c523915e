"""Options and output helpers shared by the command groups."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from curator.errors import InvalidInput

if TYPE_CHECKING:  # rich loads when a command first prints: `curator --help` prints through Typer
    from rich.console import Console
    from rich.progress import Progress
    from curator.library import Library

DbOption = Annotated[
    Optional[str],
    typer.Option(
        "--db",
        envvar="CURATOR_DB",
        help="The library: a path to its SQLite file or an SQLAlchemy URL [default: db/curator.sqlite].",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
CsvOption = Annotated[bool, typer.Option("--csv", help="Print CSV.")]
PathsOption = Annotated[bool, typer.Option("--paths", help="Print only paths, one per line (for piping).")]
# Options of the commands that list images and act on them (find, similar, discover).
EmbedderOption = Annotated[Optional[str], typer.Option(
    help="Whose embeddings: an embedder or run:NAME [default: the newest `curator embed` one, else the latest"
         " run's].", show_default=False)]
RejectOption = Annotated[Optional[str], typer.Option(help="Action: reject the shown images with this reason.")]
TagOption = Annotated[Optional[str], typer.Option(help="Action: tag the shown images (a saved selection: --tagged T).")]


class _LazyConsole:
    """A rich Console made when first used; it answers everything the Console does."""

    def __init__(self, **options) -> None:
        self._options, self._console = options, None

    def get(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str):
        return getattr(self.get(), name)


# Piped output gets a wide console so tables do not wrap at 80 columns.
console = _LazyConsole(highlight=False, markup=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err_console = _LazyConsole(stderr=True, highlight=False, markup=False, soft_wrap=True)


def open_lib(db: str | None) -> Library:
    from curator.library import open_library  # SQLAlchemy: not for `--help`

    return open_library(db)


def print_json(data) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def print_rows(rows: list[dict], keys: list[str], *, csv_: bool, paths: bool) -> bool:
    """``--paths``: each row's ``path``, one a line; ``--csv``: a header of ``keys``, then each
    row's values. Returns whether either was asked (else the caller prints its table)."""
    if paths:
        for r in rows:
            typer.echo(r["path"])
    elif csv_:
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(keys)
        writer.writerows([r[k] for k in keys] for r in rows)
    return paths or csv_


def show_notes(notes: list[str]) -> None:
    """A service result's notes (which run a command read, and why), on stderr."""
    for note in notes:
        err_console.print(f"Note: {note}")


def table(*columns: str, title: str | None = None) -> Rows:
    """A table to ``add_row`` to and print: rich's, or plain aligned columns past ``PLAIN_ROWS``."""
    return Rows(columns, title)


PLAIN_ROWS = 200  # rich measures every cell: 0.56 s for coverage's 1,000 classes, 0.01 s plain


class Rows:
    """Table rows, printed by rich as its table, or as plain aligned text when there are many."""

    def __init__(self, columns: tuple[str, ...], title: str | None) -> None:
        self.columns, self.title, self.rows = columns, title, []

    def add_row(self, *cells: str) -> None:
        self.rows.append(cells)

    def __rich_console__(self, console, options):
        from rich.table import Table
        from rich.text import Text

        if len(self.rows) <= PLAIN_ROWS:
            t = Table(title=self.title, title_justify="left", show_edge=False, pad_edge=False)
            for c in self.columns:
                t.add_column(c, justify="right" if c in _NUMERIC else "left")
            for row in self.rows:
                t.add_row(*row)
            yield t
            return
        widths = [max(len(str(cells[i])) for cells in (self.columns, *self.rows)) for i in range(len(self.columns))]
        align = [str.rjust if c in _NUMERIC else str.ljust for c in self.columns]

        def line(cells) -> str:
            return "  ".join(a(str(c), w) for a, c, w in zip(align, cells, widths)).rstrip()

        lines = ([self.title] if self.title else []) + [line(self.columns), line("-" * w for w in widths)]
        yield Text("\n".join(lines + [line(row) for row in self.rows]), no_wrap=True, overflow="ignore")


_NUMERIC = {"Labelled", "Real", "Staged", "Synthetic", "Benchmark", "Rejected", "Images", "Id", "Confidence",
            "Needs", "Score", "Similarity", "Pool predicted", "Confident", "Epochs", "Best val acc", "Precision", "Recall", "F1", "Support"}


def baseline_text(baseline: dict) -> str:
    """The majority-class baseline in words, naming a bigger class it passed over (no images here)."""
    text = f"majority baseline {baseline['accuracy']:.3f}, always {baseline['class']}"
    skipped = baseline.get("without_images") or []  # evaluations stored before it was recorded lack it
    if skipped:
        text += f"; {', '.join(skipped)} {'has' if len(skipped) == 1 else 'have'} more training images but none here"
    return text


def read_refs(images: list[str] | None, file: str | None) -> list[str]:
    """Image references from arguments and from a file (``-`` is stdin), one per line."""
    refs = list(images or [])
    if file == "-":
        refs += sys.stdin.read().split("\n")
    elif file:
        path = Path(file)
        if not path.is_file():
            raise InvalidInput(f"no such file: {file}")
        refs += path.read_text().split("\n")
    return [r.strip() for r in refs if r.strip()]


def parse_since(since: str | None) -> datetime | None:
    """A ``--since`` date (``YYYY-MM-DD``, or any ISO date and time), None when not given."""
    try:
        return datetime.fromisoformat(since) if since else None
    except ValueError:
        raise InvalidInput(f"--since {since}: write a date as YYYY-MM-DD") from None


def progress(quiet: bool = False) -> Progress:
    """A progress bar on stderr (so --json output stays clean): done/total, images/s, ETA."""
    from rich.progress import (
        BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed or 0:>6.0f} images/s")

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err_console.get(),
        disable=quiet or not err_console.is_terminal, transient=True,
    )


@contextmanager
def status(first: str, quiet: bool = False) -> Iterator:
    """A spinner on stderr (terminals only) whose message the work updates: yields ``say(msg)``."""
    if quiet or not err_console.is_terminal:
        yield lambda msg: None
        return
    with err_console.status(first + "...") as spinner:
        yield lambda msg: spinner.update(msg + "...")


# What a command whose service saves batch by batch says when stopped.
BATCHES_SAVED = "Interrupted: every batch finished so far is saved; run the same command again to finish."


@dataclass
class Stoppable:
    """What a long command hands its service: ``should_stop`` (polled: a Ctrl-C or SIGTERM came)
    and ``on_progress(done, total)`` (the progress bar); the command sets ``interrupted`` from
    the service's answer."""

    should_stop: GracefulStop
    on_progress: Callable[..., None] = lambda done, total=None: None
    interrupted: bool = False


@contextmanager
def stoppable(stopping: str, interrupted: str | None, *, task: str | None = None,
              quiet: bool = False) -> Iterator[Stoppable]:
    """The frame of a long command that Ctrl-C or SIGTERM stops gracefully.

    The first signal prints ``stopping`` and asks the service to stop after the unit of work in
    hand; a second stops now. Then, or when the body sets ``job.interrupted``, the command
    prints ``interrupted`` (when given) and exits with 130. With ``task``, a progress bar on
    stderr (none under ``quiet``) follows ``job.on_progress``.

    Example: ``with stoppable("Stopping after this batch is saved", "Interrupted: ...", task="embedding") as job:``
    """
    job = Stoppable(GracefulStop(f"{stopping} (Ctrl-C again to stop now)..."))
    try:
        with progress(quiet=quiet or task is None) as bar:
            if task is not None:
                shown = bar.add_task(task, total=None)
                job.on_progress = lambda done, total=None: bar.update(shown, completed=done, total=total)
            yield job
    except KeyboardInterrupt:
        job.interrupted = True
    if job.interrupted:
        if interrupted:
            err_console.print(interrupted)
        raise typer.Exit(130)


class GracefulStop:
    """First Ctrl-C or SIGTERM: finish the unit of work in hand, save, then stop. Second: stop now.

    Installs itself for SIGINT and SIGTERM (so `kill` stops as cleanly as Ctrl-C); the library
    polls it as ``should_stop()``. Raising KeyboardInterrupt in the middle of a database commit
    or a checkpoint write is what a graceful stop avoids.
    """

    def __init__(self, message: str) -> None:
        self.asked, self.message = False, message
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self)

    def __call__(self, signum=None, frame=None) -> bool:
        if signum is None:  # polled by the library
            return self.asked
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True
        err_console.print(self.message)
        return True
