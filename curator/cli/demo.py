"""``curator demo``: the main job, the curation loop on sample_data/."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from curator.cli.common import JsonOption, baseline_text, console, print_json
from curator.defaults import DEMO_DB, DEMO_TRAINING


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    data: Annotated[Path, typer.Option(help="The sample data folder (library/, staged/, pool/).")] = Path("sample_data"),
    db: Annotated[Optional[str], typer.Option("--db", help=f"Where to build the demo library [default: {DEMO_DB}].", show_default=False)] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Replace an existing library at --db.")] = False,
    epochs: Annotated[int, typer.Option(help="At most this many epochs per training run.", min=1)] = DEMO_TRAINING["epochs"],
    quick: Annotated[bool, typer.Option("--quick", help="A tiny model for 2 epochs: checks the loop, not the accuracy.")] = False,
    fiftyone: Annotated[bool, typer.Option("--fiftyone/--no-fiftyone", help="End by building the FiftyOne dataset and its saved views.")] = True,
    browse: Annotated[bool, typer.Option("--browse", help="Then open the FiftyOne app at the low-confidence view (until Ctrl-C).")] = False,
    port: Annotated[int, typer.Option(help="The app's port, with --browse.")] = 5151,
    json_: JsonOption = False,
) -> None:
    """Run the curation loop on sample_data/ in a fresh library, saying what each step did.

    Example: curator demo
    """
    from curator import demo as demo_lib
    from curator.cli.train import epoch_printer

    lib = demo_lib.fresh_library(db, replace=fresh)
    results = {}
    training = dict(demo_lib.QUICK_TRAINING) if quick else {**demo_lib.TRAINING, "epochs": epochs}
    on_epoch = None if json_ else epoch_printer(training["epochs"])
    for step, result in demo_lib.steps(lib, data, training=training, fiftyone=fiftyone or browse, on_epoch=on_epoch):
        results[step] = result
        if not json_:
            _print_step(step, result)
    if json_:
        print_json(results)
    else:
        _print_done(lib)
    if browse:
        from curator.cli.browse import serve

        serve(lib, "low-confidence", port=port)


def _print_done(lib) -> None:
    db_path = Path(lib.folder) / "curator.sqlite"
    hints = ["classes", "duplicates --conflicts", "splits show throwaway-35", "runs show min40", "review throwaway-35",
             "find --run throwaway-35 --unknown", "coverage --run throwaway-35", "browse --run min40"]
    console.print(f"\nDone. The library is {lib.display}; look around with:\n" + on_path_hint()
                  + "".join(f"  curator {h} --db {db_path}\n" for h in hints).rstrip("\n")
                  + "   (the FiftyOne app; `curator pull` takes edits back)")


def on_path_hint() -> str:
    """A line saying how to put ``curator`` on PATH, when it is not (a fresh venv, not activated)."""
    if shutil.which("curator"):
        return ""
    activate = Path(sys.prefix) / "bin" / "activate"
    try:
        activate = activate.relative_to(Path.cwd())
    except ValueError:
        pass
    return f"  (first `source {activate}` to put curator on your PATH, or call {activate.parent / 'curator'})\n"


def _print_step(step, r: dict) -> None:
    """Print a step's result with the printer for its kind (``demo.Step.kind``): a function, or
    a line to fill in with the result's fields."""
    show = PRINTERS[step.kind]
    if isinstance(show, str):
        console.print(f"[{step}] " + show.format_map(r))
    else:
        show(step, r)


def _imported(step: str, r: dict) -> None:
    console.print(f"[{step}] {r['added']} new images from {r['files']} files, {r['duplicates']} duplicate"
                  f" paths, {len(r['rejected'])} rejected, {len(r['conflicts'])} label conflicts"
                  f" ({r['images_per_second']:.0f} files/s).")


def _classes(step: str, r: dict) -> None:
    below = [c["class"] for c in r["classes"] if c["below_cutoff"]]
    console.print(f"[{step}] {len(r['classes'])} classes; below --min-count {r['min_count']}: {', '.join(below) or 'none'}")
    for c in r["classes"]:
        subs = f" ({len(c['subclasses'])} sub-classes)" if c["subclasses"] else ""
        flag = f"  needs {c['needs']} more" if c["below_cutoff"] else ""
        flag += "  staged/synthetic only" if c["only_staged_or_synthetic"] else ""
        console.print(f"    {c['class']:<28} {c['labelled']:>4} labelled, {c['real']:>4} real{subs}{flag}")


def _discovered(step: str, r: dict) -> None:
    d = r["discovery"]
    console.print(f"[{step}] {len(r['clusters'])} clusters among the {d['clustered']} most unfamiliar of"
                  f" {d['candidates']} pool images:")
    for c in r["clusters"]:
        reads = f"inside {c['inside']}" if c["inside"] else "new class?"
        console.print(f"    cluster {c['cluster']:>3}: {c['size']:>3} images, nearest {c['nearest'][0]['class']}"
                      f" ({reads}), e.g. {Path(c['examples'][0]).name}")


