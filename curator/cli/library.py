"""Library commands: init, db upgrade/current, stats, show, history."""

from __future__ import annotations

from typing import Annotated

import typer

from curator.cli.common import DbOption, JsonOption, console, open_lib, print_json, table


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    db_app = typer.Typer(help="Manage the library's database schema.", no_args_is_help=True)
    db_app.command("upgrade")(upgrade)
    db_app.command("current")(current)
    db_app.command("revision")(revision)
    app.add_typer(db_app, name="db")
    app.command("stats")(stats)
    app.command("show")(show)
    app.command("history")(show_history)


def init(db: DbOption = None) -> None:
    """Create a library, or bring an existing one up to date.

    Example: curator init --db db/curator.sqlite
    """
    from curator.library import init_library

    r = init_library(db)
    if r.created:
        console.print(f"Created library {r.url} (schema {r.to_revision}).")
    elif r.from_revision != r.to_revision:
        console.print(f"Upgraded library {r.url} from schema {r.from_revision} to {r.to_revision}.")
    else:
        console.print(f"Library {r.url} is up to date (schema {r.to_revision}).")


def upgrade(db: DbOption = None) -> None:
    """Upgrade the library's schema to this curator's (back the file up first).

    Example: curator db upgrade --db db/curator.sqlite
    """
    from curator.library import open_library

    open_library(db, check_schema=False).close()  # a clear error if there is nothing there
    init(db)


def current(db: DbOption = None) -> None:
    """Print the library's schema revision and the one this curator expects.

    Example: curator db current
    """
    from curator.library import open_library, schema

    lib = open_library(db, check_schema=False)
    try:
        console.print(f"library: {schema.current_revision(lib.engine)}  expected: {schema.head_revision()}")
    finally:
        lib.close()


def revision(message: Annotated[str, typer.Argument(help="What the schema change does.")]) -> None:
    """For developers: write a new migration from the models' changes (review it, then commit).

    Example: curator db revision "add image tags"
    """
    from curator.library import schema

    console.print(f"Wrote {schema.new_revision(message)}")


def stats(db: DbOption = None, json_: JsonOption = False) -> None:
    """Summarise the whole library: images by state, flags, formats, classes.

    Example: curator stats --json
    """
    from curator import catalog

    lib = open_lib(db)
    data = catalog.stats(lib)
    if json_:
        return print_json(data)
    t = table("What", "Count")
    for key in ("images", "active", "labelled", "unknown", "unlabelled", "rejected", "staged",
                "synthetic", "benchmark", "classes", "subclasses", "duplicate_locations",
                "import_batches", "history_rows"):
        t.add_row(key.replace("_", " "), str(data[key]))
    t.add_row("size", f"{data['bytes'] / 1e6:.1f} MB")
    t.add_row("formats", ", ".join(f"{k} {v}" for k, v in data["formats"].items()))
    console.print(f"Library {data['library']} (schema {data['schema']})")
    console.print(t)


ImageArg = Annotated[str, typer.Argument(help="An image id, a path it was imported from, or a sha256 prefix.")]


def show(image: ImageArg, db: DbOption = None, json_: JsonOption = False) -> None:
    """Show one image: label, flags, metadata, locations and recent history.

    Example: curator show 42
    """
    from curator import catalog

    data = catalog.show(open_lib(db), image)
    if json_:
        return print_json(data)
    for key, value in data.items():
        if key in ("locations", "history"):
            continue
        if value is not None and value is not False:  # `not in (None, False)` hides a 0
            console.print(f"{key:>16}: {value}")
    for loc in data["locations"]:
        extra = f"  (folder label {loc['folder_label']})" if loc["folder_label"] else ""
        console.print(f"{'location':>16}: {loc['path']}{extra}")
    _print_events(data["history"])


def show_history(image: ImageArg, db: DbOption = None, json_: JsonOption = False) -> None:
    """Show every change ever made to an image's label, status, flags and note.

    Example: curator history sample_data/library/animal-bird/bird-1f426-google.png
    """
    from curator import catalog

    events = catalog.image_history(open_lib(db), image)
    if json_:
        return print_json(events)
    _print_events(events)


def _print_events(events: list[dict]) -> None:
    t = table("When (UTC)", "Action", "Field", "Old", "New", "Source", "Who", "Detail")
    for e in events:
        t.add_row(e["at"], e["action"], e["field"], e["old"] or "", e["new"] or "", e["source"],
                  e["actor"] or "", e["detail"] or "")
    console.print(t)
