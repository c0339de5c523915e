"""`browse`'s 2-D map and `curator discover`'s clusters on FiftyOne's real database: the Brain
visualization from the stored vectors, the `cluster` field, a saved view per live cluster, and
a tag put on a cluster in the app pulled back.

Real emoji from sample_data/, embedded by the ImageNet EfficientNet-Lite0 (offline) at 64 px.
Labelled: the first 8 images of three classes; the pool: every pool image of two classes no
label shows (country-flag, transport-ground: what `discover` groups) and of two known ones.
"""

from __future__ import annotations

import csv
import shutil

import pytest
from sqlalchemy import select

from conftest import SAMPLE, as_json, ids
from curator import discover, embeddings, ingest
from curator import fiftyone_map as fmap
from curator import fiftyone_pull
from curator import fiftyone_sync as fs
from curator.library.models import ImageTag
from test_similarity import cached_backbone  # noqa: F401  (a fixture)

fo = pytest.importorskip("fiftyone")

LABELLED = ("animal-bird", "drink", "food-fruit")
POOL = ("country-flag", "transport-ground", "drink", "food-fruit")  # true classes of the pool images
KEY = "map_tf_efficientnet_lite0"


@pytest.fixture
def lib(library, tmp_path, cached_backbone, monkeypatch):  # noqa: F811
    """The images above, embedded, and `discover`'s clusters (min size 3, the whole pool)."""
    rows = list(csv.DictReader(open(SAMPLE / "manifest.csv")))
    for cls in LABELLED:
        for r in [r for r in rows if r["role"] == "library" and r["class"] == cls][:8]:
            (tmp_path / "data" / "lib" / cls).mkdir(parents=True, exist_ok=True)
            shutil.copy(SAMPLE / r["path"], tmp_path / "data" / "lib" / cls)
    (tmp_path / "data" / "pool").mkdir()
    for r in rows:
        if r["role"] == "pool" and r["true_class"] in POOL:
            shutil.copy(SAMPLE / r["path"], tmp_path / "data" / "pool")
    ingest.import_paths(library, [tmp_path / "data" / "lib"], labels_from_folders=True)
    ingest.import_paths(library, [tmp_path / "data" / "pool"])
    monkeypatch.setattr(embeddings, "backbone", cached_backbone)
    embeddings.embed(library, weights="lite0", pool="all", size=64, workers=0)
    library.by_name = ids(library)
    library.found = discover.discover(library, min_size=3, share=1.0)["clusters"]
    assert len(library.found) >= 2
    return library


def live(lib) -> dict[int, list[int]]:
    """Each live cluster's images (not excluded), nearest its centre first, as `discover` lists them."""
    rows = discover.listing(lib, every=True)["clusters"]
    return {r["cluster"]: [m["image_id"] for m in discover.members(lib, r["cluster"])["images"] if not m["excluded"]]
            for r in rows if r["state"] in discover.LIVE}


def shown(lib) -> tuple[dict[int, int | None], dict[str, list[int]]]:
    """The dataset's `cluster` field by image id, and its cluster-N views' image ids in order."""
    dataset = fs.open_dataset(lib, create=False)
    views = {v: dataset.load_saved_view(v).values("curator_id") for v in dataset.list_saved_views()
             if v.startswith(fmap.VIEW)}
    return dict(zip(*dataset.values(["curator_id", fmap.FIELD]))), views


def assert_clusters_shown(lib) -> None:
    field, views = shown(lib)
    clusters = live(lib)
    assert views == {f"cluster-{n}": members for n, members in clusters.items()}
    in_cluster = {i: n for n, members in clusters.items() for i in members}
    assert field == {i: in_cluster.get(i) for i in lib.by_name.values()}
    dataset = fs.open_dataset(lib, create=False)
    for n in clusters:
        assert dataset.get_saved_view_info(f"cluster-{n}")["description"] == f"curator discover --cluster {n}"


@pytest.mark.parametrize("n, umap, expected", [
    (3, False, "tsne"), (fmap.TSNE_UP_TO, False, "tsne"), (fmap.TSNE_UP_TO + 1, False, "pca"),
    (1_000_000, False, "pca"), (10, True, "umap"), (1_000_000, True, "umap"),
])
def test_the_method_is_umap_when_installed_else_tsne_then_pca(n, umap, expected, monkeypatch):
    import importlib.util

    spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name == "umap" and umap else spec(name))
    assert fmap.method(n) == expected
    settings = fmap.options(expected, n)
    assert settings.get("perplexity", 0) < n and settings.get("num_neighbors", 0) < n and settings["seed"] == 0


