"""``curator relocate``: images whose folder moved."""

from __future__ import annotations

from typing import Annotated

import typer

from curator.cli.common import DbOption, JsonOption, console, err_console, open_lib, print_json


def register(app: typer.Typer) -> None:
    app.command("relocate")(relocate)


def relocate(
    old: Annotated[str, typer.Argument(help="The folder the images were imported from.")],
    new: Annotated[str, typer.Argument(help="Where that folder is now.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would move; change nothing.")] = False,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Rewrite every image path under OLD to the same path under NEW (a folder that moved).

    A path already recorded under NEW for the same image (NEW was imported too) is merged;
    one that belongs to another image stops the whole move (nothing changes).

    Example: curator relocate /mnt/old-disk/photos /data/photos --dry-run
    """
    from curator import locations

    r = locations.relocate(open_lib(db), old, new, dry_run=dry_run)
    if json_:
        return print_json(r.to_dict())
    verb = "Would move" if r.dry_run else "Moved"
    console.print(f"{verb} {r.images} image paths and {r.locations} locations from {r.old} to {r.new};"
                  f" {r.exist} of the {r.locations} new locations exist, {r.merged} were recorded there already.")
    if r.locations and not r.exist:
        err_console.print(f"Warning: no file exists under {r.new} at the new paths: check the folder name.")
