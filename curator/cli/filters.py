"""``curator find`` and ``curator coverage``: filters over bulk-identification results."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from curator.cli.common import (
    CsvOption, DbOption, EmbedderOption, JsonOption, PathsOption, RejectOption, TagOption, console,
    err_console, open_lib, print_json, print_rows, progress, show_notes, table,
)

RunOption = Annotated[Optional[str], typer.Option(
    help="Whose predictions: a run name or id, 'latest' or 'production'"
         " [default: the newest run that predicted the images asked about].", show_default=False)]


def register(app: typer.Typer) -> None:
    app.command("find")(find)
    app.command("coverage")(coverage)


def find(
    run: RunOption = None,
    class_: Annotated[Optional[str], typer.Option("--class", "--predicted", help="Predicted as this class (with --max-confidence: a look-alike search; with --outliers: labelled as it).")] = None,
    max_confidence: Annotated[Optional[float], typer.Option(help="Top confidence at most this.")] = None,
    min_confidence: Annotated[Optional[float], typer.Option(help="Top confidence at least this.")] = None,
    label: Annotated[Optional[str], typer.Option(help="Current label: a class, 'unlabelled' or 'unknown'.")] = None,
    subclass: Annotated[Optional[str], typer.Option(help="Current sub-class (with --label CLASS).")] = None,
    split: Annotated[Optional[str], typer.Option(help="In this split of the run's build: train, val, test, benchmark.")] = None,
    staged: Annotated[Optional[bool], typer.Option("--staged/--not-staged", help="Only staged images, or only images that are not.", show_default=False)] = None,
    synthetic: Annotated[Optional[bool], typer.Option("--synthetic/--not-synthetic", help="Only synthetic images, or only images that are not.", show_default=False)] = None,
    low_count: Annotated[bool, typer.Option("--low-count", help="Pool images predicted as classes below --min-count.")] = False,
    min_count: Annotated[int, typer.Option(help="The cutoff for --low-count.", min=1)] = 40,
    synthetic_dependent: Annotated[bool, typer.Option("--synthetic-dependent", help="Pool images predicted as classes whose labelled images are mostly staged or synthetic.")] = False,
    max_staged_share: Annotated[float, typer.Option(help="The share above which --synthetic-dependent picks a class.")] = 0.5,
    unknown: Annotated[bool, typer.Option("--unknown", help="Images labelled unknown, grouped by what the model thinks they are now.")] = False,
    lowest: Annotated[Optional[int], typer.Option(help="The N lowest-scoring images.", min=1)] = None,
    tagged: Annotated[Optional[str], typer.Option(help="Only images carrying this tag.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Show (and act on) at most this many.", min=1)] = None,
    offset: Annotated[int, typer.Option(help="Skip this many matches first (after --lowest): with --limit, a page;"
                                             " pages are stable, ties broken by image id.", min=0)] = 0,
    unfamiliar: Annotated[bool, typer.Option("--unfamiliar", help="Pool images (or those of --label) more like each other than like any labelled image, by embedding: new classes first.")] = False,
    outliers: Annotated[bool, typer.Option("--outliers", help="Labelled images farthest from their classmates, by embedding: label errors, bad images (--class C: of class C).")] = False,
    embedder: EmbedderOption = None,
    accept: Annotated[bool, typer.Option("--accept", help="Action: take each shown image's prediction as its label.")] = False,
    set_label: Annotated[Optional[str], typer.Option(help="Action: label the shown images CLASS or CLASS/SUBCLASS.")] = None,
    create: Annotated[bool, typer.Option("--create", help="With --set-label: create the class if new.")] = False,
    mark_unknown: Annotated[bool, typer.Option("--mark-unknown", help="Action: mark the shown images unknown.")] = False,
    reject: RejectOption = None,
    tag: TagOption = None,
    csv_: CsvOption = False,
    paths: PathsOption = False,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Find images worth labelling among a run's predictions; every option composes.

    Without --run: the newest run that predicted the pool (--unknown: the unknown images;
    --label CLASS or --split: the labelled ones); a note says when a newer run has not.

    At most one action (--accept, --set-label, --mark-unknown, --reject, --tag) applies to the
    images shown; every change goes to label history, 500 images a transaction.

    The library answers: filtering, sorting and paging happen in the database, so a question
    over a million predictions shows its first rows at once. Page with --limit and --offset.

    --unfamiliar and --outliers sort by an embedding score instead (a Score column), and need
    no run unless another option reads predictions (--run, confidences, --split, --class with
    --unfamiliar; with --outliers, --class C is the label).

    Example: curator find --class hand-fingers-open --max-confidence 0.6 --limit 50 --offset 50
    """
    from curator import filters

    actions = {"accept": (accept, None), "label": (set_label, set_label), "unknown": (mark_unknown, None),
               "reject": (reject, reject), "tag": (tag, tag)}
    chosen = [(name, value) for name, (on, value) in actions.items() if on]
    if len(chosen) > 1:
        raise typer.BadParameter("give at most one action: --accept, --set-label, --mark-unknown, --reject or --tag")
    q = filters.Query(run=run, predicted=class_, min_confidence=min_confidence, max_confidence=max_confidence,
                      label=label, subclass=subclass, split=split, staged=staged, synthetic=synthetic,
                      low_count=low_count, min_count=min_count, synthetic_dependent=synthetic_dependent,
                      max_staged_share=max_staged_share, unknown=unknown, lowest=lowest, tag=tagged, limit=limit,
                      offset=offset, unfamiliar=unfamiliar, outliers=outliers, embedder=embedder)
    lib = open_lib(db)
    result = filters.find(lib, q)
    show_notes(result["notes"])
    if chosen:
        result["action"] = act(lib, result, *chosen[0], create=create, quiet=json_)
    columns = FIND_COLUMNS if "embedder" not in result else (*FIND_COLUMNS[:-1], SCORE, FIND_COLUMNS[-1])
    print_result(result, columns, json_=json_, csv_=csv_, paths=paths, offset=offset)


