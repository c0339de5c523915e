"""``curator train``, ``curator evaluate``, ``curator review`` and ``curator runs``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from curator.cli.common import (
    DbOption, JsonOption, baseline_text, console, err_console, open_lib, print_json, stoppable, table,
)

app = typer.Typer(help="Training runs: list, show curves and diagnosis, promote.")
SPLIT_CHOICES = ("val", "test", "benchmark", "all")


def register(root: typer.Typer) -> None:
    root.command("train")(train)
    root.command("evaluate")(evaluate)
    root.command("review")(review)
    root.add_typer(app, name="runs")


def train(
    splits: Annotated[Optional[str], typer.Option(help="The split build to train on (see `curator splits`).")] = None,
    model: Annotated[Optional[str], typer.Option(help="Any timm model name [default: resnet18; a warm start keeps its parent's].")] = None,
    img_size: Annotated[int, typer.Option(help="Square input size in pixels.", min=16)] = 128,
    epochs: Annotated[Optional[int], typer.Option(help="At most this many epochs; the learning rate's cosine decay ends there [default: 60; with --final: the source run's best epoch].", min=1, show_default=False)] = None,
    patience: Annotated[int, typer.Option(help="Stop after this many epochs without progress: no better validation accuracy, no validation loss 0.01 below its lowest.", min=1)] = 8,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate (AdamW; warm-up, then cosine decay) [default: 1e-3; 3e-4 when warm-starting].", show_default=False)] = None,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 0.05,
    batch_size: Annotated[int, typer.Option(help="Images per step (per process under torchrun).", min=1)] = 64,
    augment: Annotated[bool, typer.Option("--augment/--no-augment", help="Random flip, rotation and zoom while training.")] = True,
    flip: Annotated[bool, typer.Option("--flip/--no-flip", help="Left-right flips (when augmenting).")] = True,
    rotate: Annotated[float, typer.Option(help="Rotate by up to this many degrees either way (when augmenting).")] = 10.0,
    zoom: Annotated[float, typer.Option(help="Zoom in or out by up to this share (when augmenting).")] = 0.1,
    pretrained: Annotated[bool, typer.Option("--pretrained", help="Start from timm's pretrained weights (needs the model hub).")] = False,
    weights: Annotated[Optional[str], typer.Option(help="Start from a local timm/safetensors weights file (offline; the head is replaced).")] = None,
    warm_start: Annotated[Optional[str], typer.Option(help="Start from this run's weights (or 'latest') with a fresh head for the new classes.")] = None,
    head_epochs: Annotated[Optional[int], typer.Option(help="Train only the new head for this many epochs first [default: 0; 1 when warm-starting].", min=0, show_default=False)] = None,
    throwaway: Annotated[bool, typer.Option("--throwaway", help="Mark the run as never for production.")] = False,
    name: Annotated[Optional[str], typer.Option(help="Name of the run [default: MODEL-BUILD].")] = None,
    device: Annotated[str, typer.Option(help="auto (GPU when there is one), cpu, cuda or cuda:N.")] = "auto",
    workers: Annotated[Optional[int], typer.Option(help="Image-decoding processes [default: cores - 1].", min=0)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the shuffling and augmentation.")] = 0,
    resume: Annotated[Optional[str], typer.Option(help="Continue this interrupted run from its last epoch (other options are the run's).")] = None,
    log_to: Annotated[Optional[tuple[str, str]], typer.Option("--log-to", metavar="KIND DIR", help="Also write the run to an experiment tracker: tensorboard DIR or mlflow DIR (installed with pip install 'curator[tensorboard]' or 'curator[mlflow]').", show_default=False)] = None,
    final: Annotated[bool, typer.Option("--final", help="The production fit: an earlier run's options on train + val together, for the epochs it needed; evaluated once on test and benchmark.")] = False,
    from_: Annotated[Optional[str], typer.Option("--from", help="With --final: whose options [default: the build's run with the lowest validation loss].", show_default=False)] = None,
    score: Annotated[bool, typer.Option("--score/--no-score", help="Afterwards score the build's images and evaluate (for `curator review`).")] = True,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Train a timm model on a split build; stops when validation stops improving.

    Warm-start from an earlier run to keep its weights with a new head for the new class list.
    Ctrl-C stops after the current batch; `curator train --resume RUN` goes on from the last epoch.
    Under `torchrun --nproc-per-node N` the same command trains with DistributedDataParallel.
    --final trains the chosen options again on train and val together (validation is then not
    held out), for the epochs the best earlier run needed, and evaluates once on test.

    Example: curator train --splits min40 --warm-start latest --epochs 30; curator train --final --splits min40
    """
    from curator import fit, trackers
    from curator import train as train_lib
    from curator.locations import missing_warning

    cfg = None if resume or final else train_lib.TrainConfig(
        model=model, img_size=img_size, epochs=epochs or train_lib.EPOCHS, patience=patience, lr=lr,
        weight_decay=weight_decay, batch_size=batch_size, augment=augment, flip=flip, rotate=rotate, zoom=zoom,
        pretrained=pretrained, weights=weights, head_epochs=head_epochs, seed=seed, device=device, workers=workers)
    lib = open_lib(db)
    tracker = trackers.open_tracker(*log_to) if log_to else None
    printer = {}

    def start(run: dict) -> None:  # sized by the run's own options: a resumed run keeps its length
        printer["epoch"] = epoch_printer(run["options"]["epochs"])
        if "source" in run:
            console.print(f"Final fit of {run['source']}'s options on {run['build']}'s train + val: {run['epochs_from']}.")

    with stoppable("Stopping after this batch; the last finished epoch is saved",
                   "Interrupted: epochs finished so far are saved; resume with `curator train --resume RUN`.") as job:
        done = fit.fit(lib, splits, cfg, name=name, warm_start=warm_start, throwaway=throwaway, resume=resume,
                       final=final, source=from_, epochs=epochs, score=score, tracker=tracker,
                       on_start=None if json_ else start, on_epoch=lambda row: printer and printer["epoch"](row), should_stop=job.should_stop)
    if done.worker:  # a torchrun worker other than rank 0: rank 0 reports
        return
    result = done.run
    if result["status"] == "interrupted":
        err_console.print(f"Interrupted after epoch {result['epochs']}: resume with `curator train --resume {result['name']}`.")
        raise typer.Exit(130)
    if (warning := missing_warning(result.get("missing", 0))) and not json_:
        err_console.print(f"Warning: {warning}")
    if json_:
        return print_json(done.to_dict())
    (_print_final if done.final else _print_fitted)(done)


