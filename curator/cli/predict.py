"""``curator bulk-identify``: a run's model over a pool of images, every result kept."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from curator.cli.common import BATCHES_SAVED, DbOption, JsonOption, console, err_console, open_lib, print_json, stoppable


def register(app: typer.Typer) -> None:
    app.command("bulk-identify")(bulk_identify)


def bulk_identify(
    run: Annotated[str, typer.Option(help="Run name or id, 'latest' (newest finished) or 'production'.")] = "latest",
    pool: Annotated[str, typer.Option(help="unlabelled, unknown, rejected, labelled or all.")] = "unlabelled",
    top_k: Annotated[int, typer.Option(help="Keep this many classes per image.", min=1)] = 5,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.", min=1)] = 64,
    workers: Annotated[Optional[int], typer.Option(help="Image-decoding processes [default: cores - 1].", min=0)] = None,
    limit: Annotated[Optional[int], typer.Option(help="Predict at most this many images not predicted yet.", min=1)] = None,
    device: Annotated[str, typer.Option(help="auto (GPU when there is one), cpu, cuda or cuda:N.")] = "auto",
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Predict a pool of images with a trained run and store the top-k classes and embeddings.

    Re-running skips images this run already predicted, so an interrupted run is finished by
    running it again; Ctrl-C stops after the batch in hand is saved. Unreadable images are
    recorded and skipped. Under torchrun each process predicts its own share of the pool (on
    cuda:LOCAL_RANK where there are GPUs) and rank 0 reports the total.

    Example: curator bulk-identify --run latest --pool unlabelled

    Example: torchrun --nproc-per-node 4 -m curator -- bulk-identify --run latest
    """
    from curator import predict
    from curator.locations import missing_warning

    if pool not in predict.POOLS:
        raise typer.BadParameter(f"{pool!r} is not one of {', '.join(predict.POOLS)}", param_hint="--pool")
    lib = open_lib(db)
    dist = predict.Dist.from_env()
    task = "identifying" if dist.world == 1 else f"identifying (1 of {dist.world} shares)"
    with stoppable("Stopping after this batch is saved", BATCHES_SAVED if dist.main else None, task=task,
                   quiet=json_ or not dist.main) as job:  # rank 0's bar shows its own share
        summary = predict.bulk_identify(
            lib, run, pool, top_k=top_k, batch_size=batch_size, workers=workers, limit=limit, device=device,
            on_progress=job.on_progress, should_stop=job.should_stop, dist=dist)
        job.interrupted = summary.interrupted
    if not dist.main:  # a torchrun process other than rank 0: rank 0 reports the job
        return
    if json_:
        return print_json(summary.to_dict())
    s = summary
    console.print(f"Predicted {s.scored} images of the {pool} pool with {s.run} in {s.seconds:.1f} s"
                  f" ({s.images_per_second:.0f} images/s); {s.already} already done, {len(s.errors)} unreadable.")
    if s.shards:
        console.print(f"{len(s.shards)} processes: " + ", ".join(f"rank {p['rank']} {p['scored']}" for p in s.shards))
    if s.by_class:
        console.print("Top-1 classes: " + ", ".join(f"{c} {n}" for c, n in sorted(s.by_class.items(), key=lambda x: (-x[1], x[0]))))
    for e in s.errors:
        console.print(f"  could not read {e['path']}: {e['error']}")
    if warning := missing_warning(s.missing):
        err_console.print(f"Warning: {warning}")
