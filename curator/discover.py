"""Discover new classes: group the pool images that the library's classes do not explain.

``discover`` works in four steps, each chosen by measurement (``benchmarks/discover_methods.py``
and ``benchmarks/discover.py``, RESULTS.md):

1. **Unexplained images.** Of the pool (``unknown``, ``unlabelled`` or both) with a vector under
   the embedder: every ``unknown`` image (a user said no class fits it) and the unlabelled
   images in the top ``share`` of ``find --unfamiliar``'s score (``similarity.unfamiliar_scores``:
   more like each other than like any labelled image). Clustering the whole pool let the known
   classes' pool images swamp the new ones (plain HDBSCAN put 0.00-0.06 of a held-out class in
   pure clusters on emoji views; the unfamiliar 30% put 0.70-1.00).
2. **Clusters.** PCA to ``DIMS`` dimensions, back to unit length, then scikit-learn's HDBSCAN
   (``min_cluster_size`` = ``min_size``); what joins no cluster is noise, left alone.
3. **Each cluster described** in the embedder's own space: its size, cohesion (its members' mean
   cosine similarity to their mean direction), its ``unknown`` members, the nearest classes (the
   members' mean similarity to each class's mean direction) and ``inside``: the nearest class
   when the members' median similarity to its centre reaches what 80% of the class's own images
   have (``INSIDE_QUANTILE``): a probable sub-class or look-alike of that class, not a class apart.
4. **Stable numbers.** A cluster takes the number of an earlier live cluster (open, tagged,
   marked unknown or dismissed) that holds at least half of the smaller one's members, with its
   state and its excluded images; any other gets a new number (never reused). Earlier open or
   tagged clusters not found again become ``gone``.

``act`` applies one action to a cluster's images (history source ``discover``) through
``curator.filters.act``: label (``create`` makes the class), tag, unknown, reject; ``dismiss``
only marks the cluster as seen and not a class.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import delete, func, select, update

from curator import embeddings, similarity
from curator.errors import InvalidInput, NotFound
from curator.library import Library
from curator.library.models import (
    ACTIVE, LABELLED, UNKNOWN, UNLABELLED, Cluster, ClusterMember, Discovery, Image, LabelClass,
    utcnow,
)

POOLS = {"unknown": (UNKNOWN,), "unlabelled": (UNLABELLED,), "both": (UNKNOWN, UNLABELLED)}
DEFAULT_MIN_SIZE = 5
DEFAULT_SHARE = 0.3  # of the unlabelled pool, the most unfamiliar, clustered
DIMS = 50  # PCA dimensions before HDBSCAN
NEAREST = 3  # classes named per cluster
EXAMPLES = 5  # paths shown per cluster
LIVE = ("open", "tagged", "unknown", "dismissed")  # states a later discovery can find again
STATE_AFTER = {"label": "labelled", "tag": "tagged", "unknown": "unknown", "reject": "rejected",
               "dismiss": "dismissed"}
ACTIONS = tuple(STATE_AFTER)
CHUNK = embeddings.CHUNK
# Inside a class: its members as near its centre as the class's own 80%. benchmarks/discover.py,
# 67 clusters over 3 kinds x 2 seeds: 0.1 flagged 38/41 known-class clusters and left 20/26 new
# classes new (6 called a sub-class of a neighbour); 0.2 32/41 and 25/26; 0.25 28/41 and 25/26.
INSIDE_QUANTILE = 0.2
FLOOR_SAMPLE = 2000  # class images read for that


# -- over arrays ----------------------------------------------------------------------------------


def reduce(vectors: np.ndarray, dims: int = DIMS) -> np.ndarray:
    """``vectors`` ``(N, D)`` projected on their first ``dims`` principal components, unit length."""
    from sklearn.decomposition import PCA

    k = min(dims, len(vectors) - 1, vectors.shape[1])
    z = PCA(k, random_state=0).fit_transform(vectors) if k < vectors.shape[1] else vectors.copy()
    z /= np.linalg.norm(z, axis=1, keepdims=True) + 1e-12
    return z.astype(np.float32)


def cluster_labels(vectors: np.ndarray, min_size: int, dims: int = DIMS) -> np.ndarray:
    """HDBSCAN's cluster of each row of ``vectors`` ``(N, D)`` after ``reduce``; -1 is noise."""
    from sklearn.cluster import HDBSCAN

    if len(vectors) <= min_size:
        return np.full(len(vectors), -1)
    return HDBSCAN(min_cluster_size=min_size, copy=True).fit_predict(reduce(vectors, dims))


