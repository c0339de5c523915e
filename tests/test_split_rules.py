"""The split rules on plain records: cutoff, sampling, leakage, flags, stability, stratification."""

from __future__ import annotations

import hashlib
import random
from collections import Counter

import pytest

from curator import split_rules
from curator.errors import InvalidInput
from curator.split_rules import (
    BELOW_CUTOFF,
    BENCHMARK,
    BENCHMARK_DUPLICATE,
    EXCLUDED_STAGED,
    SAMPLED_OUT,
    STAGED_DUPLICATE,
    TEST,
    TRAIN,
    VAL,
    Item,
    assign,
    check,
)


def item(image_id: int, cls: str = "a", sub: str | None = None, **kw) -> Item:
    sha = hashlib.sha256(str(image_id).encode()).hexdigest()
    return Item(image_id, sha, cls, sub, **kw)


def klass(cls: str, n: int, start: int, sub: str | None = None, **kw) -> list[Item]:
    """``n`` distinct images of one class (or sub-class), ids from ``start``."""
    return [item(start + k, cls, sub, **kw) for k in range(n)]


def by_id(items):
    return {i.image_id: i for i in items}


FILLER = klass("filler", 50, 100_000)  # a class that always takes part


# -- the cutoff ----------------------------------------------------------------------------


def grouped(n_images: int, n_groups: int, start: int = 0) -> list[Item]:
    """``n_images`` images of class ``a`` of which the first ``2 * n_groups`` form pairs."""
    return [
        item(start + k, "a", group=k // 2 if k < 2 * n_groups else None) for k in range(n_images)
    ]


@pytest.mark.parametrize(
    "items, min_count, include_staged, lacks",
    [
        (klass("a", 40, 0), 40, True, None),
        (klass("a", 39, 0), 40, True, 1),
        (grouped(41, 1), 40, True, None),  # 41 images, 40 units
        (grouped(41, 1), 41, True, 1),  # the pair counts once
        (grouped(44, 4), 41, True, 1),
        (klass("a", 35, 0) + klass("a", 5, 50, staged=True), 40, True, None),
        (klass("a", 35, 0) + klass("a", 5, 50, staged=True), 40, False, 5),
        (klass("a", 35, 0) + klass("a", 5, 50, synthetic=True), 40, False, 5),
        (klass("a", 38, 0) + klass("a", 2, 50, benchmark=True), 40, True, 2),  # not training data
        (klass("a", 30, 0), 35, True, 5),  # the throw-away build at 35
    ],
)
def test_cutoff(items, min_count, include_staged, lacks):
    got = assign(items + FILLER, min_count=min_count, include_staged=include_staged)
    if lacks is None:
        assert got.classes == ["a", "filler"] and "a" not in got.below_cutoff
        assert {got.splits.get(i.image_id) for i in items} <= {TRAIN, VAL, TEST, BENCHMARK}
    else:
        assert got.classes == ["filler"] and got.below_cutoff == {"a": lacks}
        assert not {i.image_id for i in items} & set(got.splits)
        assert "a" not in got.counts


def test_below_cutoff_images_are_held_out_with_a_reason():
    items = klass("b", 3, 0) + klass("b", 1, 10, benchmark=True) + klass("c", 2, 20, staged=True)
    got = assign(items + FILLER, min_count=40, include_staged=False)
    assert got.below_cutoff == {"b": 37, "c": 40}
    assert got.held_out == {0: BELOW_CUTOFF, 1: BELOW_CUTOFF, 2: BELOW_CUTOFF, 10: BELOW_CUTOFF,
                            20: EXCLUDED_STAGED, 21: EXCLUDED_STAGED}


# -- max_count -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sizes, max_count, kept",
    [
        ({"x": 100, "y": 30, "z": 3, None: 20}, 60, {"x": 19, "y": 19, "z": 3, None: 19}),
        ({"x": 100, "y": 30, "z": 3, None: 20}, 100, {"x": 47, "y": 30, "z": 3, None: 20}),
        ({"x": 100, "y": 100}, 41, {"x": 21, "y": 20}),  # the spare unit to one of the tied
        ({"x": 100, "y": 100}, 500, {"x": 100, "y": 100}),  # under the cap: untouched
        # Sub-classes of KEEP_WHOLE units or fewer are kept whole, even past the cap.
        ({"p": 5, "q": 5, "r": 4, "s": 5, "big": 100}, 20, {"p": 5, "q": 5, "r": 4, "s": 5,
                                                            "big": 5}),
    ],
)
def test_max_count_samples_evenly_across_subclasses(sizes, max_count, kept):
    items, start = [], 0
    for sub, n in sizes.items():
        items += klass("a", n, start, sub)
        start += n
    got = assign(items, min_count=20, max_count=max_count)
    in_split = Counter(i.subclass for i in items if i.image_id in got.splits)
    assert dict(in_split) == {s: n for s, n in kept.items() if n}
    dropped = sum(sizes.values()) - sum(kept.values())
    assert got.sampled_out == ({"a": dropped} if dropped else {})
    assert Counter(got.held_out.values()) == Counter({SAMPLED_OUT: dropped} if dropped else {})


