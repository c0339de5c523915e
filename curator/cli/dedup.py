"""``curator dedup`` and ``curator duplicates``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from curator.cli.common import DbOption, JsonOption, console, open_lib, print_json, progress, table
from curator.defaults import DEFAULT_COLOR_THRESHOLD, DEFAULT_DETAIL_THRESHOLD, DEFAULT_MIN_SIMILARITY, DEFAULT_THRESHOLD


def register(app: typer.Typer) -> None:
    app.command("dedup")(dedup)
    app.command("duplicates")(duplicates)


def dedup(
    threshold: Annotated[int, typer.Option(help="Largest pHash distance (bits) that is a duplicate.")] = DEFAULT_THRESHOLD,
    color_threshold: Annotated[float, typer.Option(help="Largest colour difference (0-1, share of pixels in other colour bins) that is a duplicate.")] = DEFAULT_COLOR_THRESHOLD,
    detail_threshold: Annotated[int, typer.Option(help="Largest distance (of 256 bits, best alignment) between the fine pHashes"
                                                       " of a pair near in pHash that is a duplicate.")] = DEFAULT_DETAIL_THRESHOLD,
    full: Annotated[bool, typer.Option("--full", help="Compare every image again, not only the new ones.")] = False,
    embeddings: Annotated[Optional[str], typer.Option(
        "--embeddings", help="Also pair images whose vectors under this embedder (see `curator embedders`; a run's"
                             " name for its model's) are at least --min-similarity alike: crops, colour variants.")] = None,
    min_similarity: Annotated[float, typer.Option(help="With --embeddings: the cosine similarity (0-1] at and above"
                                                       " which two images are duplicates.")] = DEFAULT_MIN_SIMILARITY,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Group duplicate images: same pixels, near in perceptual hash and colour, or (with
    --embeddings) near in an embedder's vectors; all pairs join one set of groups.

    Incremental: only images added (or embedded) since the last run are compared (against all
    of them).

    Pairs near in pHash, also with 3% or 5% cut off either image's sides, are kept when alike in
    colour and in a finer 256-bit pHash (--detail-threshold).

    Example: curator dedup --threshold 8

    Example: curator dedup --embeddings tf_efficientnet_lite0 --min-similarity 0.93
    """
    from curator import dedup as dedup_lib

    with progress(quiet=json_) as bar:  # shown only while older images get their crop hashes
        task = bar.add_task("hashing images imported before crop hashes", total=None, visible=False)
        summary = dedup_lib.find_duplicates(
            open_lib(db), threshold=threshold, color_threshold=color_threshold, detail_threshold=detail_threshold,
            full=full, embeddings=embeddings, min_similarity=min_similarity,
            on_progress=lambda done, total: bar.update(task, completed=done, total=total, visible=True))
    if json_:
        return print_json(summary.to_dict())
    what = "all" if summary.full else "new"
    console.print(
        f"Compared {summary.compared} {what} of {summary.images} images in {summary.seconds:.1f} s:"
        f" {summary.new_pairs} duplicate pairs stored (of {summary.candidate_pairs} near in pHash,"
        f" {summary.unlike_in_color} unlike in colour, {summary.unlike_in_detail} in detail"
        f"{_by_embedding(summary)}), {summary.groups} groups holding"
        f" {summary.images_in_groups} images, {summary.conflicts} with conflicting labels."
    )
    if summary.conflicts:
        console.print("See them with `curator duplicates --conflicts`.")


def _by_embedding(summary) -> str:
    if not summary.embedding_pairs:
        return ""
    return f"; {summary.embedding_pairs} near in embedding, {summary.embedding_unlike_in_detail} of them unlike in detail"


def duplicates(
    group: Annotated[Optional[int], typer.Option(help="Show one group.")] = None,
    conflicts: Annotated[bool, typer.Option("--conflicts", help="Only groups whose members carry different labels, and paths filed under another label.")] = False,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """List duplicate groups (canonical image first), or the label conflicts among them.

    Example: curator duplicates --conflicts
    """
    from curator import dedup as dedup_lib

    lib = open_lib(db)
    if conflicts:
        found = dedup_lib.all_conflicts(lib)
        groups, locations = found.groups, found.locations
    else:
        groups, locations = dedup_lib.list_groups(lib, group), []
    if json_:
        return print_json({"groups": groups, "locations": locations} if conflicts else groups)
    t = table("Group", "Id", "Label", "Canonical", "Size", "Path")
    for g in groups:
        for m in sorted(g["members"], key=lambda m: not m["canonical"]):
            t.add_row(str(g["group"]), str(m["id"]), m["label"], "yes" if m["canonical"] else "",
                      f"{m['width']}x{m['height']}", m["path"])
    console.print(t)
    what = "groups with conflicting labels" if conflicts else "duplicate groups"
    console.print(f"{len(groups)} {what}.")
    if locations:
        console.print("Paths filed under another label than their image has:")
        for loc in locations:
            console.print(f"  {loc['path']}: folder says {loc['folder_label']}, image {loc['image']} is {loc['label']}")