def epoch_printer(total: int):
    """Prints one line per epoch, as `curator train` and the demo show training."""
    def show(row: dict) -> None:
        val = "" if row["val_loss"] is None else f"  val loss {row['val_loss']:.3f} acc {row['val_acc']:.3f}"
        console.print(f"epoch {row['epoch']:>3}/{total}  train loss {row['train_loss']:.3f} acc {row['train_acc']:.3f}"
                      f"{val}  lr {row['lr']:.1e}  {row['seconds']:.1f} s  {row['images_per_s']:.0f} images/s")
    return show


def _print_fitted(done) -> None:
    """A run, and what scoring it found: ``fit.Fitted``."""
    if done.scored is not None:
        console.print(f"Scored {done.scored['scored']} images of the build ({len(done.scored['errors'])} unreadable).")
        for split, ev in done.evaluations.items():
            console.print(_eval_line(split, ev))
        console.print(f"{done.review} images to review (wrong, or right with low confidence):"
                      f" `curator review {done.run['name']}`.")
    _print_run_line(done.run)


def _print_final(done) -> None:
    """A final fit and its evaluations: ``fit.Fitted``."""
    r = done.run
    console.print(f"Final fit {r['name']}: {r['source']}'s options on {r['build']}'s train + val,"
                  f" {r['epochs_from']}; {r['status']} after {r['epochs']} epochs (its validation"
                  " numbers are not held out). Checkpoint: " + r["checkpoint"])
    for split, ev in done.evaluations.items():
        console.print(_eval_line(split, ev))
    for note in done.notes:
        err_console.print(f"Note: {note}")


def _print_run_line(r: dict) -> None:
    acc = "-" if r["best_val_acc"] is None else f"{r['best_val_acc']:.3f}"
    parent = f", warm-started from {r['parent']}" if r["parent"] else ""
    kind = " (throw-away)" if r["throwaway"] else ""
    console.print(f"Run {r['name']}{kind}: {r['model']} on {r['build']}{parent}; {r['status']} after {r['epochs']} epochs,"
                  f" best val accuracy {acc} at epoch {r['best_epoch']}. Checkpoint: {r['checkpoint']}")


