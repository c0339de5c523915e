"""``curator similar``: the images most like one or several seed images, by embedding."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from curator.cli.common import (
    CsvOption, DbOption, EmbedderOption, JsonOption, PathsOption, RejectOption, TagOption, open_lib,
    show_notes,
)

SIMILARITY = ("Similarity", "similarity", lambda v: f"{v:.4f}")


def register(app: typer.Typer) -> None:
    app.command("similar")(similar)


def similar(
    images: Annotated[list[str], typer.Argument(help="Seed images: ids, imported paths or sha256 prefixes.", show_default=False)],
    embedder: EmbedderOption = None,
    pool: Annotated[str, typer.Option(help="Where to look: unlabelled, unknown, labelled or all (every active image).")] = "unlabelled",
    k: Annotated[int, typer.Option("--k", help="How many images to show (and act on).", min=1)] = 50,
    label: Annotated[Optional[str], typer.Option("--label", "--set-label", help="Action: label the shown images CLASS or CLASS/SUBCLASS.")] = None,
    create: Annotated[bool, typer.Option("--create", help="With --label: create the class if new.")] = False,
    unknown: Annotated[bool, typer.Option("--unknown", "--mark-unknown", help="Action: mark the shown images unknown.")] = False,
    reject: RejectOption = None,
    tag: TagOption = None,
    csv_: CsvOption = False,
    paths: PathsOption = False,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """The images most like the seed images: highest mean cosine similarity to them first.

    The seeds are left out; --pool picks where to look. At most one action (--label, --unknown,
    --reject, --tag) applies to the images shown, each change in label history.

    Example: curator similar 12 40 41 --k 30 --label kangaroo
    """
    from curator import similarity
    from curator.cli.filters import FIND_COLUMNS, act, print_result

    actions = {"label": label, "unknown": unknown or None, "reject": reject, "tag": tag}
    chosen = [(name, None if value is True else value) for name, value in actions.items() if value is not None]
    if len(chosen) > 1:
        raise typer.BadParameter("give at most one action: --label, --unknown, --reject or --tag")
    lib = open_lib(db)
    result = similarity.similar(lib, images, embedder=embedder, pool=pool, k=k)
    show_notes(result["notes"])
    if chosen:
        result["action"] = act(lib, result, *chosen[0], create=create, quiet=json_)
    columns = (FIND_COLUMNS[0], SIMILARITY, FIND_COLUMNS[1], FIND_COLUMNS[-1])
    print_result(result, columns, json_=json_, csv_=csv_, paths=paths)