def test_max_count_keeps_real_images_before_staged_ones():
    items = klass("a", 30, 0) + klass("a", 30, 100, staged=True)
    got = assign(items, min_count=30, max_count=40)
    assert all(i in got.splits for i in range(30))
    assert sum(i in got.splits for i in range(100, 130)) == 10


def test_max_count_counts_a_duplicate_group_once():
    items = grouped(60, 10)  # 60 images, 50 units
    got = assign(items, min_count=40, max_count=50)
    assert got.sampled_out == {}
    got = assign(items, min_count=40, max_count=45)
    assert 5 <= got.sampled_out["a"] <= 10  # 5 units dropped: pairs hold 2 images


# -- duplicate groups, flags and benchmark ----------------------------------------------------


def library(seed: int = 0, n: int = 400) -> list[Item]:
    """A mixed library: three classes, sub-classes, duplicate groups, staged, synthetic."""
    rng = random.Random(seed)
    items = []
    for image_id in range(n):
        cls = rng.choice("abc")
        items.append(
            item(
                image_id,
                cls,
                rng.choice([None, "x", "y"]) if cls != "c" else None,
                # Duplicates mostly within a class, now and then across two.
                group=rng.randrange(14) + 20 * "abc".index(cls) if rng.random() < 0.3 else None,
                staged=rng.random() < 0.1,
                synthetic=rng.random() < 0.05,
                benchmark=rng.random() < 0.03,
            )
        )
    return items


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_duplicate_group_spans_two_splits(seed):
    items = library(seed)
    got = assign(items, min_count=20)
    where: dict[int, set] = {}
    for i in items:
        if i.group is not None and i.image_id in got.splits:
            where.setdefault(i.group, set()).add(got.splits[i.image_id])
    assert where and all(len(s) == 1 for s in where.values())
    assert check(got.splits, {i.image_id: i.group for i in items},
                 {i.image_id: i.sha256 for i in items}) == []


@pytest.mark.parametrize("include_staged", [True, False])
def test_staged_and_synthetic_images_only_train(include_staged):
    items = library(3)
    got = assign(items, min_count=20, include_staged=include_staged)
    unreal = [i for i in items if not i.real and not i.benchmark]
    assert unreal
    for i in unreal:
        if include_staged:
            assert got.splits.get(i.image_id, TRAIN) == TRAIN
        else:
            assert i.image_id not in got.splits
            assert got.held_out[i.image_id] in (EXCLUDED_STAGED, BENCHMARK_DUPLICATE)


