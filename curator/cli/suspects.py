"""``curator suspects``: labelled images whose label is probably wrong."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from curator.cli.common import DbOption, JsonOption, console, err_console, open_lib, print_json, table


def register(app: typer.Typer) -> None:
    app.command("suspects")(suspects)


def suspects(
    run: Annotated[str, typer.Option(help="The run whose build and options to use: a name or id, 'latest' or 'production'.")] = "latest",
    folds: Annotated[int, typer.Option(help="Out-of-sample predictions from this many throw-away runs.", min=2)] = 5,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs per fold run [default: the run's].", min=1)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the fold assignment and training.")] = 0,
    limit: Annotated[Optional[int], typer.Option(help="Show at most this many.", min=1)] = None,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Rank labelled images whose label is probably wrong (k-fold confident learning).

    Trains one throw-away run per fold (suspects-RUN-foldN) with the run's options; a re-run
    reuses them. Fold runs are helper runs: never the latest run, nor any command's default,
    and `curator runs` lists them only with --all.

    Example: curator suspects --run latest --folds 5
    """
    from curator import suspects as suspects_lib

    result = suspects_lib.suspects(open_lib(db), run, folds=folds, epochs=epochs, seed=seed,
                                   on_fold=lambda f, n: err_console.print(f"fold {f}/{n} predicted"))
    rows = result["suspects"][:limit] if limit else result["suspects"]
    if json_:
        return print_json({**result, "suspects": rows})
    t = table("Id", "Label", "Suspected", "Score", "Path")
    for r in rows:
        t.add_row(str(r["image_id"]), r["label"], r["suspected"], f"{r['score']:.3f}", r["path"])
    console.print(t)
    console.print(f"{len(result['suspects'])} suspect labels among {result['images']} images"
                  f" ({result['folds']} folds of {result['run']}); score: the probability of the given label.")