def describe(vectors: np.ndarray, centres: np.ndarray) -> dict:
    """One cluster's members ``(n, D)`` (unit vectors) against the classes' unit centres ``(C, D)``.

    Returns:
        ``order`` (members nearest the cluster's centre first), ``cohesion``, ``nearest``:
        ``(class index, similarity)`` of the ``NEAREST`` classes, nearest first, the similarity
        being the members' mean cosine similarity to that class's centre, and ``typical``: the
        members' median similarity to the nearest class's centre (None without classes).
    """
    mean = vectors.mean(axis=0)
    cohesion = float(np.linalg.norm(mean))
    order = np.argsort(-(vectors @ (mean / max(cohesion, 1e-12))), kind="stable")
    nearest, typical = [], None
    if len(centres):
        sims = centres @ mean  # = the members' mean similarity to each class centre
        top = np.argsort(-sims, kind="stable")[:NEAREST]
        nearest = [(int(c), float(sims[c])) for c in top]
        typical = float(np.median(vectors @ centres[top[0]]))
    return {"order": order, "cohesion": cohesion, "nearest": nearest, "typical": typical}


def match(new: Sequence[set[int]], old: dict[int, set[int]]) -> dict[int, int]:
    """Which earlier cluster (id in ``old``: its members) each new cluster (index in ``new``) is:
    the pair sharing most images first, when they share at least half of the smaller's."""
    owner = {i: c for c, members in old.items() for i in members}
    pairs = []
    for k, members in enumerate(new):
        shared: dict[int, int] = {}
        for i in members:
            if i in owner:
                shared[owner[i]] = shared.get(owner[i], 0) + 1
        pairs += [(n, k, c) for c, n in shared.items() if 2 * n >= min(len(members), len(old[c]))]
    found, used = {}, set()
    for n, k, c in sorted(pairs, key=lambda p: (-p[0], p[1], p[2])):
        if k not in found and c not in used:
            found[k] = c
            used.add(c)
    return found


# -- discover -------------------------------------------------------------------------------------


def discover(lib: Library, *, pool: str = "both", embedder: str | None = None, min_size: int = DEFAULT_MIN_SIZE,
             share: float = DEFAULT_SHARE, max_confidence: float | None = None, run: str | None = None,
             on_step: Callable[[str], None] | None = None) -> dict:
    """Cluster the pool images no class explains, store the clusters and list them.

    Args:
        pool: ``unknown``, ``unlabelled`` or ``both``.
        embedder: whose vectors (``embeddings.find_embedder``; default the newest ``embed`` one).
        min_size: the fewest images a cluster has (HDBSCAN's ``min_cluster_size``).
        share: of the unlabelled pool, the most unfamiliar share clustered (unknowns always are).
        max_confidence: also cluster the pool images that ``run`` (``runs.pick_run``'s default:
            the newest run that predicted the pool) predicts at this confidence or less.
        on_step: called with the name of each step as it starts.

    Returns:
        ``{"discovery": {settings and counts}, "clusters": [row, ...], "notes": [...]}`` as
        ``listing`` gives them.

    Raises:
        InvalidInput: a bad option, or no labelled image with a vector to compare with.
        NotFound: no such embedder.
    """
    _check(pool, min_size, share, max_confidence)
    step = on_step or (lambda _: None)
    t0 = time.perf_counter()
    with lib.session() as s:
        e = similarity.pick_embedder(s, embedder)
        step("scoring how unfamiliar each pool image is")
        chosen, unknown, scored, run_id, notes = _choose(lib, s, e, pool, share, max_confidence, run)
        step(f"clustering {len(chosen):,} unexplained images")
        chosen, vectors = embeddings.vectors(s, e, chosen.tolist())
        labels = cluster_labels(vectors, min_size)
        step("describing the clusters")
        found = [(chosen[labels == c], vectors[labels == c]) for c in sorted(set(labels.tolist()) - {-1})]
        d = Discovery(embedder_id=e.id, pool=pool, min_size=min_size, share=share, max_confidence=max_confidence,
                      run_id=run_id, candidates=scored, clustered=len(chosen), noise=int((labels == -1).sum()))
        s.add(d)
        s.flush()
        _store(s, e, d, found, unknown, class_centres(s, e))
        d.seconds = round(time.perf_counter() - t0, 2)
        discovery_id = d.id
    return listing(lib, discovery=discovery_id) | {"notes": notes}