def test_a_staged_duplicate_of_a_test_image_is_held_out_not_trained_on():
    items = klass("a", 40, 0)
    got = assign(items, min_count=40)
    tested = next(i for i in items if got.splits[i.image_id] == TEST)
    pair = [
        Item(tested.image_id, tested.sha256, "a", group=7),
        item(999, "a", group=7, staged=True),
    ]
    rest = [i for i in items if i.image_id != tested.image_id]
    got2 = assign(rest + pair, min_count=40, previous=got.splits)
    assert got2.splits[tested.image_id] == TEST
    assert 999 not in got2.splits and got2.held_out[999] == STAGED_DUPLICATE


def test_benchmark_images_are_isolated():
    items = klass("a", 40, 0) + [
        item(50, "a", benchmark=True),
        item(51, "a", benchmark=True, group=3),
        item(52, "a", group=3),  # unflagged duplicate of a benchmark image
        item(53, "a", group=3, staged=True),
        item(60, "small", benchmark=True),  # its class is below the cutoff
    ]
    got = assign(items, min_count=40)
    assert {i for i, s in got.splits.items() if s == BENCHMARK} == {50, 51}
    assert got.held_out[52] == got.held_out[53] == BENCHMARK_DUPLICATE
    assert got.held_out[60] == BELOW_CUTOFF
    assert got.counts["a"][BENCHMARK] == 2
    assert sum(got.counts["a"][s] for s in (TRAIN, VAL, TEST)) == 40
    assert got.problems == [
        "2 images are in no split as duplicates of benchmark images (ids 52, 53): "
        "flag them benchmark too, or unflag the originals"
    ]


def test_a_group_across_classes_is_kept_together_and_reported():
    items = klass("a", 40, 0) + klass("b", 40, 100)
    items[0] = Item(0, items[0].sha256, "a", group=5)
    items[40] = Item(100, items[40].sha256, "b", group=5)
    got = assign(items, min_count=40)
    assert got.splits[0] == got.splits[100]
    assert any(p.startswith("duplicate group 5 holds images of classes a, b") for p in got.problems)


# -- stability and determinism --------------------------------------------------------------


def grown(items: list[Item], seed: int, n: int = 60) -> list[Item]:
    """``items`` plus ``n`` new images: new lone images, and some joining existing groups."""
    rng = random.Random(seed)
    groups = sorted({i.group for i in items if i.group is not None})
    top = max(i.image_id for i in items)
    new = [
        item(top + 1 + k, rng.choice("abc"), rng.choice([None, "x", "y"]),
             group=rng.choice(groups) if rng.random() < 0.2 else None,
             staged=rng.random() < 0.1)
        for k in range(n)
    ]
    return items + new


@pytest.mark.parametrize("seed, max_count", [(0, None), (1, None), (2, 120), (3, 100)])
def test_previous_keeps_every_earlier_image_in_its_split(seed, max_count):
    before = library(seed)
    first = assign(before, min_count=20, max_count=max_count, seed=seed)
    after = grown(before, seed)
    second = assign(after, min_count=20, max_count=max_count, seed=seed, previous=first.splits)
    for image_id, split in first.splits.items():
        assert second.splits[image_id] == split
    assert bool(second.sampled_out) == (max_count is not None)
    for cls in second.classes:  # new images filled the quotas: shares stay near 10%
        counts = second.counts[cls]
        for split in (VAL, TEST):
            assert abs(counts[split] / sum(counts.values()) - 0.1) < 0.04, (cls, counts)
    assert check(second.splits, {i.image_id: i.group for i in after},
                 {i.image_id: i.sha256 for i in after}) == []


def test_previous_fills_quotas_with_new_images():
    first = assign(klass("a", 40, 0), min_count=40)
    second = assign(klass("a", 200, 0), min_count=40, previous=first.splits)
    assert first.counts["a"] == {TRAIN: 32, VAL: 4, TEST: 4, BENCHMARK: 0}
    assert second.counts["a"] == {TRAIN: 160, VAL: 20, TEST: 20, BENCHMARK: 0}