def _number(value) -> str:
    return "-" if value is None else f"{value:.3f}"


# (title, key, text) of each column a command shows: find's, and the score of --unfamiliar/--outliers
FIND_COLUMNS = (("Id", "image_id", str), ("Label", "label", str), ("Predicted", "predicted", lambda v: v or "-"),
                ("Confidence", "confidence", _number), ("Split", "split", lambda v: v or "-"), ("Path", "path", str))
SCORE = ("Score", "score", lambda v: f"{v:.4f}")


def source(result: dict) -> str:
    """Whose numbers a result shows: ``predictions of RUN``, ``embeddings of E``, or both."""
    parts = ([f"embeddings of {result['embedder']}"] if result.get("embedder") else []) + (
        [f"predictions of {result['run']}"] if result.get("run") else [])
    return ", ".join(parts)


def print_result(result: dict, columns: tuple, *, json_: bool, csv_: bool, paths: bool, offset: int = 0) -> None:
    """A ``find``-shaped result as JSON, CSV, paths or a table with a summary, per-class
    numbers and the action taken (``curator find``, ``curator similar``)."""
    rows = result["rows"]
    if json_:
        return print_json(result)
    if paths or csv_:
        err_console.print(f"{len(rows)} images ({source(result)}).")
        print_rows(rows, [key for _, key, _ in columns], csv_=csv_, paths=paths)
        return
    t = table(*(title for title, _, _ in columns))
    for r in rows:
        t.add_row(*(text(r[key]) for _, key, text in columns))
    console.print(t)
    shown = f"{len(rows)} of {result['total']}" if len(rows) < result["total"] else str(result["total"])
    start = f", from number {offset + 1}" if offset else ""
    console.print(f"{shown} images{start} ({source(result)}).")
    for name, c in sorted(result["classes"].items()):
        console.print(f"  {name}: {c['labelled']} labelled, needs {c['needs']}, staged/synthetic share"
                      f" {c['staged_share']:.0%}, {c['found']} found here")
    if "action" in result:
        a = result["action"]
        console.print(f"{a['action']}: {len(a['changed'])} images changed, {a['unchanged']} already so"
                      " (see `curator history IMAGE`).")


def act(lib, result: dict, action: str, value: str | None, *, create: bool, quiet: bool) -> dict:
    """``filters.act`` with one progress bar on stderr when it takes more than one chunk."""
    from curator import filters

    many = len(result["rows"]) > filters.ACT_CHUNK
    with progress(quiet=quiet or not many) as bar:
        task = bar.add_task(action, total=len(result["rows"]))
        return filters.act(lib, result, action, value, create=create,
                           on_progress=lambda done: bar.update(task, completed=done))


def coverage(
    run: RunOption = None,
    min_count: Annotated[int, typer.Option(help="The per-class cutoff.", min=1)] = 40,
    high_confidence: Annotated[float, typer.Option(help="Predictions at least this sure count as likely finds.")] = 0.8,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Per class: labelled images, pool images predicted as it, and whether the cutoff is reachable.

    Without --run: the newest run that predicted the pool.

    Example: curator coverage --min-count 40
    """
    from curator import filters

    result = filters.class_coverage(open_lib(db), run, min_count=min_count, high_confidence=high_confidence)
    rows = result["classes"]
    show_notes(result["notes"])
    if json_:
        err_console.print(f"Pool predictions of {result['run']}.")
        return print_json(rows)
    t = table("Class", "Labelled", "Needs", "Pool predicted", "Confident", "Reachable")
    for r in rows:
        t.add_row(r["class"], str(r["labelled"]), str(r["needs"]), str(r["predicted"]), str(r["confident"]),
                  "yes" if r["reachable"] else "no")
    console.print(t)
    console.print(f"Pool predictions of {result['run']}.")