def _choose(lib: Library, s, e, pool: str, share: float, max_confidence: float | None,
            run: str | None) -> tuple[np.ndarray, np.ndarray, int, int | None, list[str]]:
    """The unexplained images to cluster (sorted ids), the pool's unknown images (sorted ids), how
    many have a vector, the run read for ``max_confidence`` and notes."""
    ids, unknown = _candidates(s, pool)
    scored, scores = similarity.unfamiliar_scores(lib, s, e, ids) if len(ids) else (ids, ids)
    chosen = _unexplained(scored, scores, unknown, share)
    notes, run_id = [], None
    if max_confidence is not None:
        run_id, unsure, notes = _unsure(s, run, pool, max_confidence)
        chosen = np.union1d(chosen, np.intersect1d(scored, unsure))
    return chosen, unknown, len(scored), run_id, notes + _notes(s, e, pool, len(ids), len(scored))


def _check(pool: str, min_size: int, share: float, max_confidence: float | None) -> None:
    if pool not in POOLS:
        raise InvalidInput(f"--pool {pool}: use one of {', '.join(POOLS)}")
    if min_size < 2:
        raise InvalidInput(f"--min-size {min_size}: a cluster needs 2 or more images")
    if not 0 < share <= 1:
        raise InvalidInput(f"--share {share}: give a share of the pool above 0 and at most 1")
    if max_confidence is not None and not 0 <= max_confidence <= 1:
        raise InvalidInput(f"--max-confidence {max_confidence} is not between 0 and 1")


def _unsure(s, ref: str | None, pool: str, max_confidence: float) -> tuple[int, np.ndarray, list[str]]:
    """The run, the pool images it predicts at ``max_confidence`` or less (sorted ids), and notes."""
    from curator.library.models import Prediction
    from curator.runs import pick_run

    run, notes = pick_run(s, ref, UNLABELLED if pool == "both" else pool)
    ids = s.scalars(select(Prediction.image_id).join(Image, Image.id == Prediction.image_id).where(
        Prediction.run_id == run.id, Prediction.error.is_(None), Prediction.confidence <= max_confidence,
        Image.status == ACTIVE, Image.label_state.in_(POOLS[pool])))
    return run.id, np.sort(np.fromiter(ids, dtype=np.int64)), notes


def _candidates(s, pool: str) -> tuple[np.ndarray, np.ndarray]:
    """The active pool images' ids, and those of the unknown ones among them (both sorted)."""
    def ids(*states: str) -> np.ndarray:
        found = s.scalars(select(Image.id).where(Image.status == ACTIVE, Image.label_state.in_(states)).order_by(Image.id))
        return np.fromiter(found, dtype=np.int64)

    return ids(*POOLS[pool]), ids(UNKNOWN) if UNKNOWN in POOLS[pool] else np.zeros(0, np.int64)


def _unexplained(ids: np.ndarray, scores: np.ndarray, unknown_ids: np.ndarray, share: float) -> np.ndarray:
    """Every unknown image, and the top ``share`` of the unlabelled ones by unfamiliarity."""
    unknown = np.isin(ids, unknown_ids)
    loose_ids, loose = ids[~unknown], scores[~unknown]
    top = loose_ids[np.lexsort((loose_ids, -loose))][:int(np.ceil(share * len(loose_ids)))]
    return np.sort(np.concatenate([ids[unknown], top]))


