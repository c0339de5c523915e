"""`curator discover` on a library whose geometry is known.

Real pictures of five families (test_similarity's ``picture``: a coloured background with four
darker blobs where the family puts them), embedded by the ImageNet EfficientNet-Lite0 (offline)
at 64 px. Labelled: 6 red and 6 green. Two planted groups no class shows: 6 yellow "odd"
pictures (2 of them saved as unknown) and 6 violet ones in the pool; beside them 4 red and 4 green
pool pictures (known classes) and 3 emoji of sample_data/, each unlike everything else (noise).
"""

from __future__ import annotations

import csv
import io
import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import TINY, as_json, error, ids
from curator import discover, embeddings, ingest
from curator.errors import CuratorError
from curator.library.models import Cluster, ClusterMember, LabelEvent
from test_similarity import cached_backbone, picture  # noqa: F401  (a fixture, and the pictures)

LAYOUT = {  # folder: the family of each file; file names <family><n>.png
    "lib/red": ["red"] * 6, "lib/green": ["green"] * 6, "lib/unknown": ["odd"] * 2,
    "pool": ["red"] * 4 + ["green"] * 4 + ["odd"] * 4 + ["violet"] * 6,
}
MIN = 4  # the smallest cluster: the 3 emoji are too few to make one
SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "library"
NOISE = {"flag": "country-flag/flag-ae-1f1e6-1f1ea-twitter.png", "ambulance": "transport-ground/ambulance-1f691-google.png",
         "banana": "food-fruit/banana-1f34c-twitter.png"}  # name in the pool: sample_data/library/ file


def family(name: str) -> str:
    return re.match(r"[a-z]+", name).group()


@pytest.fixture
def lib(library, tmp_path, cached_backbone, monkeypatch):  # noqa: F811
    n = 0
    for folder, families in LAYOUT.items():
        for family_ in families:
            n += 1
            path = tmp_path / "data" / folder / f"{family_}{n}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            picture(family_, n).save(path)
    for name, source in NOISE.items():
        shutil.copy(SAMPLE / source, tmp_path / "data" / "pool" / f"{name}.png")
    ingest.import_paths(library, [tmp_path / "data" / "lib"], labels_from_folders=True)
    ingest.import_paths(library, [tmp_path / "data" / "pool"])
    monkeypatch.setattr(embeddings, "backbone", cached_backbone)
    embeddings.embed(library, weights="lite0", pool="all", size=64, workers=0)
    library.by_name = ids(library)
    library.data = tmp_path / "data"
    return library


def named(lib, images) -> set[str]:
    back = {v: k for k, v in lib.by_name.items()}
    return {back[i] for i in images}


def clusters_by_family(lib, result) -> dict[str, dict]:
    """Each cluster row by the one family of its members (a test fails if a cluster is mixed)."""
    out = {}
    for row in result["clusters"]:
        members = discover.members(lib, row["cluster"])["images"]
        families = {family(n) for n in named(lib, [m["image_id"] for m in members])}
        assert len(families) == 1, f"cluster {row['cluster']} mixes {families}"
        out[families.pop()] = row | {"members": members}
    return out


def test_the_planted_groups_cluster_and_the_noise_stays_out(lib):
    result = discover.discover(lib, min_size=MIN, share=1.0)
    found = clusters_by_family(lib, result)
    assert {"odd", "violet"} <= set(found) and not set(NOISE) & set(found)
    assert found["odd"]["size"] == 6 and found["odd"]["unknown"] == 2  # the unknown ones with the pool's
    assert found["violet"]["size"] == 6 and found["violet"]["unknown"] == 0
    for f in ("odd", "violet"):
        assert found[f]["inside"] is None and found[f]["state"] == "open" and found[f]["new"]
        assert len(found[f]["nearest"]) == 2 and found[f]["nearest"][0]["similarity"] >= found[f]["nearest"][1]["similarity"]
        assert len(found[f]["examples"]) == 5
    # The known classes' pool pictures: inside their own class when called inside anything.
    assert {found[k]["inside"] for k in {"red", "green"} & set(found)} - {None} <= {"red", "green"}
    assert any(found[k]["inside"] == k for k in {"red", "green"} & set(found))
    d = result["discovery"]
    assert d["candidates"] == 23 and d["clustered"] == 23 and d["noise"] >= 3 and d["pool"] == "both"