def _eval_line(split: str, ev: dict) -> str:
    m = ev["metrics"]
    line = (f"{split}: accuracy {m['accuracy']:.3f} ({baseline_text(m['baseline'])}),"
            f" macro F1 {m['macro_f1']:.3f}, log loss {m['log_loss']:.3f}, calibration error {m['ece']:.3f} on {m['n']} images")
    for role, comp in ev["comparisons"].items():
        if isinstance(comp, dict) and "accuracy" in comp:
            d = comp["accuracy"]["delta"]
            line += f"; vs {role} {comp['run']}: {'+' if d >= 0 else ''}{d:.3f}"
    if "beats_production" in ev:
        line += "; beats production" if ev["beats_production"] else "; does not beat production"
    return line


def evaluate(
    run: Annotated[str, typer.Argument(help="Run name or id, 'latest' or 'production'.")],
    split: Annotated[str, typer.Option(help="val, test, benchmark or all.")] = "test",
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Evaluate a run: accuracy, per-class precision/recall/F1, baseline, calibration, look-alikes.

    Compared with the run it warm-started from and with the production run, class by class.

    Example: curator evaluate latest --split test
    """
    from curator import evaluation

    if split not in SPLIT_CHOICES:
        raise typer.BadParameter(f"{split!r} is not one of {', '.join(SPLIT_CHOICES)}", param_hint="--split")
    result = evaluation.evaluate(open_lib(db), run, split)
    if json_:
        return print_json(result)
    for name, ev in result.items():
        _print_evaluation(name, ev)


def _print_evaluation(split: str, ev: dict) -> None:
    m = ev["metrics"]
    console.print(_eval_line(split, ev))
    t = table("Class", "Precision", "Recall", "F1", "Support", title=f"{split}: per class")
    for c in m["per_class"]:
        t.add_row(c["class"], f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", str(c["support"]))
    console.print(t)
    if m["confused_pairs"]:
        console.print("Most confused (look-alike) pairs: " + "; ".join(
            f"{p['a']} <-> {p['b']} {p['count']} ({p['a_as_b']} + {p['b_as_a']})" for p in m["confused_pairs"]))
    for role, comp in ev["comparisons"].items():
        if isinstance(comp, dict) and comp.get("per_class"):
            better = ", ".join(comp["better"]) or "none"
            worse = ", ".join(comp["worse"]) or "none"
            console.print(f"vs {role} {comp['run']}: better on {better}; worse on {worse}.")


def review(
    run: Annotated[str, typer.Argument(help="Run name or id, 'latest' or 'production'.")],
    max_confidence: Annotated[float, typer.Option(help="Right answers below this confidence count as problems.")] = 0.5,
    split: Annotated[Optional[str], typer.Option(help="Only this split: train, val, test or benchmark.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Show at most this many.", min=1)] = None,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """List the build's problem images: predicted wrongly, or right with low confidence.

    Example: curator review latest --split val
    """
    from curator import evaluation

    rows = evaluation.review(open_lib(db), run, max_confidence=max_confidence, split=split, limit=limit)
    if json_:
        return print_json(rows)
    t = table("Id", "Split", "Label", "Predicted", "Confidence", "Problem", "Path")
    for r in rows:
        t.add_row(str(r["image_id"]), r["split"], r["label"], r["predicted"] or "-",
                  "-" if r["confidence"] is None else f"{r['confidence']:.3f}", r["problem"], r["path"])
    console.print(t)
    console.print(f"{len(rows)} images to review.")


@app.callback(invoke_without_command=True)
def runs(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Also list helper runs (the fold runs of `curator suspects`).")] = False,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """List training runs: model, build, parent, throw-away, best validation accuracy, epochs.

    Helper runs (purpose suspects: the fold runs of `curator suspects`) never count as the
    latest run; they are left out unless --all (--json lists every run, with its purpose).

    Example: curator runs
    """
    if ctx.invoked_subcommand:
        return
    from curator import runs as runs_lib
    from curator.library.models import TRAIN_PURPOSE

    rows = runs_lib.list_runs(open_lib(db))
    if json_:
        return print_json(rows)
    shown = [r for r in rows if all_ or r["purpose"] == TRAIN_PURPOSE]
    t = table("Run", "Model", "Build", "Parent", "Status", "Epochs", "Best val acc", "Notes")
    for r in shown:
        notes = ", ".join(n for n, on in (("production", r["production"]), ("throw-away", r["throwaway"]),
                                          (f"{r['purpose']} helper", r["purpose"] != TRAIN_PURPOSE)) if on)
        acc = "-" if r["best_val_acc"] is None else f"{r['best_val_acc']:.3f}"
        t.add_row(r["name"], r["model"], r["build"], r["parent"] or "-", r["status"], str(r["epochs"]), acc, notes)
    console.print(t)
    if len(shown) < len(rows):
        console.print(f"{len(rows) - len(shown)} helper runs not shown (suspects folds): `curator runs --all` lists them.")


@app.command("show")
def show(
    run: Annotated[str, typer.Argument(help="Run name or id, 'latest' or 'production'.")],
    png: Annotated[Optional[str], typer.Option(help="Write the curves here [default: curves.png in the run's folder].")] = None,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Show a run: its curves (a PNG and in the terminal) and a diagnosis of the fit.

    Example: curator runs show latest
    """
    from curator import curves
    from curator import runs as runs_lib

    lib = open_lib(db)
    info = runs_lib.summary(lib, run)
    rows = runs_lib.epochs(lib, run)
    info["diagnosis"] = curves.diagnose(rows)
    info["png"] = str(curves.plot_png(rows, Path(png or Path(info["folder"]) / "curves.png"), title=info["name"])) if rows else None
    if json_:
        return print_json({**info, "curves": rows})
    _print_run_line(info)
    if rows:
        console.print(curves.terminal_chart(rows))
    d = info["diagnosis"]
    console.print(f"Diagnosis: {d['verdict']}. {d['detail']}")
    if info["png"]:
        console.print(f"Curves: {info['png']}")


@app.command("compare")
def compare(
    runs: Annotated[list[str], typer.Argument(help="Two or more runs: names or ids, 'latest', 'production'.", show_default=False)],
    x: Annotated[str, typer.Option("--x", help="The x-axis: epoch, or time (seconds of training: batch sizes by wall clock).")] = "epoch",
    metric: Annotated[str, typer.Option(help="The curves drawn: loss or accuracy.")] = "loss",
    png: Annotated[Optional[str], typer.Option(help="Write the picture here [default: compare.png in the first run's folder].")] = None,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Runs side by side: curves overlaid (a PNG and in the terminal), each run's diagnosis, the
    options that differ, and the run to prefer: the lowest validation loss that does not trend
    back up.

    Example: curator runs compare lr-1e-4 lr-1e-3 lr-1e-2 --x time
    """
    from curator import compare as compare_lib

    result = compare_lib.compare(open_lib(db), runs, x=x, metric=metric, png=png)
    if json_:
        return print_json(result)
    print_comparison(result)


def print_comparison(result: dict) -> None:
    """``compare.compare``'s answer: the runs, the options that differ, the run to prefer and why."""
    from curator import compare as compare_lib

    metric = result["metric"]
    key = "val_loss" if metric == "loss" else "val_acc"
    t = table("Run", "Diagnosis", "Best val loss", "At epoch", "Val acc there", "Epochs", "Seconds", f"Val {metric}")
    for r in result["runs"]:
        t.add_row(r["name"], r["diagnosis"]["verdict"], _num(r["best_val_loss"], 4), str(r["best_val_epoch"] or "-"),
                  _num(r["best_val_acc"], 3), str(len(r["epochs"])), f"{r['seconds']:.0f}",
                  compare_lib.sparkline([e.get(key) for e in r["epochs"]]))
    console.print(t)
    if result["options"]:
        o = table("Option", *[r["name"] for r in result["runs"]], title="Options that differ")
        for option, values in result["options"].items():
            o.add_row(option, *[str(values[r["name"]]) for r in result["runs"]])
        console.print(o)
    p = result["preferred"]
    console.print(f"Prefer {p['run']}: {p['why']}." if p["run"] else f"No run to prefer: {p['why']}.")
    for name, reason in p["passed_over"].items():
        console.print(f"  {name}: {reason}")
    console.print(f"Curves: {result['png']}")


def _num(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@app.command("promote")
def promote(
    run: Annotated[str, typer.Argument(help="Run name or id.")],
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Make a run the production run (throw-away runs are refused).

    Example: curator runs promote resnet18-min40
    """
    from curator import runs as runs_lib

    info = runs_lib.promote(open_lib(db), run)
    if json_:
        return print_json(info)
    console.print(f"{info['name']} is now the production run.")
