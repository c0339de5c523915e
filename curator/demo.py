"""The main job: the curation loop on ``sample_data/``, step by step, in a fresh library.

Each step is a function of the library that returns plain data; ``steps()`` yields them in
order so the CLI can print each as it finishes. Steps are added as the loop grows (splits,
training, bulk identification and FiftyOne come in later).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from curator import catalog, classes, dedup, ingest, splits
from curator.errors import InvalidInput
from curator.library import Library, init_library, open_library

DEFAULT_DB = Path("db") / "demo" / "curator.sqlite"


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
    init_library(path)
    return open_library(path)


def steps(lib: Library, data: Path, *, min_count: int = classes.DEFAULT_MIN_COUNT) -> Iterator[tuple[str, dict]]:
    """Run the loop on ``data`` (a sample_data/ layout), yielding (step, result) as each ends."""
    data = Path(data)
    parts = {"library": data / "library", "staged": data / "staged", "pool": data / "pool"}
    missing = [str(p) for p in parts.values() if not p.is_dir()]
    if missing:
        raise InvalidInput(f"no sample data at {missing[0]}: run from the repository root or pass --data")
    yield "import labelled images", ingest.import_paths(
        lib, [parts["library"]], labels_from_folders=True, source="sample-library").to_dict()
    yield "import staged images", ingest.import_paths(
        lib, [parts["staged"]], labels_from_folders=True, staged=True, source="sample-staged").to_dict()
    yield "import the unlabelled pool", ingest.import_paths(
        lib, [parts["pool"]], source="sample-pool").to_dict()
    with lib.session() as s:
        yield "classes", {"min_count": min_count, "classes": classes.class_table(s, min_count)}
    yield "find duplicates", dedup.find_duplicates(lib).to_dict()
    with lib.session() as s:
        yield "label conflicts", {"groups": dedup.label_conflicts(s)}
    yield "build-splits at 35 (throw-away)", splits.build(lib, min_count=35, name="throwaway-35")
    yield f"build-splits at {min_count}", splits.build(lib, min_count=min_count, name=f"min{min_count}")
    yield "library", catalog.stats(lib)
