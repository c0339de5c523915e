"""The library as a FiftyOne dataset: build or refresh it, save one view per filter, show it in the app.

One persistent dataset per library, in a FiftyOne database kept in the library's folder
(``curator.fiftyone_database``). The library is the source of truth:

- ``sync`` adds new images, rewrites only samples whose library row changed (each sample carries
  a signature of what it was built from: ``curator.fiftyone_samples``), removes images no longer
  active (or, for a working set, no longer in it: ``curator.fiftyone_views``), and re-saves the
  views. A sample with app edits not yet pulled is never removed for leaving the working set,
  nor are its edits overwritten. A dataset that is missing or damaged is rebuilt.
- ``curator.fiftyone_pull.pull`` takes edits made in the app back, then refreshes.
- ``launch`` and ``close`` start and stop the app on it.

Every saved view is the exact result of ``curator find`` with the same options, in its order
(``curator.fiftyone_views``). What needs FiftyOne's internals is in ``curator.fiftyone_internals``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from curator import fiftyone_internals as internals
from curator.errors import NotFound
from curator.fiftyone_database import connect, dataset_name, where
from curator.fiftyone_pull import app_state, pending
from curator.fiftyone_samples import add_samples, library_rows, resolve_run, write_samples
from curator.fiftyone_views import (
    Scope,
    active_images,
    find_views,
    is_working_set,
    save_views,
    working_set,
)
from curator.library import Library

if TYPE_CHECKING:
    from curator.library.models import Run

REQUIRED = ("curator_id", "curator_sig", "synced_label", "ground_truth", "predictions")


def _healthy(dataset, lib: Library) -> bool:
    try:
        schema = dataset.get_field_schema()
        return all(f in schema for f in REQUIRED) and dataset.info.get("library") == lib.display
    except Exception:  # noqa: BLE001  a damaged dataset: rebuilt from the library
        return False


def open_dataset(lib: Library, *, create: bool = True):
    """The library's dataset (created or rebuilt when missing or damaged if ``create``), or None."""
    fo = connect(lib)
    name = dataset_name(lib)
    dataset = None
    if fo.dataset_exists(name):
        try:
            dataset = fo.load_dataset(name)
        except Exception:  # noqa: BLE001
            dataset = None
        if dataset is None or not _healthy(dataset, lib):
            if dataset is not None:
                dataset.delete()
            else:
                fo.delete_dataset(name)
            dataset = None
    if dataset is None and create:
        dataset = fo.Dataset(name, persistent=True)
        dataset.info = {"library": lib.display}
        dataset.save()
        for f, kind in [("curator_id", fo.IntField), ("curator_sig", fo.StringField),
                        ("synced_label", fo.StringField), ("subclass", fo.StringField),
                        ("unknown", fo.BooleanField), ("staged", fo.BooleanField),
                        ("synthetic", fo.BooleanField), ("benchmark", fo.BooleanField),
                        ("dup_group", fo.IntField), ("label_conflict", fo.BooleanField),
                        ("suspected", fo.StringField), ("suspect_score", fo.FloatField)]:
            dataset.add_sample_field(f, kind)
        for f in ("ground_truth", "predictions"):
            dataset.add_sample_field(f, fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
        dataset.add_sample_field("top_k", fo.EmbeddedDocumentField, embedded_doc_type=fo.Classifications)
        dataset.create_index("curator_id", unique=True)
    return dataset


def forget(lib: Library) -> bool:
    """Delete the library's dataset (when the library itself is replaced). True if there was one."""
    fo = connect(lib)
    name = dataset_name(lib)
    if not fo.dataset_exists(name):
        return False
    fo.delete_dataset(name)
    return True


def sync(lib: Library, run: str | None = None, *, scope: Scope | None = None, embedder: str | None = None,
         show_map: bool = False, on_progress=None) -> dict:
    """Build or refresh the library's dataset, its saved views, its similarity index and its map.

    Args:
        run: the run whose predictions to show (name, id, ``latest``, ``production``); by
            default the newest training run that predicted the pool, or none yet.
        scope: every active image or a working set (see ``curator.fiftyone_views``); by
            default the dataset's last scope, else chosen by the library's size.
        embedder: whose vectors to index for "sort by similarity" (and the ``unfamiliar`` and
            ``outliers`` views); by default the one ``find --unfamiliar`` uses, if it has
            vectors (``curator.fiftyone_similarity``).
        show_map: compute the vectors' 2-D map when there is none or it is stale (``curator browse``
            does unless ``--no-map``); without it, a map still fresh is kept (``curator.fiftyone_map``).
        on_progress: called with a short message at each stage.

    Returns:
        ``{"dataset", "database", "run", "notes", "samples", "working_set", "scope", "active",
        "added", "updated", "removed", "kept_edits", "views", "similarity", "map", "clustered"}``: ``notes`` as
        ``curator.runs.pick_run`` gives them; ``kept_edits`` counts samples whose pending app
        edits were left for ``pull`` (kept in the dataset even outside the working set);
        ``similarity`` as ``fiftyone_similarity.refresh`` returns it (None: no embeddings), ``map``
        as ``fiftyone_map.refresh`` does, ``clustered``: samples in a live ``discover`` cluster.

    Raises:
        InvalidInput: a working set's view, tag or class that is not there.
        NotFound: ``embedder`` names no embedder or run.
    """
    from curator import fiftyone_map, fiftyone_similarity

    say = on_progress or (lambda msg: None)
    found_run, notes = resolve_run(lib, run)
    found_embedder, more = fiftyone_similarity.pick(lib, embedder)
    notes = notes + more
    dataset, scope, whole, views = _open_and_find(lib, found_run, scope, say, found_embedder)
    state = app_state(dataset)
    wanted, held = None, []
    if not whole:
        wanted = working_set(lib, found_run, scope, views)
        members = set(wanted)
        held = [i for i in state if i not in members and pending(state[i])]  # pull decides those
        wanted += held
    say("reading the library")
    rows = library_rows(lib, found_run, wanted, conflicted=set(views["label-conflicts"][1]))
    new = [rows[i] for i in rows if i not in state]
    gone = [state[i]["id"] for i in state if i not in rows]
    changed = [i for i in rows if i in state and state[i]["curator_sig"] != rows[i]["sig"]]
    kept = {i for i in changed if pending(state[i])}
    if gone:
        say(f"removing {len(gone)} samples")
        dataset.delete_samples(gone)
    if changed:
        say(f"updating {len(changed)} samples")
        write_samples(dataset, {i: rows[i] for i in changed}, keep=kept, state=state)
    sample_ids = {i: state[i]["id"] for i in rows if i in state}
    if new:
        say(f"adding {len(new)} samples")
        sample_ids.update(add_samples(dataset, new))
    dataset.info = {**dataset.info, "library": lib.display, "run": found_run.name if found_run else None,
                    "scope": asdict(scope)}
    dataset.save()
    similarity = fiftyone_similarity.refresh(lib, dataset, found_embedder, sample_ids, added=len(new), say=say)
    mapped = fiftyone_map.refresh(dataset, similarity, wanted=show_map, say=say)
    clustered = fiftyone_map.write_clusters(lib, dataset, sample_ids)
    say("saving views")
    sizes = save_views(lib, dataset, found_run, views, sample_ids=sample_ids)
    return {"dataset": dataset.name, "database": where(lib),
            "run": found_run.name if found_run else None, "notes": notes, "samples": len(dataset),
            "working_set": wanted is not None, "scope": asdict(scope), "active": len(rows) if wanted is None else active_images(lib),
            "added": len(new), "updated": len(changed), "removed": len(gone), "kept_edits": len(kept | (set(held) & set(rows))),
            "views": sizes, "similarity": similarity, "map": mapped, "clustered": clustered}


def _open_and_find(lib: Library, run: Run | None, scope: Scope | None, say, embedder=None) -> tuple:
    """``(dataset, scope, whole, views)``: the library's dataset, the scope (the dataset's last
    when ``scope`` is None), whether it mirrors every image, and ``find_views``'s answer.

    The views' queries run while FiftyOne is imported and its database starts (~9 s): the
    database does their work outside Python's lock, so the two overlap.
    """
    from concurrent.futures import ThreadPoolExecutor

    def find(whole: bool):
        return find_views(lib, run, limit=None if whole else scope.max_samples,
                          embedder=embedder.name if embedder is not None else None)

    whole = None if scope is None else not is_working_set(lib, scope)
    with ThreadPoolExecutor(1) as pool:
        found = None if scope is None else pool.submit(find, whole)
        dataset = open_dataset(lib)
        say("finding the saved views' images")
        if found is None:
            scope = Scope(**dataset.info.get("scope", {}))
            whole = not is_working_set(lib, scope)
            found = pool.submit(find, whole)
        return dataset, scope, whole, found.result()


# -- the app ----------------------------------------------------------------------------------

def app_url(dataset: str, view: str | None, address: str = "127.0.0.1", port: int = 5151) -> str:
    """Where the app shows ``dataset`` (and a saved view of it)."""
    from fiftyone.core.utils import to_slug

    url = f"http://{address}:{port}/datasets/{to_slug(dataset)}"
    return url + (f"?view={to_slug(view)}" if view else "")


def launch(lib: Library, view: str | None = None, *, address: str = "127.0.0.1", port: int = 5151,
           open_browser: bool = True):
    """Start the app server on the library's dataset (at a saved view) and return FiftyOne's session.

    The server runs in a child process until `close` (or this process ends).
    """
    import webbrowser

    fo = connect(lib)
    dataset = open_dataset(lib, create=False)
    if dataset is None:
        raise NotFound("no FiftyOne dataset for this library yet: run `curator browse --no-launch` first")
    shown = dataset.load_saved_view(view) if view else None
    # FiftyOne logs its own remote-session instructions (always: curator opens the browser
    # itself); `curator browse` prints its own, with the right port, once.
    with internals.quiet_session_log():
        session = fo.launch_app(dataset, view=shown, address=address, port=port, remote=True, auto=False)
    if open_browser:
        webbrowser.open(app_url(dataset.name, view, address, port))
    return session


def close(session, timeout: float = 15.0) -> None:
    """Close the app and stop its server.

    FiftyOne waits without a limit for its server process to exit, and a server still holding
    a connection (a browser tab, the session's own event stream) may not: after ``timeout``
    seconds the server's processes are killed. They hold no state (the dataset lives in the
    database, which is left alone).
    """
    import threading

    import psutil

    closing = threading.Thread(target=session.close, daemon=True)
    closing.start()
    closing.join(timeout)
    if not closing.is_alive():
        return
    servers = [p for p in psutil.Process().children(recursive=True) if internals.is_app_server(p)]
    for process in [q for p in servers for q in (p, *_descendants(p))]:
        try:
            process.kill()
        except psutil.Error:
            pass
    closing.join(10)


def _descendants(process) -> list:
    import psutil

    try:
        return process.children(recursive=True)
    except psutil.Error:
        return []
