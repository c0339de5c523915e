"""``curator import``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from curator import decode
from curator.cli.common import (
    DbOption,
    JsonOption,
    console,
    err_console,
    open_lib,
    print_json,
    stoppable,
)

if TYPE_CHECKING:
    from curator.ingest import ImportSummary


def register(app: typer.Typer) -> None:
    app.command("import", help=import_.__doc__.replace("{formats}", decode.formats_line()))(import_)


def import_(
    paths: Annotated[list[str], typer.Argument(help="Image files and folders (walked recursively).")],
    labels_from_folders: Annotated[bool, typer.Option(help="Label by folder: ROOT/class/[subclass/]file; a folder 'unknown' marks unknown.")] = False,
    class_: Annotated[Optional[str], typer.Option("--class", help="Label every new image with this class (created if new).")] = None,
    subclass: Annotated[Optional[str], typer.Option(help="...and this sub-class of it.")] = None,
    unknown: Annotated[bool, typer.Option("--unknown", help="Mark every new image unknown (class not known yet).")] = False,
    staged: Annotated[bool, typer.Option("--staged", help="Flag every new image as staged.")] = False,
    synthetic: Annotated[bool, typer.Option("--synthetic", help="Flag every new image as synthetic.")] = False,
    benchmark: Annotated[bool, typer.Option("--benchmark", help="Put every new image in the benchmark set.")] = False,
    source: Annotated[Optional[str], typer.Option(help="Name of this source [default: the first folder's name].")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Processes hashing images [default: all cores].", min=1)] = None,
    commit_every: Annotated[int, typer.Option(help="Files per transaction: a kill loses at most this many.", min=1)] = 256,
    max_pixels: Annotated[int, typer.Option(help="Refuse images of more pixels than this (decompression bombs);"
                                                 " files over 89.5 Mpx with under 1 byte per 100 pixels are refused anyway.",
                                            min=1)] = decode.MAX_PIXELS,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Import images: hashes, metadata and labels; same bytes twice are one image.

    Re-running is a no-op, and an interrupted import resumes where it stopped. Unreadable files
    are recorded as rejected with the reason, and never stop the run. Every mode is read
    (palette, 1-bit, 16-bit, float, CMYK, animated, multi-page). {formats} A file found again
    at a new place becomes its image's path when the old one is gone (a moved folder).

    Example: curator import sample_data/library --labels-from-folders
    """
    if subclass and not class_:
        raise typer.BadParameter("--subclass needs --class", param_hint="--subclass")
    from curator import ingest
    from curator.library.models import LABELLED, label_text

    label = label_text(LABELLED, class_, subclass) if class_ else class_

    lib = open_lib(db)
    with stoppable("Stopping after the images read so far are saved",
                   "Interrupted: every image recorded so far is kept; run the same command again to resume.",
                   task="importing", quiet=json_) as job:
        summary = ingest.import_paths(
            lib, paths, labels_from_folders=labels_from_folders, label=label,
            unknown=unknown, staged=staged, synthetic=synthetic, benchmark=benchmark,
            source=source, workers=workers, commit_every=commit_every, max_pixels=max_pixels,
            on_progress=job.on_progress, should_stop=job.should_stop,
        )
        job.interrupted = summary.interrupted
    if json_:
        return print_json(summary.to_dict())
    _print_summary(summary)


def _print_summary(s: ImportSummary) -> None:
    console.print(
        f"Imported {s.added} new images from {s.files} files in {s.seconds:.1f} s"
        f" ({s.images_per_second:.0f} files/s; batch {s.batch_id}):"
        f" {s.duplicates} duplicate paths, {s.unchanged} unchanged, {len(s.rejected)} rejected,"
        f" {len(s.failed)} unreadable, {s.ignored} non-image files ignored."
    )
    if s.readmitted:
        console.print(f"{s.readmitted} images unreadable at an earlier import were read this time: active again.")
    if s.moved:
        console.print(f"{s.moved} images had moved: their old path is gone, the path found now is theirs.")
    for warning in s.warnings:
        err_console.print(f"Warning: {warning}")
    if s.added_by_label:
        console.print("New images by label: " + ", ".join(f"{k} {v}" for k, v in sorted(s.added_by_label.items())))
    for title, rows in (("Rejected", s.rejected), ("Could not read", s.failed)):
        if rows:
            console.print(f"{title}:")
            for path, reason in rows:
                console.print(f"  {path}: {reason}")
    if s.conflicts:
        console.print("Same bytes under a different label (the first label was kept; check them):")
        for path, folder, kept in s.conflicts:
            console.print(f"  {path}: folder says {folder}, image is {kept}")
