"""``curator discover``: clusters of pool images that no class explains, and acting on one."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from curator.cli.common import (
    CsvOption, DbOption, EmbedderOption, JsonOption, PathsOption, console, err_console, open_lib,
    print_json, print_rows, progress, show_notes, status, table,
)


def register(app: typer.Typer) -> None:
    app.command("discover")(discover)


def discover(
    pool: Annotated[str, typer.Option(help="Which pool images: unknown, unlabelled or both.")] = "both",
    embedder: EmbedderOption = None,
    min_size: Annotated[int, typer.Option(help="The fewest images a cluster has.", min=2)] = 5,
    share: Annotated[float, typer.Option(help="Of the unlabelled pool, the most unfamiliar share clustered (every unknown image is).")] = 0.3,
    max_confidence: Annotated[Optional[float], typer.Option(help="Also cluster the pool images a run predicts at this confidence or less.", show_default=False)] = None,
    run: Annotated[Optional[str], typer.Option(help="With --max-confidence: whose predictions [default: the newest run that predicted the pool].", show_default=False)] = None,
    list_: Annotated[bool, typer.Option("--list", help="Show the stored clusters of the newest discovery; cluster nothing.")] = False,
    every: Annotated[bool, typer.Option("--all", help="With --list: every cluster ever found, whatever its state.")] = False,
    cluster: Annotated[Optional[int], typer.Option(help="Show (or act on) this cluster's images; clusters nothing.", show_default=False)] = None,
    label: Annotated[Optional[str], typer.Option("--label", help="Action: label the cluster's images CLASS (with --create: a new class).", show_default=False)] = None,
    subclass: Annotated[Optional[str], typer.Option(help="With --label: the sub-class.", show_default=False)] = None,
    create: Annotated[bool, typer.Option("--create", help="With --label: create the class (and sub-class) if new.")] = False,
    tag: Annotated[Optional[str], typer.Option(help="Action: tag the cluster's images.", show_default=False)] = None,
    unknown: Annotated[bool, typer.Option("--unknown", help="Action: mark the cluster's images unknown.")] = False,
    reject: Annotated[Optional[str], typer.Option(help="Action: reject the cluster's images with this reason.", show_default=False)] = None,
    dismiss: Annotated[bool, typer.Option("--dismiss", help="Action: mark the cluster as seen and not a class (its images stay as they are).")] = False,
    exclude: Annotated[Optional[list[str]], typer.Option(help="Leave this image out of the cluster first (repeat; ids, paths or sha256 prefixes).", show_default=False)] = None,
    csv_: CsvOption = False,
    paths: PathsOption = False,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Group the pool images that no class explains into clusters: new classes, sub-classes, look-alikes.

    Clusters every unknown image and the most unfamiliar --share of the unlabelled pool (as
    `find --unfamiliar` ranks them) by their embeddings, and lists each cluster with its size,
    cohesion, the nearest classes and how many of its images are unknown. A cluster that sits
    inside a known class is named as a probable sub-class or look-alike of it. Clusters are
    stored: a number means the same cluster until a later discovery no longer finds it.

    With --cluster N: that cluster's images; with one action (--label NEW --create, --tag T,
    --unknown, --reject REASON, --dismiss) and any --exclude, each change goes to label history
    with source `discover`.

    Example: curator discover --min-size 5 && curator discover --cluster 3 --label wallaby --create --exclude 812
    """
    from curator import discover as service

    actions = {"label": label, "tag": tag, "unknown": unknown or None, "reject": reject, "dismiss": dismiss or None}
    chosen = [(name, None if value is True else value) for name, value in actions.items() if value is not None]
    if len(chosen) > 1:
        raise typer.BadParameter("give at most one action: --label, --tag, --unknown, --reject or --dismiss")
    if (chosen or exclude) and cluster is None:
        raise typer.BadParameter("an action needs --cluster N: `curator discover --list` shows the numbers")
    lib = open_lib(db)
    if cluster is not None and (chosen or exclude):
        action, value = chosen[0] if chosen else (None, None)
        with progress(quiet=json_) as bar:
            task = bar.add_task(action or "exclude", total=None)
            done = service.act(lib, cluster, action, value, subclass=subclass, create=create, exclude=exclude or (),
                               on_progress=lambda n: bar.update(task, completed=n))
        return print_json(done) if json_ else _print_done(done)
    if cluster is not None:
        return _print_members(service.members(lib, cluster), json_=json_, csv_=csv_, paths=paths)
    if list_:
        result = service.listing(lib, every=every)
    else:
        with status("discovering", quiet=json_) as say:
            result = service.discover(lib, pool=pool, embedder=embedder, min_size=min_size, share=share,
                                      max_confidence=max_confidence, run=run, on_step=say)
    show_notes(result["notes"])
    _print_clusters(result, json_=json_, csv_=csv_, paths=paths)


