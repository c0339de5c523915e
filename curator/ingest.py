"""Importing images: walk folders, hash and check every file on all cores, record it.

An import is a stream of small transactions (``commit_every`` files each), so a kill loses at
most the files in flight and a re-run resumes: a path already recorded with the same size and
modification time is not read again (unless it could not be read then: a higher ``max_pixels``
or a reader installed since may read it now). The same bytes at a second path become a second location
of one image, never a second image; when the image's own path (``Image.path``) no longer exists,
the new location becomes it (a folder that moved and was imported again), recorded in its
history. A file that is not a usable image (empty, corrupt, truncated, not an image, a
decompression bomb, or anything else a decoder raises) is recorded as a rejected image with
the reason; it never stops the batch.

Imports run side by side (two terminals, or two machines against PostgreSQL): each chunk is
written in its turn, after the imports before it committed theirs, so an image another import
stored first is a duplicate path here, never a second image, and a path both find is recorded
once. A new import marks 'interrupted' only the 'running' batches whose import is gone, never
a live one's: see ``curator.ingest_locks``.

Every mode Pillow opens is read (palette, 1-bit, 16-bit, float, CMYK, animated, multi-page),
HEIC and AVIF where their readers are installed, and the bomb rule judges pixels against the
file's bytes: see ``curator.decode``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from curator import history, ingest_locks, tallies
from curator.classes import LabelSpec, parse_label, resolve
from curator.decode import IMAGE_SUFFIXES, MAX_PIXELS
from curator.errors import InvalidInput
from curator.image_probe import META, probe, worker_pool
from curator.library import Library
from curator.library.models import (
    ACTIVE,
    REJECTED,
    UNKNOWN,
    UNLABELLED,
    Image,
    ImageLocation,
    ImportBatch,
    utcnow,
)

SERIAL_BELOW = 48  # fewer new files than this are probed in-process: no pool start-up cost


@dataclass
class Candidate:
    """A file to import and the label its folders (or the options) give it."""

    path: str
    size: int
    mtime_ns: int
    label: LabelSpec


@dataclass
class ImportSummary:
    """What an import did. ``rejected`` and ``failed`` list (path, reason)."""

    batch_id: int
    files: int = 0
    added: int = 0
    duplicates: int = 0
    unchanged: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    conflicts: list[tuple[str, str, str]] = field(default_factory=list)
    ignored: int = 0
    added_by_label: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    interrupted: bool = False
    moved: int = 0  # images whose path was gone and is now the path found here
    readmitted: int = 0  # images unreadable at an earlier import, read this time
    warnings: list[str] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return (self.files - self.unchanged) / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "images_per_second": round(self.images_per_second, 1)}


# -- walking ---------------------------------------------------------------------------------


def folder_label(rel_parts: tuple[str, ...]) -> LabelSpec:
    """The label of a file at ``root/<parts...>/file``: ``class/subclass/file`` layout."""
    if not rel_parts:
        return LabelSpec(UNLABELLED)
    if rel_parts[0].lower() == UNKNOWN:
        return LabelSpec(UNKNOWN)
    return parse_label(rel_parts[0], rel_parts[1] if len(rel_parts) > 1 else None)


def walk(
    paths: Iterable[str | os.PathLike], *, labels_from_folders: bool, label: LabelSpec
) -> tuple[list[Candidate], int]:
    """Every image file under ``paths`` (sorted, hidden files skipped) and how many non-image
    files were passed over. A file named directly is always a candidate.

    Raises:
        InvalidInput: a path does not exist.
    """
    found: list[Candidate] = []
    ignored = 0
    for root in map(Path, paths):
        root = root.expanduser().resolve()
        if not root.exists():
            raise InvalidInput(f"no such file or folder: {root}")
        if root.is_file():
            found.append(_candidate(root, label))
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                p = Path(dirpath, name)
                if p.suffix.lower() not in IMAGE_SUFFIXES:
                    ignored += 1
                    continue
                spec = folder_label(p.relative_to(root).parts[:-1]) if labels_from_folders else label
                found.append(_candidate(p, spec))
    return found, ignored


def _candidate(path: Path, label: LabelSpec) -> Candidate:
    st = path.stat()
    return Candidate(str(path), st.st_size, st.st_mtime_ns, label)


# -- the import ------------------------------------------------------------------------------


def import_paths(
    lib: Library,
    paths: Iterable[str | os.PathLike],
    *,
    labels_from_folders: bool = False,
    label: str | None = None,
    unknown: bool = False,
    staged: bool = False,
    synthetic: bool = False,
    benchmark: bool = False,
    source: str | None = None,
    workers: int | None = None,
    commit_every: int = 256,
    max_pixels: int | None = MAX_PIXELS,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ImportSummary:
    """Import image files and folders into the library.

    Args:
        paths: files and folders; folders are walked recursively.
        labels_from_folders: ``root/class/[subclass/]file``; a top folder ``unknown`` marks
            files unknown; files directly under a root are unlabelled.
        label: ``class`` or ``class/subclass`` for every new image. ``unknown``: all unknown.
        staged, synthetic, benchmark: flags for every new image.
        source: a name for where these came from (default: the first path's folder name).
        workers: processes hashing and decoding (default: every core).
        commit_every: files per transaction; a kill loses at most this many.
        max_pixels: refuse images with more pixels than this (None: no hard limit); sparse
            files over 89.5 Mpx are refused whatever it is (see ``curator.decode``).
        on_progress: called with (files done, files in all) as the import goes.
        should_stop: polled after every file; when it says True, what was read is written
            and the import ends early (``summary.interrupted``). A re-run resumes.

    Returns:
        An ImportSummary. Existing images never change label through an import.
    """
    paths = [Path(p) for p in paths]
    spec = _options_label(labels_from_folders, label, unknown, staged, synthetic)
    if not paths:
        raise InvalidInput("name at least one file or folder to import")
    candidates, ignored = walk(paths, labels_from_folders=labels_from_folders, label=spec)
    flags = {"staged": staged, "synthetic": synthetic, "benchmark": benchmark}
    source = source or paths[0].expanduser().resolve().name or "import"
    with contextlib.ExitStack() as alive:
        batch_id = _start_batch(lib, alive, paths, source, labels_from_folders, label, unknown, flags)
        summary = ImportSummary(batch_id, files=len(candidates), ignored=ignored)
        if not candidates:
            summary.warnings.append(_nothing_found(paths, ignored))
        started = time.perf_counter()
        writer = _Writer(lib, summary, source, flags)
        status = "interrupted"
        stop = should_stop or (lambda: False)
        try:
            todo = writer.skip_unchanged(candidates, on_progress)
            for chunk in _chunks(_probed(todo, workers, max_pixels), commit_every, stop):
                writer.write(chunk)
                if on_progress:
                    on_progress(summary.unchanged + writer.written, len(candidates))
            summary.interrupted = writer.written < len(todo)
            status = "interrupted" if summary.interrupted else "done"
        finally:
            summary.seconds = time.perf_counter() - started
            _finish_batch(lib, summary, status)
    tallies.settle_library(lib, at=tallies.WRITER_SETTLE_AT)
    return summary


def _options_label(from_folders, label, unknown, staged, synthetic) -> LabelSpec:
    if staged and synthetic:
        raise InvalidInput("--staged and --synthetic exclude each other: import them separately")
    if from_folders and (label or unknown):
        raise InvalidInput("--labels-from-folders takes labels from folders: drop --class/--unknown")
    if label and unknown:
        raise InvalidInput("--class and --unknown exclude each other")
    if unknown:
        return LabelSpec(UNKNOWN)
    return parse_label(label) if label else LabelSpec(UNLABELLED)


def _nothing_found(paths: list[Path], ignored: int) -> str:
    where = ", ".join(str(p) for p in paths)
    return (f"no image files found in {where} ({ignored} other files ignored); curator imports"
            f" {' '.join(sorted(IMAGE_SUFFIXES))}")


def _probed(todo: list[Candidate], workers: int | None, max_pixels: int | None) -> Iterator[tuple[Candidate, dict]]:
    """(candidate, probe result) in input order, from a process pool when it pays."""
    workers = workers or os.cpu_count() or 1
    read = functools.partial(probe, max_pixels=max_pixels)
    if workers == 1 or len(todo) < SERIAL_BELOW:
        for c in todo:
            yield c, read(c.path)
        return
    import imagehash  # noqa: F401  (loaded once here, forked workers inherit it: no start-up cost)
    with worker_pool(workers) as pool:
        # imap keeps order (ids follow the walk) and streams: memory stays flat as N grows.
        yield from zip(todo, pool.imap(read, [c.path for c in todo], chunksize=4))


def _chunks(items: Iterable, size: int, stop: Callable[[], bool] = lambda: False) -> Iterator[list]:
    """Lists of ``size`` items; ends early, with what it has, once ``stop()`` is true."""
    chunk = []
    for item in items:
        chunk.append(item)
        stopping = stop()
        if len(chunk) >= size or stopping:
            yield chunk
            chunk = []
        if stopping:
            return
    if chunk:
        yield chunk


def _unread():
    """Images rejected at import because they could not be read (no size: never decoded)."""
    return (Image.status == REJECTED) & Image.width.is_(None)


def _start_batch(lib, alive: contextlib.ExitStack, paths, source, from_folders, label, unknown, flags) -> int:
    """A new 'running' batch, whose lock ``alive`` holds from before it is committed; batches
    left 'running' by imports that are gone become 'interrupted' (see ``curator.ingest_locks``)."""
    with lib.session() as s:
        ingest_locks.take_turn(s)  # SQLite: the running batches read now are the latest
        for batch_id in s.scalars(select(ImportBatch.id).where(ImportBatch.status == "running")).all():
            if not ingest_locks.alive(s, lib, batch_id):  # killed: its lock went with it
                s.execute(update(ImportBatch).where(ImportBatch.id == batch_id, ImportBatch.status == "running")
                          .values(status="interrupted"))
        options = {"labels_from_folders": from_folders, "class": label, "unknown": unknown, **flags}
        batch = ImportBatch(
            source=source,
            roots=json.dumps([str(p.expanduser().resolve()) for p in paths]),
            options=json.dumps(options),
            status="running",
        )
        s.add(batch)
        s.flush()
        alive.enter_context(ingest_locks.holding(lib, batch.id))  # before another import sees it
        return batch.id


def _finish_batch(lib: Library, summary: ImportSummary, status: str) -> None:
    with lib.session() as s:
        batch = s.get(ImportBatch, summary.batch_id)
        batch.status, batch.finished_at = status, utcnow()
        batch.added, batch.duplicates = summary.added, summary.duplicates
        batch.rejected, batch.unchanged = len(summary.rejected), summary.unchanged


class _Writer:
    """Writes probe results to the library, one transaction per chunk."""

    def __init__(self, lib: Library, summary: ImportSummary, source: str, flags: dict):
        self.lib, self.summary, self.source, self.flags = lib, summary, source, flags
        self.written = 0

    def skip_unchanged(self, candidates, on_progress) -> list[Candidate]:
        """Drop candidates whose path is recorded with the same size and mtime, unless its image
        could not be read then (it may be now: a higher --max-pixels, a reader installed since)."""
        todo = []
        with self.lib.session() as s:
            for chunk in _chunks(candidates, 500):
                known = {
                    row.path: (row.size, row.mtime_ns)
                    for row in s.execute(
                        select(ImageLocation.path, ImageLocation.size, ImageLocation.mtime_ns)
                        .join(Image, Image.id == ImageLocation.image_id)
                        .where(ImageLocation.path.in_([c.path for c in chunk]), ~_unread())
                    )
                }
                todo += [c for c in chunk if known.get(c.path) != (c.size, c.mtime_ns)]
        self.summary.unchanged = len(candidates) - len(todo)
        if on_progress:
            on_progress(self.summary.unchanged, len(candidates))
        return todo

    def write(self, chunk: list[tuple[Candidate, dict]]) -> None:
        with self.lib.session() as s:
            ingest_locks.take_turn(s)  # another import's images and paths are committed and seen
            shas = {r["sha256"] for _, r in chunk if r["sha256"]}
            images = {im.sha256: im for im in s.scalars(select(Image).where(Image.sha256.in_(shas)))}
            paths = [c.path for c, _ in chunk]
            locations = {
                loc.path: loc
                for loc in s.scalars(select(ImageLocation).where(ImageLocation.path.in_(paths)))
            }
            self._labels: dict[LabelSpec, tuple] = {}  # class rows, looked up once a chunk
            for cand, result in chunk:
                self._one(s, cand, result, images, locations)
        self.written += len(chunk)

    def _one(self, s: Session, cand: Candidate, result: dict, images: dict, locations: dict) -> None:
        if result["sha256"] is None:  # could not even read the bytes: nothing to record
            self.summary.failed.append((cand.path, result["reason"]))
            return
        image = images.get(result["sha256"])
        if image is None:
            image = images[result["sha256"]] = self._new_image(s, cand, result)
        elif image.status == REJECTED and image.width is None:
            self._read_again(s, image, cand, result)
        else:
            self.summary.duplicates += 1
            if cand.label.state != UNLABELLED and str(cand.label) != image.label:
                self.summary.conflicts.append((cand.path, str(cand.label), image.label))
            self._move_if_gone(s, image, cand.path)
        loc = locations.get(cand.path)
        if loc is None:  # the path is new
            loc = locations[cand.path] = ImageLocation(path=cand.path)
            s.add(loc)
        loc.image, loc.size, loc.mtime_ns = image, cand.size, cand.mtime_ns
        loc.folder_label = str(cand.label) if cand.label.state != UNLABELLED else None
        loc.batch_id = self.summary.batch_id

    def _read_again(self, s: Session, image: Image, cand: Candidate, r: dict) -> None:
        """An image unreadable at an earlier import: rejected again, or now read and active."""
        if r["reason"]:
            image.reject_reason = r["reason"]
            self.summary.rejected.append((cand.path, r["reason"]))
            return
        for key in META:
            setattr(image, key, r.get(key))
        history.record(s, image, "readmit", "status", f"rejected: {image.reject_reason}", ACTIVE,
                       source="import", detail=f"batch {self.summary.batch_id}: read this time")
        image.status, image.reject_reason = ACTIVE, None
        self.summary.readmitted += 1

    def _move_if_gone(self, s: Session, image: Image, path: str) -> None:
        """A folder that moved and is imported again: its new place becomes the image's path."""
        if image.path == path or os.path.exists(image.path):
            return
        history.record(s, image, "move", "path", image.path, path, source="import",
                       detail=f"batch {self.summary.batch_id}: the old path is gone")
        image.path = path
        self.summary.moved += 1

    def _new_image(self, s: Session, cand: Candidate, r: dict) -> Image:
        if cand.label not in self._labels:
            self._labels[cand.label] = resolve(s, cand.label, create=True)
        cls, sub = self._labels[cand.label]
        image = Image(
            sha256=r["sha256"], bytes=r["bytes"], path=cand.path, **{key: r.get(key) for key in META},
            source=self.source, batch_id=self.summary.batch_id, added_at=utcnow(),
            status=REJECTED if r["reason"] else ACTIVE, reject_reason=r["reason"],
            label_state=cand.label.state, label_class=cls, subclass=sub, **self.flags,
        )
        s.add(image)
        detail = f"batch {self.summary.batch_id}"
        history.record(s, image, "import", "label", None, image.label, source="import", detail=detail)
        if r["reason"]:
            history.record(s, image, "reject", "status", None, f"rejected: {r['reason']}",
                           source="import", detail=detail)
            self.summary.rejected.append((cand.path, r["reason"]))
        else:
            self.summary.added += 1
            by = self.summary.added_by_label
            by[image.label] = by.get(image.label, 0) + 1
        return image
