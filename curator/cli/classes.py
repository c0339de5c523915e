"""``curator classes``: the class table, and add / rename / merge."""

from __future__ import annotations

from typing import Annotated

import typer

from curator.cli.common import DbOption, JsonOption, console, open_lib, print_json, table
from curator.defaults import DEFAULT_MIN_COUNT

app = typer.Typer(help="Classes and sub-classes: counts, add, rename, merge.")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="classes")


MinCount = Annotated[int, typer.Option("--min-count", help="Mark classes with fewer labelled images than this.", min=1)]


@app.callback(invoke_without_command=True)
def classes(ctx: typer.Context, min_count: MinCount = DEFAULT_MIN_COUNT,
            db: DbOption = None, json_: JsonOption = False) -> None:
    """Count images per class and sub-class; mark classes below --min-count.

    Counts are of labelled images: active, real (neither staged nor synthetic), staged,
    synthetic, benchmark and rejected.

    Example: curator classes --min-count 35
    """
    if ctx.invoked_subcommand is not None:
        return
    from curator import classes as classes_lib

    lib = open_lib(db)
    rows = classes_lib.class_table(lib, min_count)
    states = classes_lib.state_counts(lib)
    if json_:
        return print_json({"min_count": min_count, "classes": rows, **states})
    t = table("Class", "Sub-class", "Labelled", "Real", "Staged", "Synthetic", "Benchmark", "Rejected", "Status")
    keys = ("labelled", "real", "staged", "synthetic", "benchmark", "rejected")
    for row in rows:
        status = f"needs {row['needs']} more" if row["below_cutoff"] else "ok"
        if row["only_staged_or_synthetic"]:
            status += ", staged/synthetic only"
        t.add_row(row["class"], "", *(str(row[k]) for k in keys), status)
        for sub in row["subclasses"]:
            t.add_row("", sub["subclass"], *(str(sub[k]) for k in keys), "")
    console.print(t)
    below = sum(r["below_cutoff"] for r in rows)
    console.print(
        f"{len(rows)} classes, {below} below --min-count {min_count};"
        f" {states['unknown']} unknown and {states['unlabelled']} unlabelled images."
    )


@app.command("add")
def add(label: Annotated[str, typer.Argument(help="CLASS or CLASS/SUBCLASS.")], db: DbOption = None) -> None:
    """Create a class, or a sub-class with CLASS/SUBCLASS.

    Example: curator classes add kangaroo/joey
    """
    from curator import classes as classes_lib

    spec = classes_lib.add(open_lib(db), label)
    console.print(f"Added {spec}.")


@app.command("rename")
def rename(old: Annotated[str, typer.Argument(help="CLASS or CLASS/SUBCLASS.")],
           new: Annotated[str, typer.Argument(help="The new name.")],
           db: DbOption = None, json_: JsonOption = False) -> None:
    """Rename a class or sub-class; each image's history records the new label.

    Example: curator classes rename kangaroo/joey young
    """
    from curator import labels

    change = labels.rename(open_lib(db), old, new)
    if json_:
        return print_json({"action": "rename", "changed": change.changed})
    console.print(f"Renamed {old} to {new}: {len(change.changed)} images.")


@app.command("merge")
def merge(src: Annotated[str, typer.Argument(help="CLASS or CLASS/SUBCLASS to merge away.")],
          dst: Annotated[str, typer.Argument(help="CLASS or CLASS/SUBCLASS to merge into.")],
          db: DbOption = None, json_: JsonOption = False) -> None:
    """Move every image of SRC to DST and delete SRC (history kept). Class into class keeps
    sub-classes.

    Example: curator classes merge wallaby kangaroo
    """
    from curator import labels

    change = labels.merge(open_lib(db), src, dst)
    if json_:
        return print_json({"action": "merge", "changed": change.changed})
    console.print(f"Merged {src} into {dst}: {len(change.changed)} images relabelled.")