def test_previous_merged_groups_go_to_the_most_held_out_split():
    items = klass("a", 40, 0)
    first = assign(items, min_count=40)
    trained = next(i for i in items if first.splits[i.image_id] == TRAIN)
    tested = next(i for i in items if first.splits[i.image_id] == TEST)
    merged = [Item(i.image_id, i.sha256, "a", group=9) if i in (trained, tested) else i
              for i in items]
    got = assign(merged, min_count=39, previous=first.splits)  # the pair now counts once
    assert got.splits[trained.image_id] == got.splits[tested.image_id] == TEST
    assert got.problems == [
        "duplicate group 9: its images were in train and test in the previous build; "
        "all now go to test"
    ]


def test_without_previous_other_classes_keep_their_splits():
    before = klass("a", 100, 0, "x") + klass("a", 60, 200, "y") + klass("b", 80, 400)
    after = before + klass("b", 30, 600) + klass("c", 45, 800)
    first, second = assign(before, min_count=40), assign(after, min_count=40)
    for i in before:
        if i.cls == "a":
            assert second.splits[i.image_id] == first.splits[i.image_id]


@pytest.mark.parametrize("seed", range(5))
def test_without_previous_only_boundary_units_move(seed):
    before = klass("a", 200, 0)
    after = before + klass("a", 10, 1000 + 100 * seed)
    first = assign(before, min_count=40, seed=seed)
    second = assign(after, min_count=40, seed=seed)
    moved = [i for i in first.splits if second.splits[i] != first.splits[i]]
    assert len(moved) <= 2 * 10 + 2


def test_deterministic_for_a_seed_in_any_input_order():
    items = library(4)
    shuffled = items[:]
    random.Random(9).shuffle(shuffled)
    assert assign(items, min_count=20, seed=7) == assign(shuffled, min_count=20, seed=7)
    other = assign(items, min_count=20, seed=8)
    assert other.splits != assign(items, min_count=20, seed=7).splits
    lone = klass("a", 100, 0)  # without duplicate groups, image counts are the quotas
    assert assign(lone, min_count=20, seed=7).counts == assign(lone, min_count=20, seed=8).counts


# -- stratification and the too-few report --------------------------------------------------


@pytest.mark.parametrize(
    "subs, val, test",
    [
        ({None: 40}, 0.1, 0.1),
        ({"x": 70, "y": 30}, 0.1, 0.1),
        ({"x": 130, "y": 45, "z": 12, None: 63}, 0.15, 0.2),
        ({f"s{k}": 4 for k in range(10)}, 0.1, 0.1),  # many small sub-classes
        ({"x": 50}, 0.0, 0.25),
    ],
)
def test_val_and_test_shares_are_stratified(subs, val, test):
    items, start = [], 0
    for sub, n in subs.items():
        items += klass("a", n, start, sub)
        start += n
    got = assign(items, min_count=40, val=val, test=test)
    total = sum(subs.values())
    for split, share in ((VAL, val), (TEST, test)):
        want = max(round(total * share + 1e-9), 1 if share else 0)
        assert got.counts["a"][split] == want
        for sub, n in subs.items():
            have = sum(got.splits[i.image_id] == split for i in items if i.subclass == sub)
            assert abs(have - n * share) < 1, (split, sub)
    assert got.problems == []


@pytest.mark.parametrize(
    "real, staged, problem",
    [
        (40, 0, None),
        (3, 40, None),
        (2, 40, None),  # 1 val, 1 test, training on the staged images
        (1, 40, "class a: 1 real images (duplicate groups counted once), too few to fill val "
                "and test: it has 0 val and 1 test"),
        (0, 40, "class a: 0 real images (duplicate groups counted once), too few to fill val "
                "and test: it has 0 val and 0 test"),
    ],
)
def test_too_few_real_images_are_reported(real, staged, problem):
    items = klass("a", real, 0) + klass("a", staged, 500, staged=True)
    got = assign(items, min_count=40)
    assert got.problems == ([problem] if problem else [])
    assert got.counts["a"][TRAIN] >= 1


