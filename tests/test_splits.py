"""`curator build-splits` and `curator splits` on sample_data: cutoffs, isolation, stability."""

from __future__ import annotations

import csv
import json

import pytest
from sqlalchemy import select

from curator import catalog, dedup, ingest, labels, splits
from curator.errors import InvalidInput
from curator.library.models import Image

from conftest import SAMPLE, as_json

EXPECTED = json.loads((SAMPLE / "expected.json").read_text())
STAGED_ONLY = set(EXPECTED["staged_only_classes"])


def usable(cls: str) -> int:
    """Distinct images, near duplicates counted once, staged ones included (the default)."""
    return EXPECTED["classes"][cls]["usable"] + EXPECTED["staged"].get(cls, 0)


def usable_at_least(n: int) -> set[str]:
    return {c for c in EXPECTED["classes"] if usable(c) >= n}


@pytest.fixture
def sample(library):
    ingest.import_paths(library, [SAMPLE / "library"], labels_from_folders=True)
    ingest.import_paths(library, [SAMPLE / "staged"], labels_from_folders=True, staged=True)
    return library


def split_of(lib, name) -> dict[int, str]:
    return {r["image_id"]: r["split"] for r in splits.members(lib, name)}


@pytest.mark.parametrize("cutoff", [35, 40])
def test_cutoff_counts_duplicate_groups_once(sample, cutoff):
    report = splits.build(sample, min_count=cutoff, name=f"c{cutoff}")
    assert report["dedup"] is not None  # duplicate groups were brought up to date first
    assert set(report["classes"]) == usable_at_least(cutoff) | STAGED_ONLY
    for cls, lacking in report["below_cutoff"].items():
        assert lacking == cutoff - usable(cls)
    assert report["leaks"] == []


def test_staged_only_in_train_and_excluded_on_request(sample):
    splits.build(sample, min_count=35, name="with")
    with sample.session() as s:
        staged = set(s.scalars(select(Image.id).where(Image.staged)))
    assert {sp for i, sp in split_of(sample, "with").items() if i in staged} == {"train"}
    report = splits.build(sample, min_count=35, include_staged=False, name="without")
    assert not STAGED_ONLY & set(report["classes"])
    assert not staged & set(split_of(sample, "without"))


def test_benchmark_images_are_only_in_the_benchmark_split(sample):
    with sample.session() as s:
        chosen = [im for im in catalog.select_images(s, of="animal-mammal") if im.dup_group_id is None][:4]
        labels.set_flags(s, chosen, benchmark=True)
        ids = {im.id for im in chosen}
    report = splits.build(sample, min_count=35, name="b")
    got = split_of(sample, "b")
    assert {got[i] for i in ids} == {"benchmark"} and report["totals"]["benchmark"] == 4
    assert {i for i, sp in got.items() if sp == "benchmark"} == ids


def test_no_duplicate_group_spans_two_splits(sample):
    splits.build(sample, min_count=35, name="g")
    got = split_of(sample, "g")
    for group in dedup.list_groups(sample):
        assert len({got[m["id"]] for m in group["members"] if m["id"] in got}) <= 1
    assert splits.check(sample, "g") == []


def test_rebuild_after_new_images_keeps_every_earlier_split(sample):
    first = splits.build(sample, min_count=35, name="v1")
    ingest.import_paths(sample, [SAMPLE / "pool"])
    with sample.session() as s:
        pool = catalog.select_images(s, of="unlabelled")[:30]
        labels.label(s, pool, "animal-bird")
    second = splits.build(sample, min_count=35, name="v2")
    assert second["previous"] == "v1"
    before, after = split_of(sample, "v1"), split_of(sample, "v2")
    assert {i: after[i] for i in before if i in after} == before
    assert len(after) > len(before) and first["classes"] == second["classes"]


def test_same_seed_same_splits_other_seed_other_splits(sample, tmp_path):
    splits.build(sample, min_count=35, name="a", seed=1, dedup_first=True)
    again = splits.build(sample, min_count=35, name="b", seed=1)
    assert again["previous"] == "a" and split_of(sample, "a") == split_of(sample, "b")
    splits.build(sample, min_count=35, name="c", seed=2)
    assert split_of(sample, "c") != split_of(sample, "a")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_count": 99}, "no class has 99 usable images (the largest, animal-mammal, has 49): lower --min-count or add images"),
        ({"val": 0.6, "test": 0.5}, "--val 0.6 and --test 0.5 add up to 1.1: they must leave room for training (sum < 1)"),
        ({"max_count": 30}, "--max-count 30 is below --min-count 40: raise --max-count or lower --min-count"),
    ],
)
def test_clear_errors(sample, cli, kwargs, message):
    with pytest.raises(InvalidInput) as e:
        splits.build(sample, min_count=kwargs.pop("min_count", 40), **kwargs)
    assert str(e.value) == message


def test_unknown_and_taken_names(sample, cli):
    r = cli("splits", "show", "nope")
    assert (r.exit_code, r.stderr) == (1, "Error: no split build named 'nope' (builds: none yet); make one with `curator build-splits`\n")
    assert cli("build-splits", "--min-count", 35, "--name", "x").exit_code == 0
    r = cli("build-splits", "--min-count", 35, "--name", "x")
    assert r.stderr == "Error: a split build named x exists: pick another --name (see it with `curator splits show x`)\n"
    r = cli("build-splits", "--val", 0.6, "--test", 0.5)
    assert r.stderr.startswith("Error: --val 0.6 and --test 0.5 add up to 1.1")


def test_cli_build_show_list_check_export(sample, cli, tmp_path):
    r = cli("build-splits", "--min-count", 35, "--name", "throwaway-35")
    assert r.exit_code == 0
    assert r.stdout.startswith("Built throwaway-35: ")
    assert "Leak check: passed." in r.stdout
    assert "Below --min-count 35 (left out): " in r.stdout
    listed = as_json(cli("splits", "--json"))
    assert [b["name"] for b in listed] == ["throwaway-35"]
    shown = as_json(cli("splits", "show", "throwaway-35", "--json"))
    assert set(shown["counts"]) == usable_at_least(35) | STAGED_ONLY
    assert all(c["val"] >= 1 and c["test"] >= 1 for k, c in shown["counts"].items() if k not in STAGED_ONLY)
    assert cli("splits", "check", "throwaway-35").stdout == "throwaway-35: no leaks.\n"

    out = tmp_path / "export"
    assert cli("splits", "export", "throwaway-35", out).exit_code == 0
    links = list(out.glob("*/*/*"))
    assert len(links) == listed[0]["images"] and all(p.is_symlink() and p.resolve().exists() for p in links)
    assert {p.parent.parent.name for p in links} == {"train", "val", "test"}
    assert cli("splits", "export", "throwaway-35", out, "--format", "csv").exit_code == 0
    with (out / "throwaway-35.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(links) and set(rows[0]) == {"image_id", "path", "split", "class", "subclass", "sha256"}
    r = cli("splits", "export", "throwaway-35", out, "--format", "tfrecord")
    assert r.stderr == "Error: --format tfrecord is not one of imagefolder, csv\n"
