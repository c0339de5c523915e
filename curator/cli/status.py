"""``curator status``: where the loop stands and the next commands to run."""

from __future__ import annotations

from typing import Annotated

import typer

from curator.cli.common import DbOption, JsonOption, console, open_lib, print_json


def register(app: typer.Typer) -> None:
    app.command("status")(status)


def status(
    min_count: Annotated[int, typer.Option(help="The per-class cutoff the loop aims at.", min=1)] = 40,
    fiftyone: Annotated[bool, typer.Option(
        "--fiftyone/--no-fiftyone",
        help="Look for edits in FiftyOne not yet pulled when the library has a FiftyOne database (starts it).")] = True,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Where the loop stands and what to do next, each with the command to run.

    Checks, in the order a team works: images not compared for duplicates, duplicate groups
    with two labels, embeddings, pool images not looked at for new classes and clusters not yet
    acted on, split builds, runs, pool images the newest run has not predicted, classes within
    reach of the cutoff, unknowns the model now recognises, suspects not yet reviewed, the
    FiftyOne dataset and edits made in it not yet pulled, and a newer run that beats
    production on the benchmark set.

    Example: curator status --min-count 40
    """
    from curator import status as status_lib

    result = status_lib.status(open_lib(db), min_count=min_count, fiftyone=fiftyone)
    if json_:
        return print_json(result)
    c = result["counts"]
    console.print(f"{c['labelled']:,} labelled, {c['unknown']:,} unknown, {c['unlabelled']:,} unlabelled images;"
                  f" newest run: {result['run'] or 'none yet'}; cutoff {result['min_count']}.")
    if not result["next"]:
        console.print("Nothing waiting: the loop is up to date.")
    for i, item in enumerate(result["next"], 1):
        console.print(f"{i:>2}. [{item['check']}] {item['state']}\n      {item['command']}")