def _notes(s, e, pool: str, asked: int, scored: int) -> list[str]:
    if scored < asked:
        return [f"{asked - scored} of {asked} pool images have no embedding under {e.name}:"
                f" {similarity.embed_hint(s, e, 'all' if pool == 'both' else pool)}"]
    return []


@dataclass
class Classes:
    """The labelled classes in an embedder's space: ``centres`` ``(C, D)`` are unit mean vectors."""

    ids: list[int]
    names: list[str]
    centres: np.ndarray
    floors: dict[int, float] = field(default_factory=dict)  # class index: its INSIDE_QUANTILE similarity

    def floor(self, s, e, k: int) -> float:
        """The ``INSIDE_QUANTILE`` of class ``k``'s own images' similarity to its centre (up to
        ``FLOOR_SAMPLE`` of them, lowest ids first), read once per class and discovery."""
        if k not in self.floors:
            ids = s.scalars(select(Image.id).where(Image.class_id == self.ids[k], Image.status == ACTIVE,
                                                   Image.label_state == LABELLED).order_by(Image.id).limit(FLOOR_SAMPLE))
            _, vecs = embeddings.vectors(s, e, list(ids))
            self.floors[k] = float(np.quantile(vecs @ self.centres[k], INSIDE_QUANTILE)) if len(vecs) else 1.0
        return self.floors[k]


def class_centres(s, e) -> Classes:
    """Every class's unit mean vector over its active labelled images with a vector, read
    ``CHUNK`` images at a time."""
    sums: dict[int, np.ndarray] = {}
    last = 0
    while True:
        rows = s.execute(select(Image.id, Image.class_id).where(
            Image.status == ACTIVE, Image.label_state == LABELLED, Image.id > last)
            .order_by(Image.id).limit(CHUNK)).all()
        if not rows:
            break
        last = rows[-1][0]
        got, vecs = embeddings.vectors(s, e, [r[0] for r in rows])
        class_of = dict(rows)
        of = np.array([class_of[i] for i in got.tolist()], dtype=np.int64)
        for c in np.unique(of).tolist():
            sums[c] = sums.get(c, 0) + vecs[of == c].sum(axis=0)
    order = sorted(sums)
    names = dict(s.execute(select(LabelClass.id, LabelClass.name).where(LabelClass.id.in_(order))).all())
    means = np.stack([sums[c] for c in order]).astype(np.float32) if order else np.zeros((0, 0), np.float32)
    centres = means / np.maximum(np.linalg.norm(means, axis=1), 1e-12)[:, None]
    return Classes(order, [names[c] for c in order], centres)


def _store(s, e, d: Discovery, found: list[tuple[np.ndarray, np.ndarray]], unknown: np.ndarray,
           known: Classes) -> None:
    """Number the clusters (keeping earlier numbers, ``match``) and write them and their members."""
    live = {c.id: c for c in s.scalars(select(Cluster).where(Cluster.state.in_(LIVE)))}
    members: dict[int, set[int]] = {c: set() for c in live}
    excluded: dict[int, set[int]] = {c: set() for c in live}
    for cid, image_id, out in s.execute(select(ClusterMember.cluster_id, ClusterMember.image_id,
                                               ClusterMember.excluded).where(ClusterMember.cluster_id.in_(live))):
        (excluded if out else members)[cid].add(image_id)
    same = match([set(ids.tolist()) for ids, _ in found], {c: members[c] | excluded[c] for c in live})
    number = (s.scalar(select(func.max(Cluster.number))) or 0) + 1
    for k, (ids, vecs) in enumerate(found):
        old = live.get(same.get(k))
        keep = ~np.isin(ids, list(excluded[old.id])) if old else np.ones(len(ids), bool)
        ids, vecs = ids[keep], vecs[keep]
        if not len(ids):
            continue
        if old is None:
            old = Cluster(number=number, state="open", discovery_id=d.id, created_at=utcnow())
            number += 1
            s.add(old)
            s.flush()
        else:
            s.execute(delete(ClusterMember).where(ClusterMember.cluster_id == old.id, ClusterMember.excluded.is_(False)))
        order = _describe_into(s, e, old, d, ids, vecs, unknown, known)
        s.execute(ClusterMember.__table__.insert(), [
            {"cluster_id": old.id, "image_id": int(i), "rank": r, "excluded": False}
            for r, i in enumerate(ids[order].tolist())])
        live.pop(old.id, None)
    gone = [c.id for c in live.values() if c.state in ("open", "tagged")]
    if gone:
        s.execute(update(Cluster).where(Cluster.id.in_(gone)).values(state="gone", updated_at=utcnow()))


