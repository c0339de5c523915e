"""``curator embed`` and ``curator embedders``: a backbone's embeddings of a pool, and what is stored."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from curator.cli.common import (
    BATCHES_SAVED, DbOption, JsonOption, console, err_console, open_lib, print_json, stoppable, table,
)


def register(app: typer.Typer) -> None:
    app.command("embed")(embed)
    app.command("embedders")(embedders)


def embed(
    model: Annotated[str, typer.Option(help="timm model name.")] = "tf_efficientnet_lite0",
    pretrained: Annotated[bool, typer.Option("--pretrained", help="timm's pretrained weights (from its hub: online).")] = False,
    weights: Annotated[Optional[str], typer.Option(
        help="A local weights file (offline), or lite0: EfficientNet-Lite0's ImageNet weights.")] = None,
    name: Annotated[Optional[str], typer.Option(
        help="The embedder's name [default: the model's, -pretrained or -FILE's stem].")] = None,
    pool: Annotated[str, typer.Option(help="unlabelled, unknown, rejected, labelled or all.")] = "unlabelled",
    size: Annotated[Optional[int], typer.Option(help="Input size in pixels [default: the model's].", min=16)] = None,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.", min=1)] = 64,
    workers: Annotated[Optional[int], typer.Option(help="Image-decoding processes [default: cores - 1].", min=0)] = None,
    limit: Annotated[Optional[int], typer.Option(help="Embed at most this many images not embedded yet.", min=1)] = None,
    device: Annotated[str, typer.Option(help="auto (GPU when there is one), cpu, cuda or cuda:N.")] = "auto",
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Embed a pool of images with a backbone, no training needed, and store one vector per image.

    The vectors feed `similar`, `find --unfamiliar`/`--outliers` and `dedup --embeddings`; a
    trained run's embeddings come from `bulk-identify` instead (embedder `run:NAME`). Re-running
    skips images already embedded, so an interrupted run is finished by running it again; Ctrl-C
    stops after the batch in hand is saved. Unreadable images are recorded and skipped.

    Example: curator embed --weights lite0 --pool all

    Example: curator embed --model resnet50 --pretrained --name r50
    """
    from curator import embeddings, predict
    from curator.locations import missing_warning

    if pool not in predict.POOLS:
        raise typer.BadParameter(f"{pool!r} is not one of {', '.join(predict.POOLS)}", param_hint="--pool")
    lib = open_lib(db)
    with stoppable("Stopping after this batch is saved", BATCHES_SAVED, task="embedding", quiet=json_) as job:
        summary = embeddings.embed(
            lib, model, weights=weights, pretrained=pretrained, name=name, pool=pool, size=size,
            batch_size=batch_size, workers=workers, device=device, limit=limit,
            on_progress=job.on_progress, should_stop=job.should_stop)
        job.interrupted = summary.interrupted
    if json_:
        return print_json(summary.to_dict())
    s = summary
    console.print(f"Embedded {s.embedded} images of the {pool} pool with {s.embedder} ({s.dim or '?'}-d) in"
                  f" {s.seconds:.1f} s ({s.images_per_second:.0f} images/s); {s.already} already done,"
                  f" {len(s.errors)} unreadable.")
    for e in s.errors:
        console.print(f"  could not read {e['path']}: {e['error']}")
    if warning := missing_warning(s.missing):
        err_console.print(f"Warning: {warning}")


def embedders(db: DbOption = None, json_: JsonOption = False) -> None:
    """List the embedders: `curator embed` backbones and the runs whose predictions carry embeddings.

    Example: curator embedders
    """
    from curator import embeddings

    rows = embeddings.list_embedders(open_lib(db))
    if json_:
        return print_json(rows)
    if not rows:
        console.print("No embedders yet: `curator embed --weights lite0` embeds the unlabelled pool offline.")
        return
    t = table("Name", "Kind", "Model", "Weights", "Dim", "Size", "Images")
    for r in rows:
        t.add_row(r["name"], r["kind"], r["model"], r["weights"] or "-", str(r["dim"] or "-"),
                  str(r["input_size"] or "-"), str(r["images"]))
    console.print(t)
