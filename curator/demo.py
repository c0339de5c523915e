"""The main job: the curation loop on ``sample_data/``, step by step, in a fresh library.

Each step is a function of the library that returns plain data; ``steps()`` yields them in
order, each under its title (a ``Step``: the title, and the kind of step it is), so the CLI can
print each as it finishes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from curator import catalog, classes, dedup, ingest, splits
from curator.defaults import DEMO_DB as DEFAULT_DB, DEMO_EMBED_SIZE, DEMO_QUICK_TRAINING as QUICK_TRAINING
from curator.defaults import DEMO_TRAINING as TRAINING
from curator.errors import InvalidInput
from curator.library import Library, init_library, open_library


class Step(str):
    """A step's title, as printed and as its key in ``--json``; ``kind`` says what the step
    does (``import``, ``train``, ...), so a printer can be chosen for it without reading the title."""

    kind: str

    def __new__(cls, title: str, kind: str) -> Step:
        step = super().__new__(cls, title)
        step.kind = kind
        return step


def fresh_library(db: str | os.PathLike | None, *, replace: bool) -> Library:
    """A new, empty library for the demo. The demo's own default location is always replaced;
    another existing library only with ``replace``.

    Raises:
        InvalidInput: the library exists and may not be replaced.
    """
    path = Path(db or DEFAULT_DB)
    if path.exists() and not (replace or path.resolve() == DEFAULT_DB.resolve()):
        raise InvalidInput(f"{path} already exists: pass --fresh to replace it with the demo library")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(path.parent / "runs", ignore_errors=True)  # the old library's checkpoints
    init_library(path)
    lib = open_library(path)
    if (path.parent / "fiftyone").exists():  # the old library's FiftyOne dataset
        from curator import fiftyone_sync

        fiftyone_sync.forget(lib)
    return lib


def steps(lib: Library, data: Path, *, min_count: int = classes.DEFAULT_MIN_COUNT,
          training: dict | None = None, fiftyone: bool = True, embed_size: int = DEMO_EMBED_SIZE,
          on_epoch: Callable[[dict], None] | None = None) -> Iterator[tuple[Step, dict]]:
    """Run the loop on ``data`` (a sample_data/ layout), yielding (step, result) as each ends.

    Args:
        training: ``TrainConfig`` options for both runs (default ``TRAINING``; tests pass
            ``QUICK_TRAINING``).
        fiftyone: end by building the library's FiftyOne dataset with its saved views.
        embed_size: the input size of the pretrained Lite0 that embeds the library for discovery.
        on_epoch: called with each training epoch's row, as ``curator train`` shows them.
    """
    data = Path(data)
    parts = {"library": data / "library", "staged": data / "staged", "pool": data / "pool"}
    missing = [str(p) for p in parts.values() if not p.is_dir()]
    if missing:
        raise InvalidInput(f"no sample data at {missing[0]}: run from the repository root or pass --data")
    yield Step("import labelled images", "import"), ingest.import_paths(
        lib, [parts["library"]], labels_from_folders=True, source="sample-library").to_dict()
    yield Step("import staged images", "import"), ingest.import_paths(
        lib, [parts["staged"]], labels_from_folders=True, staged=True, source="sample-staged").to_dict()
    yield Step("import the unlabelled pool", "import"), ingest.import_paths(
        lib, [parts["pool"]], source="sample-pool").to_dict()
    yield Step("classes", "classes"), {"min_count": min_count, "classes": classes.class_table(lib, min_count)}
    yield Step("find duplicates", "duplicates"), dedup.find_duplicates(lib).to_dict()
    with lib.session() as s:
        yield Step("label conflicts", "conflicts"), {"groups": dedup.label_conflicts(s)}
    yield from _discover(lib, embed_size, min_count)
    yield Step("build-splits at 35 (throw-away)", "build-splits"), splits.build(
        lib, min_count=35, name="throwaway-35")
    training = training or TRAINING
    yield Step("train a throw-away model at 35", "train"), _train(
        lib, "throwaway-35", training, throwaway=True, on_epoch=on_epoch)
    yield from _identify_and_accept(lib, "throwaway-35", min_count)
    yield Step(f"build-splits at {min_count}", "build-splits"), splits.build(
        lib, min_count=min_count, name=f"min{min_count}")
    yield Step(f"warm-start at {min_count} with a new head", "train"), _train(
        lib, f"min{min_count}", {**training, "model": None, "weights": None}, warm_start="throwaway-35", on_epoch=on_epoch)
    if fiftyone:
        yield from _browse(lib, f"min{min_count}")
    yield Step("library", "library"), catalog.stats(lib)


def _browse(lib: Library, run: str) -> Iterator[tuple[Step, dict]]:
    """Identify what is left of the pool with the new model, then build the FiftyOne dataset."""
    from curator import fiftyone_sync, predict

    summary = predict.score(lib, run, predict.pool_ids(lib, "unlabelled") + predict.pool_ids(lib, "unknown"))
    summary.pool = "unlabelled and unknown"
    title = f"bulk-identify the rest of the pool and the unknown images with {run}"
    yield Step(title, "bulk-identify"), summary.to_dict()
    yield Step("FiftyOne dataset and saved views", "fiftyone"), fiftyone_sync.sync(lib, run, show_map=True)


ACCEPT_CONFIDENCE = 0.95
NEW_CLASS = "hand-fingers-partial"  # what the demo's user calls the biggest new cluster, having looked at it


def _discover(lib: Library, size: int, min_count: int) -> Iterator[tuple[Step, dict]]:
    """Embed with the pretrained Lite0, discover, make the biggest new cluster a class and grow it
    to the cutoff with `similar`: the pool's look-alike class enters both runs."""
    from curator import discover, embeddings, filters, similarity

    yield Step("embed with the pretrained EfficientNet-Lite0", "embed"), embeddings.embed(
        lib, weights=embeddings.LITE0, pool="all", size=size).to_dict()
    found = discover.discover(lib)
    yield Step("discover new classes", "discover"), found
    new = [c for c in found["clusters"] if c["inside"] is None]
    if not new:
        return
    biggest = max(new, key=lambda c: (c["size"], -c["cluster"]))
    done = discover.act(lib, biggest["cluster"], "label", NEW_CLASS, create=True)
    yield Step("make the biggest new cluster a class", "new-class"), {
        "cluster": biggest["cluster"], "class": NEW_CLASS, "labelled": len(done["changed"]), "nearest": biggest["nearest"]}
    grown = similarity.similar(lib, [str(i) for i in done["changed"]], k=max(1, min_count - len(done["changed"])))
    filters.act(lib, grown, "label", NEW_CLASS)
    yield Step(f"grow {NEW_CLASS} to the cutoff with similar", "grow"), {
        "class": NEW_CLASS, "labelled": len(grown["rows"]), "total": len(done["changed"]) + len(grown["rows"])}


