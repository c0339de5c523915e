"""``curator sweep``: a throw-away run per learning rate, batch size and start, compared."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from curator.cli.common import DbOption, JsonOption, console, err_console, open_lib, print_json, stoppable


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{text!r}: give numbers separated by commas, e.g. 1e-4,1e-3,1e-2") from None


def sweep(
    splits: Annotated[str, typer.Option(help="The split build every run trains on.")],
    lr: Annotated[str, typer.Option("--lr", help="Learning rates, comma-separated (by factors of ten: 1e-4,1e-3,1e-2).")],
    batch_size: Annotated[Optional[str], typer.Option(help="Batch sizes, comma-separated [default: 64].", show_default=False)] = None,
    init: Annotated[str, typer.Option(help="Starts, comma-separated: scratch, pretrained (timm's hub, or --weights FILE).")] = "scratch",
    model: Annotated[str, typer.Option(help="Any timm model name.")] = "resnet18",
    epochs: Annotated[int, typer.Option(help="At most this many epochs a run.", min=1)] = 20,
    patience: Annotated[int, typer.Option(help="Stop a run after this many epochs without progress: no better validation accuracy, no validation loss 0.01 below its lowest.", min=1)] = 5,
    img_size: Annotated[int, typer.Option(help="Square input size in pixels.", min=16)] = 128,
    weights: Annotated[Optional[str], typer.Option(help="What 'pretrained' starts from: a local weights file, or lite0 (offline ImageNet EfficientNet-Lite0).", show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Seed of every run.")] = 0,
    device: Annotated[str, typer.Option(help="auto (GPU when there is one), cpu, cuda or cuda:N.")] = "auto",
    workers: Annotated[Optional[int], typer.Option(help="Image-decoding processes [default: cores - 1].", min=0)] = None,
    png: Annotated[Optional[str], typer.Option(help="Write the overlaid curves here [default: runs/sweep-BUILD/curves.png].", show_default=False)] = None,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Sweep the learning rate (and batch size, and pretrained against scratch): one throw-away
    run per combination, then the runs compared, a parallel-coordinates plot and the setting to use.

    Sweep runs are helpers: never the latest run or production (`curator runs --all` lists them).
    A re-run trains only what is missing (a killed run resumes); under `torchrun` each process
    trains its share.

    Example: curator sweep --splits throwaway-35 --lr 1e-4,1e-3,1e-2 --init scratch,pretrained --model tf_efficientnet_lite0 --weights lite0
    """
    from curator import sweep as sweep_lib
    from curator import train as train_lib
    from curator.cli.train import epoch_printer

    base = train_lib.TrainConfig(model=model, img_size=img_size, epochs=epochs, patience=patience, weights=weights,
                                 seed=seed, device=device, workers=workers)
    lib = open_lib(db)
    show = None if json_ else epoch_printer(epochs)
    say = None if json_ else lambda name, what: err_console.print(f"{what}: {name}")
    with stoppable("Stopping after this batch; a re-run resumes the sweep",
                   "Interrupted: re-run the same `curator sweep` to go on.") as job:
        result = sweep_lib.sweep(lib, splits, base, lrs=_floats(lr), batch_sizes=[int(b) for b in _floats(batch_size or "")],
                                 inits=[i.strip() for i in init.split(",") if i.strip()], png=png, on_trial=say,
                                 on_epoch=show, should_stop=job.should_stop)
    if "rank" in result:
        return
    if json_:
        print_json(result)
    else:
        _print(result)
    if result["stopped"]:
        raise typer.Exit(130)


def _print(result: dict) -> None:
    from curator.cli.train import print_comparison

    if not result["runs"]:
        console.print("Fewer than two sweep runs have curves yet: nothing to compare.")
        return
    print_comparison(result)
    rec = result["recommended"]
    if rec:
        console.print(f"Recommended: --lr {rec['lr']:g} --batch-size {rec['batch_size']} ({rec['init']}).")
    for p in result["pretrained_vs_scratch"] or []:
        reach = p["pretrained_epochs_to_scratch_best"]
        console.print(f"lr {p['lr']:g}, batch {p['batch_size']}: scratch best {p['scratch_best']:.3f} at epoch"
                      f" {p['scratch_epochs_to_best']}; pretrained reached it in "
                      f"{reach if reach is not None else 'no'} epochs and ended at {p['pretrained_best']:.3f}.")
    console.print(f"Parallel coordinates: {result['parallel_png']}")