def _duplicates(step: str, r: dict) -> None:
    console.print(f"[{step}] {r['groups']} duplicate groups holding {r['images_in_groups']} images"
                  f" ({r['candidate_pairs'] - r['new_pairs']} look-alike pairs told apart by colour).")


def _conflicts(step: str, r: dict) -> None:
    console.print(f"[{step}] {len(r['groups'])} duplicate groups carry two labels:")
    for g in r["groups"]:
        console.print("    " + "  vs  ".join(f"{m['label']} ({Path(m['path']).name})" for m in g["members"]))


def _built(step: str, r: dict) -> None:
    t = r["totals"]
    left_out = ", ".join(f"{c} (needs {n})" for c, n in sorted(r["below_cutoff"].items())) or "none"
    console.print(f"[{step}] {r['name']}: {len(r['classes'])} classes, {t['train']} train, {t['val']} val,"
                  f" {t['test']} test; left out: {left_out}; leak check {'passed' if not r['leaks'] else 'FAILED'}.")


def _identified(step: str, r: dict) -> None:
    console.print(f"[{step}] {r['scored']} images predicted with {r['run']} ({r['images_per_second']:.0f} images/s),"
                  f" {len(r['errors'])} unreadable.")


def _coverage(step: str, r: dict) -> None:
    console.print(f"[{step}] per class: labelled + confident pool predictions vs --min-count {r['min_count']}:")
    for c in r["classes"]:
        console.print(f"    {c['class']:<28} {c['labelled']:>4} labelled, {c['confident']:>3} confident of"
                      f" {c['predicted']:>3} predicted; {'reachable' if c['reachable'] else 'not reachable'}")


def _lookalikes(step: str, r: dict) -> None:
    console.print(f"[{step}] {r['total']} pool images predicted {r['class']} at <= {r['max_confidence']}"
                  f" confidence (a class the model does not know may hide there), e.g.:")
    for path in r["paths"]:
        console.print(f"    {path}")


def _accepted(step: str, r: dict) -> None:
    console.print(f"[{step}] {r['accepted']} pool images labelled from predictions at >= {r['min_confidence']}: "
                  + ", ".join(f"{c} {n}" for c, n in r["by_class"].items()))


def _fiftyone(step: str, r: dict) -> None:
    views = ", ".join(f"{name} ({n})" for name, n in r["views"].items() if not name.startswith("look-alike-"))
    lookalikes = sum(name.startswith("look-alike-") for name in r["views"])
    shown_map = (f" The embeddings' 2-D map ({r['map']['method']}, {r['map']['samples']} samples) is in the app's"
                 " embeddings panel." if r.get("map") else "")
    console.print(f"[{step}] dataset {r['dataset']}: {r['samples']} samples with {r['run']}'s predictions,"
                  f" database in {r['database']}; saved views: {views}, and {lookalikes} look-alike-CLASS views.{shown_map}")


def _trained(step: str, r: dict) -> None:
    ev = r["evaluation"]["metrics"] if r["evaluation"] else None
    acc = f"test accuracy {ev['accuracy']:.3f} ({baseline_text(ev['baseline'])})" if ev else "no test images"
    parent = f", warm-started from {r['parent']}" if r["parent"] else ""
    console.print(f"[{step}] {r['name']}: {r['model']} on {r['build']}{parent}, {r['epochs']} epochs, best val"
                  f" accuracy {r['best_val_acc']:.3f} at epoch {r['best_epoch']}; {acc}; {r['review']} images to review.")
    comp = (r["evaluation"] or {}).get("comparisons", {}).get("parent")
    if comp and "accuracy" in comp:
        console.print(f"    vs {comp['run']} on the same test images of shared classes: accuracy"
                      f" {comp['accuracy']['current']:.3f} vs {comp['accuracy']['other']:.3f}")


# How each kind of demo step (``demo.Step.kind``) is shown.
PRINTERS = {
    "import": _imported,
    "classes": _classes,
    "duplicates": _duplicates,
    "conflicts": _conflicts,
    "embed": "{embedded} images embedded ({dim}-d) in {seconds:.0f} s: the vectors `similar`, `find --unfamiliar`"
             " and `discover` compare.",
    "discover": _discovered,
    "new-class": "cluster {cluster} (nearest {nearest[0][class]}) looked at and labelled {class} (new): {labelled}"
                 " images, history source discover.",
    "grow": "the {labelled} pool images most like it labelled {class}: {total} in all (review them: `curator"
            " similar` ranks, a user checks).",
    "build-splits": _built,
    "train": _trained,
    "bulk-identify": _identified,
    "coverage": _coverage,
    "look-alike": _lookalikes,
    "accept": _accepted,
    "fiftyone": _fiftyone,
    "library": "{images} images: {labelled} labelled, {unknown} unknown, {unlabelled} unlabelled, {rejected}"
               " rejected, {staged} staged.",
}