def _identify_and_accept(lib: Library, run: str, min_count: int) -> Iterator[tuple[Step, dict]]:
    """Bulk-identify the pool, show coverage and a look-alike search, accept the confident batch."""
    from curator import filters, predict

    yield Step("bulk-identify the unlabelled pool", "bulk-identify"), predict.bulk_identify(
        lib, run, "unlabelled").to_dict()
    yield Step("coverage", "coverage"), {"min_count": min_count,
                                         "classes": filters.coverage(lib, run, min_count=min_count)}
    busiest = max(filters.coverage(lib, run, min_count=min_count), key=lambda r: r["labelled"])["class"]
    lookalike = filters.find(lib, filters.Query(run=run, predicted=busiest, max_confidence=0.6, label="unlabelled"))
    yield Step("look-alike search", "look-alike"), {"class": busiest, "max_confidence": 0.6, "total": lookalike["total"],
                                                    "paths": [r["path"] for r in lookalike["rows"][:5]]}
    confident = filters.find(lib, filters.Query(run=run, label="unlabelled", min_confidence=ACCEPT_CONFIDENCE))
    done = filters.act(lib, confident, "accept")
    yield Step("accept confident predictions", "accept"), {
        "min_confidence": ACCEPT_CONFIDENCE, "accepted": len(done["changed"]), "by_class": _count(confident["rows"])}


def _count(rows: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r["predicted"]] = out.get(r["predicted"], 0) + 1
    return dict(sorted(out.items()))


def _train(lib: Library, build: str, options: dict, *, throwaway: bool = False, warm_start: str | None = None,
           on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train, score the build's images, evaluate on test and count the images to review."""
    from curator import fit, train

    done = fit.fit(lib, build, train.TrainConfig(**options), name=build, throwaway=throwaway, warm_start=warm_start,
                   evaluate=("test",), on_epoch=on_epoch)
    return done.run | {"evaluation": done.evaluations.get("test"), "review": done.review}