def test_two_real_images_and_nothing_else_keep_one_for_training():
    got = assign(klass("a", 2, 0), min_count=2)
    assert sorted(got.splits.values()) == [TEST, TRAIN]
    assert got.problems == [
        "class a: 2 real images (duplicate groups counted once), too few to fill val and test: "
        "it has 0 val and 1 test"
    ]


# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        ({"val": 1.0}, "--val 1.0 is outside [0, 1): give the share of images for val, "
                       "such as 0.1"),
        ({"test": -0.1}, "--test -0.1 is outside [0, 1): give the share of images for test, "
                         "such as 0.1"),
        ({"val": 0.6, "test": 0.5}, "--val 0.6 and --test 0.5 add up to 1.1: they must leave "
                                    "room for training (sum < 1)"),
        ({"val": 0.5, "test": 0.5}, "--val 0.5 and --test 0.5 add up to 1: they must leave "
                                    "room for training (sum < 1)"),
        ({"min_count": 0}, "--min-count 0 is below 1: a class needs at least 1 image"),
        ({"max_count": 30}, "--max-count 30 is below --min-count 40: raise --max-count or lower "
                            "--min-count"),
        ({"min_count": 51}, "no class has 51 usable images (the largest, filler, has 50): lower "
                            "--min-count or add images"),
        ({"previous": {3: "holdout"}}, "previous split of image 3 is 'holdout': expected one of "
                                       "train, val, test, benchmark"),
    ],
)
def test_invalid_options(options, message):
    with pytest.raises(InvalidInput) as e:
        assign(FILLER, **{"min_count": 40, **options})
    assert str(e.value) == message


@pytest.mark.parametrize(
    "items, message",
    [
        ([], "no class has 40 usable images (there are none at all): label images first "
             "with `curator label`"),
        ([item(1), item(1)], "image 1 is given twice: pass each image once"),
        ([item(1, "")], "image 1 has no class: pass only labelled images to split"),
    ],
)
def test_invalid_items(items, message):
    with pytest.raises(InvalidInput) as e:
        assign(items, min_count=40)
    assert str(e.value) == message


# -- check ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "splits, groups, shas, problems",
    [
        ({1: TRAIN, 2: VAL, 3: TEST}, {1: 5, 2: None, 3: 6}, {1: "a", 2: "b", 3: "c"}, []),
        ({1: TRAIN, 2: TRAIN, 3: TEST}, {1: 5, 2: 5, 3: 5}, {1: "a", 2: "b", 3: "c"},
         ["duplicate group 5 spans train (images 1, 2) and test (image 3)"]),
        ({1: VAL, 2: BENCHMARK}, {}, {1: "f" * 64, 2: "f" * 64},
         ["identical images (sha256 ffffffffffff) span val (image 1) and benchmark (image 2)"]),
        ({1: TRAIN, 2: TEST, 3: TEST}, {1: 4, 2: 4, 3: None}, {1: "a", 2: "b", 3: "a"},
         ["duplicate group 4 spans train (image 1) and test (image 2)",
          "identical images (sha256 a) span train (image 1) and test (image 3)"]),
    ],
)
def test_check_finds_leaks(splits, groups, shas, problems):
    assert check(splits, groups, shas) == problems


def test_module_constants_cover_every_held_out_reason():
    reasons = {BELOW_CUTOFF, EXCLUDED_STAGED, BENCHMARK_DUPLICATE, SAMPLED_OUT, STAGED_DUPLICATE}
    got = assign(library(5), min_count=20, max_count=60, include_staged=False)
    assert set(got.held_out.values()) <= reasons
    assert split_rules.SPLITS == (TRAIN, VAL, TEST, BENCHMARK)
