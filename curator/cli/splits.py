"""``curator build-splits`` and ``curator splits`` (list, show, export, check)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from curator.cli.common import DbOption, JsonOption, console, open_lib, print_json, table

app = typer.Typer(help="Split builds: list, show, export, check.")


def register(root: typer.Typer) -> None:
    root.command("build-splits")(build_splits)
    root.add_typer(app, name="splits")


def build_splits(
    min_count: Annotated[int, typer.Option(help="Classes need this many usable images (duplicate groups count once).")] = 40,
    max_count: Annotated[Optional[int], typer.Option(help="Sample larger classes down to this, evenly across sub-classes.")] = None,
    val: Annotated[float, typer.Option(help="Share of each class's real images for validation.")] = 0.1,
    test: Annotated[float, typer.Option(help="Share of each class's real images for test.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the content hash that ranks images.")] = 0,
    name: Annotated[Optional[str], typer.Option(help="Name of the build [default: min<COUNT>-<N>].")] = None,
    include_staged: Annotated[bool, typer.Option("--include-staged/--exclude-staged", help="Train on staged and synthetic images too (never validated or tested on).")] = True,
    dedup: Annotated[bool, typer.Option("--dedup/--no-dedup", help="Bring duplicate groups up to date first (incremental).")] = True,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Build a named train/val/test/benchmark split with a per-class cutoff, and check it.

    Stable: images keep the split they had in the last build with the same options.

    Example: curator build-splits --min-count 35 --name throwaway-35
    """
    from curator import splits as splits_lib

    report = splits_lib.build(open_lib(db), min_count=min_count, max_count=max_count, val=val,
                              test=test, seed=seed, include_staged=include_staged, name=name,
                              dedup_first=dedup)
    if json_:
        return print_json(report)
    t = report["totals"]
    prev = f", keeping the splits of {report['previous']}" if report["previous"] else ""
    console.print(f"Built {report['name']}{prev}: {len(report['classes'])} classes, {t['train']} train,"
                  f" {t['val']} val, {t['test']} test, {t['benchmark']} benchmark images.")
    if report["below_cutoff"]:
        console.print(f"Below --min-count {min_count} (left out): " + ", ".join(
            f"{c} needs {n} more" for c, n in sorted(report["below_cutoff"].items())))
    for line in report["problems"]:
        console.print(f"  {line}")
    leaks = report["leaks"]
    console.print("Leak check: " + ("passed." if not leaks else f"{len(leaks)} problems:"))
    for line in leaks:
        console.print(f"  {line}")


@app.callback(invoke_without_command=True)
def splits(ctx: typer.Context, db: DbOption = None, json_: JsonOption = False) -> None:
    """List split builds.

    Example: curator splits
    """
    if ctx.invoked_subcommand is not None:
        return
    from curator import splits as splits_lib

    builds = splits_lib.list_builds(open_lib(db))
    if json_:
        return print_json(builds)
    t = table("Name", "Created (UTC)", "Classes", "Images", "Options")
    for b in builds:
        opts = " ".join(f"{k}={v}" for k, v in b["params"].items() if v is not None)
        t.add_row(b["name"], b["created_at"], str(b["classes"]), str(b["images"]), opts)
    console.print(t)


NameArg = Annotated[str, typer.Argument(help="The build's name.")]


@app.command("show")
def show(name: NameArg, db: DbOption = None, json_: JsonOption = False) -> None:
    """Per-class image counts per split of one build, and its report.

    Example: curator splits show min40-1
    """
    from curator import splits as splits_lib

    data = splits_lib.show(open_lib(db), name)
    if json_:
        return print_json(data)
    t = table("Class", *(s.title() for s in splits_lib.SPLITS))
    for cls, counts in data["counts"].items():
        t.add_row(cls, *(str(counts[s]) for s in splits_lib.SPLITS))
    console.print(f"{data['name']} ({data['created_at']}): " + " ".join(f"{k}={v}" for k, v in data["params"].items()))
    console.print(t)
    for line in data["report"].get("problems", []):
        console.print(f"  {line}")


@app.command("export")
def export(name: NameArg, out: Annotated[Path, typer.Argument(help="Folder to write to.")],
           format: Annotated[str, typer.Option(help="imagefolder (a tree of links) or csv.")] = "imagefolder",
           db: DbOption = None, json_: JsonOption = False) -> None:
    """Write a build for other tools: an ImageFolder tree of links (not copies), or a CSV.

    Example: curator splits export min40-1 exports/min40-1 --format imagefolder
    """
    from curator import splits as splits_lib

    result = splits_lib.export(open_lib(db), name, out, format=format)
    if json_:
        return print_json(result)
    console.print(f"Wrote {result['images']} images of {name} to {result['path']} ({format}).")


@app.command("check")
def check(name: NameArg, db: DbOption = None, json_: JsonOption = False) -> None:
    """Prove a build has no leakage: no duplicate group or identical hash in two splits.

    Example: curator splits check min40-1
    """
    from curator import splits as splits_lib

    problems = splits_lib.check(open_lib(db), name)
    if json_:
        return print_json({"name": name, "leaks": problems})
    if problems:
        for line in problems:
            console.print(line)
        raise typer.Exit(1)
    console.print(f"{name}: no leaks.")