def test_only_the_unfamiliar_share_is_clustered(lib):
    d = discover.discover(lib, min_size=MIN, share=0.5)["discovery"]
    assert d["clustered"] == 2 + 11  # every unknown image, and half of the 21 unlabelled ones (rounded up)
    only_unknown = discover.discover(lib, pool="unknown", min_size=2)
    assert only_unknown["discovery"]["candidates"] == 2 and only_unknown["discovery"]["clustered"] == 2


def test_numbers_stay_across_a_rerun_and_after_new_images(lib, tmp_path):
    first = clusters_by_family(lib, discover.discover(lib, min_size=MIN, share=1.0))
    for n in (100, 101):
        picture("odd", n).save(tmp_path / f"odd{n}.png")
    ingest.import_paths(lib, [tmp_path / "odd100.png", tmp_path / "odd101.png"])
    embeddings.embed(lib, weights="lite0", pool="all", size=64, workers=0)
    lib.by_name = ids(lib)
    again = clusters_by_family(lib, discover.discover(lib, min_size=MIN, share=1.0))
    assert again["odd"]["cluster"] == first["odd"]["cluster"] and again["odd"]["size"] == 8
    assert again["violet"]["cluster"] == first["violet"]["cluster"] and not again["violet"]["new"]
    assert discover.listing(lib)["discovery"]["id"] == 2


def test_label_a_cluster_as_a_new_class_leaving_out_one_image(lib, cli):
    found = clusters_by_family(lib, discover.discover(lib, min_size=MIN, share=1.0))
    number, members = found["violet"]["cluster"], [m["image_id"] for m in found["violet"]["members"]]
    out = as_json(cli("discover", "--cluster", number, "--label", "violet", "--subclass", "plain", "--create",
                      "--exclude", members[0], "--json"))
    assert sorted(out["changed"]) == sorted(members[1:]) and out["excluded"] == [members[0]]
    assert out["state"] == "labelled" and out["value"] == "violet/plain"
    labels = {r["image_id"]: r["label_state"] for r in discover.members(lib, number)["images"]}
    assert labels[members[0]] == "unlabelled" and {labels[i] for i in members[1:]} == {"labelled"}
    with lib.session() as s:
        events = s.scalars(select(LabelEvent).where(LabelEvent.image_id.in_(members))).all()
    label_events = [e for e in events if e.field == "label" and e.action != "import"]
    assert len(label_events) == 5 and {e.source for e in label_events} == {"discover"}
    assert {e.new_value for e in label_events} == {"violet/plain"}
    assert {e.detail for e in label_events} == {f"curator discover, cluster {number}"}
    classes = as_json(cli("classes", "--json"))
    row = next(r for r in (classes if isinstance(classes, list) else classes["classes"]) if r["class"] == "violet")
    assert row["labelled"] == 5


def test_an_excluded_image_stays_out_of_its_cluster(lib):
    found = clusters_by_family(lib, discover.discover(lib, min_size=MIN, share=1.0))
    number, first = found["odd"]["cluster"], found["odd"]["members"][0]["image_id"]
    discover.act(lib, number, None, exclude=[str(first)])
    again = clusters_by_family(lib, discover.discover(lib, min_size=MIN, share=1.0))
    assert again["odd"]["cluster"] == number and again["odd"]["size"] == 5
    rows = {m["image_id"]: m["excluded"] for m in discover.members(lib, number)["images"]}
    assert rows[first] is True and sum(rows.values()) == 1
    done = discover.act(lib, number, "tag", "yellowish")
    assert first not in done["changed"] and len(done["changed"]) == 5 and done["state"] == "tagged"


def test_dismissed_clusters_stay_dismissed_and_lost_ones_go(lib):
    found = clusters_by_family(lib, discover.discover(lib, min_size=MIN, share=1.0))
    discover.act(lib, found["violet"]["cluster"], "dismiss")
    discover.act(lib, found["odd"]["cluster"], "reject", "not a subject")
    again = clusters_by_family(lib, discover.discover(lib, min_size=MIN, share=1.0))
    assert again["violet"]["state"] == "dismissed" and again["violet"]["cluster"] == found["violet"]["cluster"]
    assert "odd" not in again  # its images are rejected: out of the pool
    # The violet pictures labelled by hand: the cluster is no longer found, and is gone.
    labelled = [str(m["image_id"]) for m in found["violet"]["members"]]
    discover.act(lib, found["violet"]["cluster"], "label", "violet", create=True)
    discover.discover(lib, min_size=MIN, share=1.0)
    with lib.session() as s:
        states = dict(s.execute(select(Cluster.number, Cluster.state)).all())
    assert states[found["odd"]["cluster"]] == "rejected" and states[found["violet"]["cluster"]] == "labelled"
    assert len(labelled) == 6