def _describe_into(s, e, c: Cluster, d: Discovery, ids: np.ndarray, vecs: np.ndarray, unknown: np.ndarray,
                   known: Classes) -> np.ndarray:
    """Fill ``c``'s description from its members; returns their order, nearest the centre first."""
    info = describe(vecs, known.centres)
    c.discovery_id, c.size, c.cohesion = d.id, len(ids), round(info["cohesion"], 4)
    c.unknown = int(np.isin(ids, unknown).sum())
    c.nearest = json.dumps([{"class": known.names[k], "similarity": round(sim, 4)} for k, sim in info["nearest"]])
    c.inside = None
    if info["nearest"]:
        k = info["nearest"][0][0]
        c.inside = known.names[k] if info["typical"] >= known.floor(s, e, k) else None
    c.updated_at = utcnow()
    return info["order"]


# -- reading the clusters -------------------------------------------------------------------------


def listing(lib: Library, *, discovery: int | None = None, every: bool = False) -> dict:
    """The clusters of a discovery (default the newest): open ones, biggest first; ``every``: all
    clusters ever found, whatever their state, by number.

    Raises:
        NotFound: no discovery yet.
    """
    with lib.session() as s:
        d = s.get(Discovery, discovery) if discovery else s.scalar(select(Discovery).order_by(Discovery.id.desc()).limit(1))
        if d is None:
            raise NotFound("no clusters yet: run `curator discover` first")
        where = [] if every else [Cluster.discovery_id == d.id, Cluster.state != "gone"]
        found = s.scalars(select(Cluster).where(*where).order_by(
            *( [Cluster.number] if every else [Cluster.size.desc(), Cluster.number]))).all()
        examples = _examples(s, [c.id for c in found])
        rows = [_row(c, d, examples.get(c.id, [])) for c in found]
        return {"discovery": _discovery_row(s, d), "clusters": rows, "notes": []}


def _discovery_row(s, d: Discovery) -> dict:
    from curator.library.models import Embedder, Run

    return {"id": d.id, "at": d.at.isoformat(" ", "seconds"), "embedder": s.get(Embedder, d.embedder_id).name,
            "pool": d.pool, "min_size": d.min_size, "share": d.share, "max_confidence": d.max_confidence,
            "run": s.get(Run, d.run_id).name if d.run_id else None, "candidates": d.candidates,
            "clustered": d.clustered, "noise": d.noise, "seconds": d.seconds}


def _examples(s, cluster_ids: list[int]) -> dict[int, list[str]]:
    """The ``EXAMPLES`` paths nearest each cluster's centre (its members ranked first)."""
    out: dict[int, list[str]] = {}
    stmt = (select(ClusterMember.cluster_id, Image.path).join(Image, Image.id == ClusterMember.image_id)
            .where(ClusterMember.cluster_id.in_(cluster_ids), ClusterMember.excluded.is_(False),
                   ClusterMember.rank < EXAMPLES * 4).order_by(ClusterMember.cluster_id, ClusterMember.rank))
    for cid, path in s.execute(stmt):
        if len(out.setdefault(cid, [])) < EXAMPLES:
            out[cid].append(path)
    return out


def _row(c: Cluster, d: Discovery, examples: list[str]) -> dict:
    return {"cluster": c.number, "state": c.state, "size": c.size, "cohesion": c.cohesion, "unknown": c.unknown,
            "nearest": json.loads(c.nearest or "[]"), "inside": c.inside, "new": c.created_at >= d.at,
            "acted": c.acted, "examples": examples}


