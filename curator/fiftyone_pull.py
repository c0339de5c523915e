"""Edits made in the FiftyOne app, taken back into the library (``curator pull``).

What is taken: a changed ``ground_truth`` / ``subclass`` / ``unknown``, and the tags
``label:CLASS``, ``subclass:NAME``, ``unknown``, ``reject`` (or ``reject:REASON``),
``benchmark``; any other new tag becomes a library tag. Each change goes to label history with
source ``fiftyone``. An image whose label changed in the library since the dataset was built
*and* in the app is a conflict: nothing is overwritten until ``resolve`` says which side wins.
A sample with edits not yet pulled is ``pending``: a refresh keeps it and its edits
(``curator.fiftyone_sync.sync``).
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select

from curator.errors import CuratorError, InvalidInput, NotFound
from curator.fiftyone_samples import SPLIT_TAG, library_rows, resolve_run, write_samples
from curator.library import Library
from curator.library.models import ACTIVE, LABELLED, UNKNOWN, UNLABELLED, Image, ImageTag, label_text

SOURCE = "fiftyone"
ACTION_TAGS = ("label:", "subclass:", "reject:")
FLAG_TAGS = ("unknown", "reject", "benchmark")
RESOLUTIONS = ("library", "fiftyone")


def pull(lib: Library, *, resolve: str | None = None, create: bool = False, on_progress=None) -> dict:
    """Take the edits made in the app into the library, then refresh the dataset.

    Args:
        resolve: for conflicts (label changed in the library since the dataset was built and
            also in the app): ``fiftyone`` applies the app's edit, ``library`` drops it;
            ``None`` leaves both sides as they are and lists the conflict.
        create: a label naming a class the library does not have creates it (else a problem).

    Returns:
        ``{"labels", "rejected", "flagged", "tagged", "conflicts", "problems", "sync"}``: the
        image ids changed per kind, conflicts as ``{image_id, path, was, library, fiftyone}``,
        problems as ``{image_id, error}``, and ``sync``'s summary.
    """
    from curator import labels
    from curator.fiftyone_sync import open_dataset, sync

    if resolve not in (None, *RESOLUTIONS):
        raise InvalidInput(f"--resolve {resolve}: use one of {', '.join(RESOLUTIONS)}")
    say = on_progress or (lambda msg: None)
    dataset = open_dataset(lib, create=False)
    if dataset is None:
        raise NotFound("no FiftyOne dataset for this library yet: run `curator browse` first")
    run = dataset.info.get("run")
    state = app_state(dataset)
    out = {"labels": [], "rejected": [], "flagged": [], "tagged": [], "conflicts": [], "problems": []}
    settled = set()  # samples to rewrite from the library: their edits are taken or dropped
    say(f"reading {len(state)} samples")
    with lib.session() as s:
        have_tags = defaultdict(set)
        for image_id, t in s.execute(select(ImageTag.image_id, ImageTag.tag)):
            have_tags[image_id].add(t)
        for cid, st in state.items():
            tags = st["tags"] or []
            plain = [t for t in tags if not (t.startswith((SPLIT_TAG, *ACTION_TAGS)) or t in FLAG_TAGS)
                     and t not in have_tags[cid]]
            app = app_label(st)
            edited = app != st["synced_label"]
            if not (edited or plain or any(t.startswith(ACTION_TAGS) or t in FLAG_TAGS for t in tags)):
                continue
            # Locked (PostgreSQL) before comparing: a label changed meanwhile is a conflict, not lost.
            image = s.get(Image, cid, with_for_update={"key_share": True}, populate_existing=True)
            if image is None or image.status != ACTIVE:
                continue  # gone from the library: the refresh removes the sample
            settled.add(cid)
            if edited and image.label != app:
                if image.label != st["synced_label"] and resolve != "fiftyone":
                    if resolve is None:
                        settled.discard(cid)
                        out["conflicts"].append({"image_id": cid, "path": image.path, "was": st["synced_label"],
                                                 "library": image.label, "fiftyone": app})
                    continue
                try:  # fails before changing anything (unknown class, bad name)
                    labels.relabel(s, [image], app, create=create, source=SOURCE, detail="FiftyOne app")
                    out["labels"].append(cid)
                except CuratorError as e:
                    settled.discard(cid)
                    out["problems"].append({"image_id": cid, "error": str(e)})
                    continue
            reason = next((t[len("reject:"):] for t in tags if t.startswith("reject:")), None)
            if reason is not None or "reject" in tags:
                labels.reject(s, [image], reason or "rejected in FiftyOne", source=SOURCE)
                out["rejected"].append(cid)
                continue
            if "benchmark" in tags and not image.benchmark:
                labels.set_flags(s, [image], benchmark=True, source=SOURCE)
                out["flagged"].append(cid)
            for t in plain:
                labels.tag(s, [image], t, source=SOURCE, detail="FiftyOne app")
                out["tagged"].append(cid)
    if settled:
        say(f"writing back {len(settled)} samples")
        rows = library_rows(lib, resolve_run(lib, run)[0], list(settled))
        write_samples(dataset, {i: rows[i] for i in settled if i in rows}, keep=set(), state=state)
    shown = (dataset.info.get("similarity") or {}).get("embedder")
    mapped = "map" in dataset.info  # curator.fiftyone_map.INFO
    # the dataset's own scope, embedder and map again
    out["sync"] = sync(lib, run, embedder=shown, show_map=mapped, on_progress=on_progress)
    return out


# -- what a sample shows in the app -------------------------------------------------------------

def app_state(dataset) -> dict[int, dict]:
    """What each sample shows now: its id, signature, snapshot label and editable fields."""
    names = ["curator_id", "id", "curator_sig", "synced_label", "ground_truth.label", "subclass", "unknown", "tags"]
    values = dataset.values(names)
    return {cid: dict(zip(names[1:], rest)) for cid, *rest in zip(*values)}


def app_label(state: dict) -> str:
    """The label a sample shows in the app: its fields as edited, then its ``label:``,
    ``subclass:`` and ``unknown`` tags, which win."""
    tags = state["tags"] or []
    synced = state["synced_label"] or UNLABELLED
    s_cls, _, s_sub = synced.partition("/") if synced not in (UNKNOWN, UNLABELLED) else (None, "", "")
    tag = {p: t[len(p):] for t in tags for p in ("label:", "subclass:") if t.startswith(p)}
    if UNKNOWN in tags:
        return UNKNOWN
    if "label:" not in tag and state["unknown"] and synced != UNKNOWN:
        return UNKNOWN  # the unknown field switched on in the app
    cls = tag.get("label:") or state["ground_truth.label"]
    if not cls:
        return UNKNOWN if state["unknown"] else UNLABELLED
    if "subclass:" in tag:
        sub = tag["subclass:"]
    elif (state["subclass"] or "") != s_sub:
        sub = state["subclass"]  # edited in the app
    else:
        sub = s_sub if cls == s_cls else None
    return label_text(LABELLED, cls, sub)


def pending(state: dict) -> bool:
    """Did someone edit this sample in the app since it was last written?"""
    tags = state["tags"] or []
    return app_label(state) != state["synced_label"] or any(
        t.startswith(ACTION_TAGS) or t in FLAG_TAGS for t in tags)


def pending_samples(lib: Library) -> list[int]:
    """The images whose samples were edited in the app and not yet pulled, by id, ascending.

    FiftyOne (and its database) is started only when the library has a FiftyOne database:
    a library that was never browsed answers at once.
    """
    from curator.fiftyone_database import database_dir
    from curator.fiftyone_sync import open_dataset

    if not database_dir(lib).is_dir():
        return []
    dataset = open_dataset(lib, create=False)
    if dataset is None:
        return []
    return sorted(i for i, state in app_state(dataset).items() if pending(state))