def test_a_cluster_no_longer_found_is_gone_and_refuses_actions(lib):
    found = clusters_by_family(lib, discover.discover(lib, min_size=MIN, share=1.0))
    number = found["violet"]["cluster"]
    with lib.session() as s:  # as if the pictures had been labelled by hand in between
        cluster = s.scalar(select(Cluster).where(Cluster.number == number))
        ids_ = list(s.scalars(select(ClusterMember.image_id).where(ClusterMember.cluster_id == cluster.id)))
    from curator import labels
    labels.apply_to(lib, [str(i) for i in ids_], None, labels.label, label="violet", create=True)
    discover.discover(lib, min_size=MIN, share=1.0)
    assert discover.members(lib, number)["state"] == "gone"
    with pytest.raises(CuratorError, match="not found again by the newest discovery"):
        discover.act(lib, number, "tag", "late")


def test_cli_formats(lib, cli):
    table = cli("discover", "--min-size", MIN, "--share", 1)
    assert table.exit_code == 0, table.output
    assert "Discovery 1: 23 of 23 pool images clustered" in table.stdout and "new class?" in table.stdout
    listed = as_json(cli("discover", "--list", "--json"))
    assert listed["discovery"]["id"] == 1 and listed["clusters"]
    rows = list(csv.reader(io.StringIO(cli("discover", "--list", "--csv").stdout)))
    assert rows[0][:3] == ["cluster", "state", "size"] and len(rows) == len(listed["clusters"]) + 1
    number = listed["clusters"][0]["cluster"]
    paths = cli("discover", "--cluster", number, "--paths").stdout.splitlines()
    assert len(paths) == listed["clusters"][0]["size"] and all(p.endswith(".png") for p in paths)
    shown = cli("discover", "--cluster", number)
    assert f"Cluster {number} (open)" in shown.stdout


@pytest.mark.parametrize("args, message", [
    (["--cluster", 1, "--label", "a", "--tag", "b"], "give at most one action"),
    (["--label", "a"], "an action needs --cluster N"),
])
def test_cli_usage_errors(library, cli, args, message):
    result = cli("discover", *args)
    assert result.exit_code == 2 and message in result.output


@pytest.mark.parametrize("args, message", [
    (["--cluster", 99, "--tag", "b"], "no cluster 99: `curator discover --list`"),
    (["--pool", "labelled"], "--pool labelled: use one of unknown, unlabelled, both"),
    (["--share", 0], "--share 0.0: give a share of the pool above 0 and at most 1"),
    (["--cluster", 1, "--subclass", "x", "--tag", "b"], "--subclass goes with --label"),
])
def test_cli_errors(lib, cli, args, message):
    cli("discover", "--min-size", MIN, "--share", 1)
    assert message in error(cli("discover", *args))


def test_a_library_with_nothing_yet(library, cli):
    assert "no clusters yet: run `curator discover` first" in error(cli("discover", "--list"))
    assert "no embedder or run named 'latest'" in error(cli("discover"))


def test_match_pairs_the_clusters_sharing_most():
    old = {10: {1, 2, 3, 4}, 11: {5, 6, 7}, 12: {8, 9}}
    new = [{1, 2, 3, 4, 20}, {5, 30, 31, 32, 33, 34, 35}, {8, 9, 40}, {6, 7}]
    assert discover.match(new, old) == {0: 10, 2: 12, 3: 11}  # {5, ...} shares 1 of 3 with 11: too few


def test_a_runs_unsure_predictions_join_the_unexplained(lib):
    from curator import predict, splits, train

    splits.build(lib, min_count=5, val=0.2, test=0.2, name="b")
    train.train(lib, "b", train.TrainConfig(epochs=1, **TINY), name="r", throwaway=True)
    predict.bulk_identify(lib, "r", "unlabelled")
    d = discover.discover(lib, min_size=MIN, share=0.05, max_confidence=1.0, run="r")["discovery"]
    assert d["run"] == "r" and d["max_confidence"] == 1.0
    assert d["clustered"] == 2 + 21  # the unknowns, and every unlabelled image (all predicted at 1.0 or less)
    assert discover.discover(lib, min_size=MIN, share=0.05)["discovery"]["clustered"] == 2 + 2  # unknowns, 5% of 21