def _nearest(row: dict) -> str:
    return ", ".join(f"{n['class']} {1 - n['similarity']:.2f}" for n in row["nearest"]) or "-"


def _kind(row: dict) -> str:
    return f"inside {row['inside']}: sub-class or look-alike?" if row["inside"] else "new class?"


def _print_clusters(result: dict, *, json_: bool, csv_: bool, paths: bool) -> None:
    rows, d = result["clusters"], result["discovery"]
    if json_:
        return print_json(result)
    plain = ([{"path": p} for r in rows for p in r["examples"]] if paths else
             [{**r, "nearest": _nearest(r), "inside": r["inside"] or "", "examples": " ".join(r["examples"])} for r in rows])
    if print_rows(plain, ["cluster", "state", "size", "cohesion", "unknown", "nearest", "inside", "examples"],
                  csv_=csv_, paths=paths):
        return
    t = table("Cluster", "Size", "Cohesion", "Unknown", "Nearest classes (distance)", "Reads as", "Example",
              title=f"Discovery {d['id']}: {d['clustered']:,} of {d['candidates']:,} pool images clustered"
                    f" ({d['pool']}, embedder {d['embedder']}, min size {d['min_size']}), {d['noise']:,} in no cluster")
    for r in rows:
        state = "" if r["state"] == "open" else f" ({r['state']})"
        t.add_row(f"{r['cluster']}{state}", str(r["size"]), f"{r['cohesion']:.2f}", str(r["unknown"]), _nearest(r),
                  _kind(r), r["examples"][0] if r["examples"] else "")
    console.print(t)
    if rows:
        n = rows[0]["cluster"]
        console.print(f"Look at one: curator discover --cluster {n}; make it a class:"
                      f" curator discover --cluster {n} --label NEW --create [--exclude IMAGE ...]")


def _print_members(row: dict, *, json_: bool, csv_: bool, paths: bool) -> None:
    if json_:
        return print_json(row)
    shown = [i for i in row["images"] if not i["excluded"]] if paths else row["images"]
    if print_rows(shown, ["image_id", "path", "label_state", "excluded"], csv_=csv_, paths=paths):
        return
    t = table("Id", "Path", "Label", "Excluded",
              title=f"Cluster {row['cluster']} ({row['state']}): {row['size']} images, cohesion {row['cohesion']:.2f},"
                    f" nearest {_nearest(row)}; {_kind(row)}")
    for i in row["images"]:
        t.add_row(str(i["image_id"]), i["path"], i["label_state"], "yes" if i["excluded"] else "")
    console.print(t)


def _print_done(done: dict) -> None:
    what = done["action"] or "exclude"
    err_console.print(f"Cluster {done['cluster']}: {what}{' ' + done['value'] if done['value'] else ''}:"
                      f" {len(done['changed'])} images changed, {done['unchanged']} already so,"
                      f" {len(done['excluded'])} excluded; the cluster is now {done['state']}.")