def members(lib: Library, number: int) -> dict:
    """One cluster with every member (excluded ones last, marked), nearest its centre first.

    Raises:
        NotFound: no cluster with that number.
    """
    with lib.session() as s:
        c = _get(s, number)
        d = s.get(Discovery, c.discovery_id)
        rows = s.execute(select(Image.id, Image.path, Image.label_state, ClusterMember.excluded)
                         .join(Image, Image.id == ClusterMember.image_id).where(ClusterMember.cluster_id == c.id)
                         .order_by(ClusterMember.excluded, ClusterMember.rank)).all()
        images = [{"image_id": i, "path": p, "label_state": st, "excluded": bool(x)} for i, p, st, x in rows]
        return _row(c, d, [r["path"] for r in images if not r["excluded"]][:EXAMPLES]) | {"images": images}


def _get(s, number: int) -> Cluster:
    c = s.scalar(select(Cluster).where(Cluster.number == number))
    if c is None:
        raise NotFound(f"no cluster {number}: `curator discover --list` shows the clusters there are")
    return c


# -- acting on a cluster --------------------------------------------------------------------------


def act(lib: Library, number: int, action: str, value: str | None = None, *, subclass: str | None = None,
        create: bool = False, exclude: Sequence[str] = (), on_progress: Callable[[int], None] | None = None) -> dict:
    """Leave out ``exclude`` (image references) from cluster ``number``, then apply ``action`` to
    the rest of its images, each change recorded in history with source ``discover``.

    Args:
        action: ``label`` (``value`` the class, ``subclass`` its sub-class; ``create`` makes them),
            ``tag`` (``value`` the tag), ``unknown``, ``reject`` (``value`` the reason) or
            ``dismiss`` (no image changes: the cluster is marked as not a class); None: only
            ``exclude``.

    Returns:
        ``{"cluster", "action", "state", "changed", "unchanged", "excluded"}``.

    Raises:
        NotFound: no such cluster. InvalidInput: a bad action, an excluded image not in the
        cluster, or a cluster that a later discovery no longer finds (``gone``).
    """
    from curator import classes, filters

    if action is not None and action not in ACTIONS:
        raise InvalidInput(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    if action is None and not exclude:
        raise InvalidInput("say what to do with the cluster: --label, --tag, --unknown, --reject, --dismiss or --exclude")
    if subclass and action != "label":
        raise InvalidInput("--subclass goes with --label")
    label = str(classes.parse_label(value, subclass)) if action == "label" else value
    with lib.session() as s:
        c = _get(s, number)
        if c.state == "gone":
            raise InvalidInput(f"cluster {number} was not found again by the newest discovery: run `curator discover`"
                               " and act on what it finds now")
        excluded = _exclude(s, c, exclude)
        ids = list(s.scalars(select(ClusterMember.image_id).where(
            ClusterMember.cluster_id == c.id, ClusterMember.excluded.is_(False)).order_by(ClusterMember.rank)))
        detail = f"curator discover, cluster {number}"
    done = {"changed": [], "unchanged": 0}
    if action not in (None, "dismiss"):
        result = {"run": None, "detail": detail, "rows": [{"image_id": i} for i in ids]}
        done = filters.act(lib, result, action, label, create=create, source="discover", on_progress=on_progress)
    with lib.session() as s:
        c = _get(s, number)
        if action is not None:
            c.state = STATE_AFTER[action]
            c.acted = f"{action} {label}" if label else action
        c.size, c.updated_at = len(ids), utcnow()
        state = c.state
    return {"cluster": number, "action": action, "value": label, "state": state, "changed": done["changed"],
            "unchanged": done["unchanged"], "excluded": excluded}


def _exclude(s, c: Cluster, refs: Sequence[str]) -> list[int]:
    from curator.catalog import find_image

    ids = list(dict.fromkeys(find_image(s, r).id for r in refs))
    inside = set(s.scalars(select(ClusterMember.image_id).where(
        ClusterMember.cluster_id == c.id, ClusterMember.image_id.in_(ids))))
    stray = [i for i in ids if i not in inside]
    if stray:
        raise InvalidInput(f"image {stray[0]} is not in cluster {c.number}: `curator discover --cluster {c.number}`"
                           " lists its images")
    if ids:
        s.execute(update(ClusterMember).where(ClusterMember.cluster_id == c.id, ClusterMember.image_id.in_(ids))
                  .values(excluded=True))
    return ids
