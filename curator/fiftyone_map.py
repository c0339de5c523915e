"""The embeddings' 2-D map and ``curator discover``'s clusters in the library's FiftyOne dataset.

- **The map.** FiftyOne Brain's ``compute_visualization`` over the vectors that
  ``curator.fiftyone_similarity`` keeps on the samples (the field ``embedding_<E>``): no model
  runs. Its brain key is ``map_<E>``; the app's embeddings panel plots it. The reduction is
  UMAP when ``umap-learn`` is installed; otherwise t-SNE (scikit-learn, after PCA to 50
  dimensions) up to ``TSNE_UP_TO`` samples and PCA above. Measured on 2 cores, the whole
  ``compute_visualization`` over 1280-d vectors (reading them included): t-SNE 2.2 s for 1,000,
  11 s for 2,000, 19 s for 3,000, 68 s for 5,000 (126 s for 10,000, sklearn alone); PCA 0.8 s
  for 3,000, 3.2 s for 20,000 (a working set), 19 s for 100,000 (the biggest mirror).
  A sync rebuilds the map only when its vectors changed: vectors written this sync,
  another fingerprint of the embedder's vectors (``embeddings.fingerprint``), another number of
  samples holding one, or another method; otherwise nothing is read.
- **The clusters.** The sample field ``cluster`` is the number of the live cluster
  (``discover.LIVE``) the image belongs to (not excluded from), the newest when several, else
  None: the embeddings panel colours the map by it, or by ``ground_truth.label``.
- **A saved view per live cluster**, ``cluster-N``: its images, nearest its centre first,
  described ``curator discover --cluster N``. It is saved with the other views
  (``curator.fiftyone_views.view_queries``), so a cluster no longer live loses its view. Tags
  put on a cluster's samples in the app come back with ``curator pull``.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable

from sqlalchemy import select

from curator.discover import LIVE
from curator.library import Library
from curator.library.models import Cluster, ClusterMember

INFO = "map"  # dataset.info key
FIELD = "cluster"
VIEW = "cluster-"
TSNE_UP_TO = 3000  # samples; PCA above (t-SNE: 19 s at 3,000 on 2 cores, 68 s at 5,000)
FEWEST = 3  # samples with a vector for a map


# -- the map --------------------------------------------------------------------------------------


def method(n: int) -> str:
    """The reduction for ``n`` vectors: ``umap`` when importable, else ``tsne`` up to
    ``TSNE_UP_TO``, ``pca`` above."""
    import importlib.util

    if importlib.util.find_spec("umap") is not None:
        return "umap"
    return "tsne" if n <= TSNE_UP_TO else "pca"


def options(name: str, n: int) -> dict:
    """``compute_visualization``'s settings for method ``name`` over ``n`` vectors: seeded,
    quiet, and fit for a handful of samples (t-SNE's perplexity and UMAP's neighbours below ``n``)."""
    if name == "tsne":
        return {"seed": 0, "verbose": False, "perplexity": min(30.0, (n - 1) / 3), "pca_dims": 50 if n > 50 else None}
    if name == "umap":
        return {"seed": 0, "verbose": False, "num_neighbors": min(15, n - 1)}
    return {"seed": 0}


def refresh(dataset, similarity: dict | None, *, wanted: bool = True,
            say: Callable[[str], None] = lambda msg: None) -> dict | None:
    """Bring the map up to date with the vectors on the samples.

    Args:
        similarity: ``fiftyone_similarity.refresh``'s answer this sync (None: no vectors).
        wanted: compute a map when there is none or it is stale (False: keep a fresh one only).

    Returns:
        ``{"embedder", "brain_key", "field", "method", "fingerprint", "samples", "seconds",
        "computed"}``; None when there is no map (no vectors, fewer than ``FEWEST``, or not wanted).
    """
    info = dataset.info.get(INFO) or {}
    if info and _fresh(dataset, info, similarity):
        return {**info, "computed": False}
    if info:
        drop(dataset)
    if not wanted or similarity is None or similarity["samples"] < FEWEST:
        return None
    info = _compute(dataset, similarity, say)
    dataset.info = {**dataset.info, INFO: info}
    dataset.save()
    return {**info, "computed": True}


def _fresh(dataset, info: dict, similarity: dict | None) -> bool:
    if similarity is None or similarity["written"]:
        return False
    same = all(info.get(k) == similarity[k] for k in ("embedder", "field", "fingerprint", "samples"))
    return same and info.get("method") == method(similarity["samples"]) and info["brain_key"] in dataset.list_brain_runs()


def _compute(dataset, similarity: dict, say) -> dict:
    """The 2-D map of the samples holding a vector in ``similarity["field"]``, from those vectors."""
    import fiftyone.brain as fob

    field, n = similarity["field"], similarity["samples"]
    key, name = "map_" + field.removeprefix("embedding_"), method(n)
    say(f"mapping {n:,} vectors in 2-D ({name})")
    brain_log = logging.getLogger("fiftyone.brain")  # its "Generating visualization..." on stdout
    level, started = brain_log.level, time.perf_counter()
    brain_log.setLevel(logging.WARNING)
    try:
        fob.compute_visualization(dataset.exists(field), embeddings=field, method=name, brain_key=key, num_dims=2,
                                  progress=False, **options(name, n))
    finally:
        brain_log.setLevel(level)
    return {"embedder": similarity["embedder"], "brain_key": key, "field": field, "method": name,
            "fingerprint": similarity["fingerprint"], "samples": n,
            "seconds": round(time.perf_counter() - started, 2)}


def drop(dataset) -> None:
    """Remove the map (its brain run and its record in ``dataset.info``)."""
    info = dataset.info.get(INFO) or {}
    if info.get("brain_key") in dataset.list_brain_runs():
        dataset.delete_brain_run(info["brain_key"])
    dataset.info = {k: v for k, v in dataset.info.items() if k != INFO}
    dataset.save()


# -- the clusters ---------------------------------------------------------------------------------


def members(s) -> dict[int, list[int]]:
    """Each live cluster's number and its images' ids (excluded ones left out), nearest its
    centre first, by number."""
    out: dict[int, list[int]] = defaultdict(list)
    stmt = (select(Cluster.number, ClusterMember.image_id).join(ClusterMember, ClusterMember.cluster_id == Cluster.id)
            .where(Cluster.state.in_(LIVE), ClusterMember.excluded.is_(False))
            .order_by(Cluster.number, ClusterMember.rank))
    for number, image_id in s.execute(stmt):
        out[number].append(image_id)
    return dict(out)


def cluster_views(s, *, limit: int | None = None) -> dict[str, tuple[str, list[int]]]:
    """A saved view per live cluster: ``cluster-N`` -> (its description, its first ``limit`` image ids)."""
    return {f"{VIEW}{n}": (f"curator discover --cluster {n}", ids[:limit]) for n, ids in members(s).items()}


def write_clusters(lib: Library, dataset, sample_ids: dict[int, str]) -> int:
    """Set each sample's ``cluster`` field (see the module's docstring), writing only the changes.

    Args:
        sample_ids: the dataset's sample id of each image it holds.

    Returns:
        How many samples are in a live cluster.
    """
    import fiftyone as fo

    with lib.session() as s:
        found = members(s)
    wanted = {i: n for n, ids in found.items() for i in ids if i in sample_ids}  # the newest number wins
    if not dataset.has_sample_field(FIELD):
        if not wanted:
            return 0
        dataset.add_sample_field(FIELD, fo.IntField)
    now = dict(zip(*dataset.exists(FIELD).values(["curator_id", FIELD])))
    changed = {i: wanted.get(i) for i in wanted.keys() | now.keys() if wanted.get(i) != now.get(i)}
    if changed:
        dataset.set_values(FIELD, changed, key_field="curator_id")
    return len(wanted)
