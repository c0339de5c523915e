"""``curator browse`` and ``curator pull``: the library in the FiftyOne app, and the edits made there back."""

from __future__ import annotations

import signal
from typing import Annotated, Optional

import typer

from curator.cli.common import DbOption, JsonOption, console, open_lib, print_json, show_notes, status, table
from curator.fiftyone_views import MAX_SAMPLES


def register(app: typer.Typer) -> None:
    app.command("browse")(browse)
    app.command("pull")(pull)


ResolveOption = Annotated[Optional[str], typer.Option(
    help="Settle label conflicts: 'fiftyone' takes the app's edit, 'library' drops it [default: list them].")]
CreateOption = Annotated[bool, typer.Option("--create", help="A label naming a new class creates it.")]


def browse(
    run: Annotated[Optional[str], typer.Option(help="Whose predictions to show: a run name or id, 'latest' or 'production' [default: the newest run that predicted the pool, if any].")] = None,
    view: Annotated[Optional[str], typer.Option(help="Saved view to open; a working set holds this view's images alone [default: low-confidence when there are predictions].")] = None,
    whole: Annotated[Optional[bool], typer.Option("--all/--working-set", help="Mirror every active image, or hold a working set [default: a working set above 100,000 active images].", show_default=False)] = None,
    tagged: Annotated[Optional[list[str]], typer.Option("--tagged", metavar="TAG", help="Add the images tagged TAG to the working set (repeat for more).")] = None,
    classes: Annotated[Optional[list[str]], typer.Option("--class", metavar="CLASS", help="Add the images the run predicts as CLASS to the working set (repeat for more).")] = None,
    limit: Annotated[Optional[int], typer.Option(metavar="N", help="Take only the first N images of each --tagged / --class.", min=1)] = None,
    max_samples: Annotated[int, typer.Option(metavar="N", help="The most images a working set holds.", min=1)] = MAX_SAMPLES,
    embedder: Annotated[Optional[str], typer.Option(metavar="E", help="Whose embeddings to index for 'sort by similarity' and the unfamiliar / outliers views [default: the one `find --unfamiliar` uses, when it has embeddings].")] = None,
    show_map: Annotated[bool, typer.Option("--map/--no-map", help="Show the embeddings' 2-D map (computed from the stored vectors when they changed).")] = True,
    port: Annotated[int, typer.Option(help="The app's port.")] = 5151,
    address: Annotated[str, typer.Option(help="The address the app listens on.")] = "127.0.0.1",
    launch: Annotated[bool, typer.Option("--launch/--no-launch", help="Start the app after refreshing the dataset.")] = True,
    remote: Annotated[bool, typer.Option("--remote", help="Serve the app without opening a browser; print its address.")] = False,
    pull_first: Annotated[bool, typer.Option("--pull", help="Take edits made in the app back first (as `curator pull`).")] = False,
    resolve: ResolveOption = None,
    create: CreateOption = False,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Build or refresh the library's FiftyOne dataset and its saved views, then open the app.

    One persistent dataset per library, in a FiftyOne database kept in the library's folder;
    only samples whose library row changed are rewritten. Each saved view is the result of a
    `curator find` filter (low-confidence, look-alike-CLASS, low-count, synthetic-dependent,
    unknown, lowest, suspects, label-conflicts, tag-T). The app runs until Ctrl-C.

    When the library has embeddings (`curator embed`, or a run's from bulk-identify), each
    sample carries its stored vector and a FiftyOne Brain similarity index over them lets the
    app sort by similarity to the selected images (nothing is recomputed; new vectors are
    added on the next browse); the views unfamiliar and outliers are `find --unfamiliar` and
    `find --outliers` with the same embedder. The app's embeddings panel shows their 2-D map
    (UMAP when umap-learn is installed, else t-SNE, or PCA above 3,000 samples; made again only
    when the vectors changed; --no-map skips it), coloured by ground_truth or by cluster: the
    number of the `curator discover` cluster an image is in. Each cluster that is still open,
    tagged, unknown or dismissed has a saved view cluster-N; tag its images in the app, then
    `curator pull`.

    What the dataset holds: up to 100,000 active images, every one (--all); above that, or
    with --tagged / --class, a working set (--working-set) that opens quickly: the images
    asked for with --tagged and --class, then those of the saved views but tag-T (or of
    --view alone), at most --max-samples (the views share it rank by rank, so each view's
    first images are in). Images leave it on the next browse, unless they carry app edits
    not yet pulled; `curator pull` keeps the dataset's working set.

    Example: curator browse --view low-confidence --remote
    """
    from curator import fiftyone_pull, fiftyone_sync
    from curator.fiftyone_views import Scope, check_view

    scope = Scope(all=whole, view=view, tagged=tuple(tagged or ()), classes=tuple(classes or ()), limit=limit,
                  max_samples=max_samples)
    lib = open_lib(db)
    with status("starting FiftyOne's database", quiet=json_) as say:
        pulled = fiftyone_pull.pull(lib, resolve=resolve, create=create, on_progress=say) if pull_first else None
        result = fiftyone_sync.sync(lib, run, scope=scope, embedder=embedder, show_map=show_map, on_progress=say)
    show_notes(result["notes"])
    views = result["views"]
    chosen = view or ("low-confidence" if "low-confidence" in views else None)
    if view:
        check_view(view, views)
    url = fiftyone_sync.app_url(result["dataset"], chosen, address, port)
    if json_:
        print_json({**result, "pull": pulled, "url": url if launch else None})
    else:
        if pulled:
            _show_pull(pulled)
        _show_sync(result)
    if not launch:
        if not json_:
            asked = [("run", run), ("view", view), ("embedder", embedder), *(("tagged", t) for t in scope.tagged),
                     *(("class", c) for c in scope.classes), ("limit", limit),
                     ("max-samples", max_samples if max_samples != MAX_SAMPLES else None)]
            again = " ".join(["curator browse", *({True: ["--all"], False: ["--working-set"]}.get(whole, [])),
                              *(f"--{k} {v}" for k, v in asked if v), *([] if show_map else ["--no-map"])])
            console.print(f"Open it with `{again}` (the app then serves {url}).")
        return
    serve(lib, chosen, address=address, port=port, remote=remote)


def serve(lib, view: str | None, *, address: str = "127.0.0.1", port: int = 5151, remote: bool = False) -> None:
    """Run the app on the library's dataset until Ctrl-C."""
    from curator import fiftyone_sync
    from curator.fiftyone_database import dataset_name

    # Ctrl-C and `kill` both end the wait below. Python maps SIGINT to KeyboardInterrupt only
    # where the parent left it alone: a background job of a script starts with it ignored.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.default_int_handler)
    session = fiftyone_sync.launch(lib, view, address=address, port=port, open_browser=not remote)
    console.print(f"The FiftyOne app is serving {fiftyone_sync.app_url(dataset_name(lib), view, address, port)}")
    if remote:
        console.print(f"From another machine: ssh -N -L {port}:127.0.0.1:{port} USER@THIS-HOST, then open that address.")
    console.print("Press Ctrl-C to stop; then `curator pull` takes your edits into the library.")
    try:
        session.wait(-1)
    except KeyboardInterrupt:
        pass
    finally:
        fiftyone_sync.close(session)


def pull(
    resolve: ResolveOption = None,
    create: CreateOption = False,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Take edits made in the FiftyOne app into the library, each to label history (source fiftyone).

    Reads an edited ground_truth / subclass / unknown, and the tags label:CLASS, subclass:NAME,
    unknown, reject (or reject:REASON) and benchmark; any other new tag becomes a library tag.
    An image relabelled both in the library (since the last browse) and in the app is a
    conflict: it is listed, nothing is overwritten, until --resolve says which side wins.

    Example: curator pull --resolve fiftyone
    """
    from curator import fiftyone_pull

    lib = open_lib(db)
    with status("starting FiftyOne's database", quiet=json_) as say:
        result = fiftyone_pull.pull(lib, resolve=resolve, create=create, on_progress=say)
    if json_:
        return print_json(result)
    _show_pull(result)
    _show_sync(result["sync"])
    if result["conflicts"] or result["problems"]:
        raise typer.Exit(1)


def _show_pull(r: dict) -> None:
    console.print(f"From FiftyOne: {len(r['labels'])} labels, {len(r['rejected'])} rejected,"
                  f" {len(r['flagged'])} flagged benchmark, {len(r['tagged'])} tags;"
                  f" {len(r['conflicts'])} conflicts, {len(r['problems'])} problems.")
    if r["conflicts"]:
        t = table("Id", "Was", "Library", "FiftyOne", "Path", title="Label conflicts (nothing overwritten)")
        for c in r["conflicts"]:
            t.add_row(str(c["image_id"]), c["was"], c["library"], c["fiftyone"], c["path"])
        console.print(t)
        console.print("Settle them with `curator pull --resolve fiftyone` (take the app's) or `--resolve library`.")
    for p in r["problems"]:
        console.print(f"  image {p['image_id']}: {p['error']}")


def _show_sync(r: dict) -> None:
    console.print(f"Dataset {r['dataset']} ({_holds(r)}, predictions of {r['run'] or 'no run yet'}):"
                  f" {r['added']} added, {r['updated']} updated, {r['removed']} removed"
                  + (f", {r['kept_edits']} with app edits left for `curator pull`" if r["kept_edits"] else "")
                  + f"; database {r['database']}")
    if r["views"]:
        console.print("Saved views: " + ", ".join(f"{name} ({n})" for name, n in r["views"].items()))
    sim = r.get("similarity")
    if sim:
        console.print(f"Similarity index {sim['brain_key']} (embedder {sim['embedder']}): {sim['samples']} samples with"
                      f" a vector, {sim['written']} written now; in the app, select images and sort by similarity.")
    m = r.get("map")
    if m:
        console.print(f"2-D map {m['brain_key']} ({m['method']}, {m['samples']} samples, "
                      + (f"computed in {m['seconds']} s" if m["computed"] else "unchanged")
                      + "): the app's embeddings panel; colour by ground_truth.label or by cluster"
                      f" ({r['clustered']} samples in a discover cluster).")


def _holds(r: dict) -> str:
    """What the dataset holds, in words."""
    if not r.get("working_set"):
        return f"{r['samples']} samples"
    scope = r["scope"]
    parts = ([f"view {scope['view']}" if scope["view"] else "the saved views"]
             + [f"tagged {t}" for t in scope["tagged"]] + [f"predicted {c}" for c in scope["classes"]])
    return (f"{r['samples']} samples: a working set of the {r['active']:,} active images ({', '.join(parts)},"
            f" at most {scope['max_samples']:,}; `curator browse --all` mirrors them all)")