def test_the_map_the_cluster_field_and_a_view_per_cluster(lib):
    result = fs.sync(lib, show_map=True)
    with lib.session() as s:
        embedded = set(embeddings.image_ids(s, embeddings.find_embedder(s, None)).tolist())
    mapped = result["map"]
    assert (mapped["brain_key"], mapped["method"], mapped["samples"], mapped["computed"]) == (
        KEY, fmap.method(len(embedded)), len(embedded), True)
    dataset = fs.open_dataset(lib, create=False)
    assert sorted(dataset.list_brain_runs()) == [KEY, "similarity_tf_efficientnet_lite0"]
    info = dataset.get_brain_info(KEY)
    assert (info.config.method, info.config.embeddings_field, info.config.num_dims) == (
        mapped["method"], "embedding_tf_efficientnet_lite0", 2)
    points = dataset.load_brain_results(KEY)
    assert points.points.shape == (len(embedded), 2)
    by_sample = dict(zip(*dataset.values(["id", "curator_id"])))
    assert {by_sample[i] for i in points.sample_ids} == embedded
    # the clusters: the field the app colours by, and one saved view each
    assert_clusters_shown(lib)
    assert result["clustered"] == sum(len(m) for m in live(lib).values())
    assert {f"cluster-{n}" for n in live(lib)} <= set(result["views"])


def test_an_unchanged_library_keeps_its_map_and_new_vectors_replace_it(lib, tmp_path, monkeypatch):
    built = fs.sync(lib, show_map=True)["map"]
    dataset = fs.open_dataset(lib, create=False)
    when = dataset.get_brain_info(KEY).timestamp
    again = fs.sync(lib, show_map=True)["map"]
    assert again["computed"] is False and again["samples"] == built["samples"]
    assert fs.sync(lib)["map"]["computed"] is False  # without show_map: a fresh map stays
    assert fs.open_dataset(lib, create=False).get_brain_info(KEY).timestamp == when
    # new vectors: the map is made again, over them too
    extra = [r["path"] for r in csv.DictReader(open(SAMPLE / "manifest.csv"))
             if r["role"] == "pool" and r["true_class"] == "person"]
    for path in extra:
        shutil.copy(SAMPLE / path, tmp_path)
    ingest.import_paths(lib, [tmp_path / p.rsplit("/", 1)[1] for p in extra])
    embeddings.embed(lib, weights="lite0", pool="all", size=64, workers=0)
    grown = fs.sync(lib, show_map=True)["map"]
    assert grown["computed"] is True and grown["samples"] == built["samples"] + len(extra)
    assert fs.open_dataset(lib, create=False).load_brain_results(KEY).points.shape == (grown["samples"], 2)
    # another method (here: PCA above a lower t-SNE limit) makes it again too
    monkeypatch.setattr(fmap, "TSNE_UP_TO", 10)
    assert fs.sync(lib, show_map=True)["map"]["method"] == "pca"
    # a stale map without show_map: dropped, not left behind
    monkeypatch.setattr(fmap, "TSNE_UP_TO", 10_000)
    assert fs.sync(lib)["map"] is None
    dataset = fs.open_dataset(lib, create=False)
    assert KEY not in dataset.list_brain_runs() and fmap.INFO not in dataset.info


def test_acting_on_clusters_updates_the_field_and_the_views(lib):
    fs.sync(lib, show_map=True)
    first, second = (r["cluster"] for r in lib.found[:2])
    members = live(lib)[second]
    discover.act(lib, first, "label", "newclass", create=True)  # labelled: no longer live
    discover.act(lib, second, None, exclude=[str(members[0])])
    fs.sync(lib)
    field, views = shown(lib)
    assert f"cluster-{first}" not in views and views[f"cluster-{second}"] == members[1:]
    assert field[members[0]] is None
    assert_clusters_shown(lib)
    discover.act(lib, second, "dismiss")  # dismissed: still live (a later discovery finds it again)
    fs.sync(lib)
    assert shown(lib)[1][f"cluster-{second}"] == members[1:]


def test_a_tag_put_on_a_cluster_in_the_app_is_pulled(lib, cli):
    fs.sync(lib, show_map=True)
    number = lib.found[0]["cluster"]
    members = live(lib)[number]
    dataset = fs.open_dataset(lib, create=False)
    dataset.load_saved_view(f"cluster-{number}").tag_samples("flags")  # as the app's tagging does
    out = fiftyone_pull.pull(lib)
    assert sorted(out["tagged"]) == sorted(members)
    with lib.session() as s:
        assert sorted(s.scalars(select(ImageTag.image_id).where(ImageTag.tag == "flags"))) == sorted(members)
    assert out["sync"]["views"]["tag-flags"] == len(members)
    assert out["sync"]["map"]["computed"] is False  # pull kept the map it found
    # the CLI: the map in the summary; --no-map leaves it out of a library that has none
    text = cli("browse", "--no-launch").output
    assert f"2-D map {KEY}" in text and "cluster-" in text
    fmap.drop(fs.open_dataset(lib, create=False))
    assert as_json(cli("browse", "--no-launch", "--no-map", "--json"))["map"] is None
    assert as_json(cli("browse", "--no-launch", "--json"))["map"]["computed"] is True
