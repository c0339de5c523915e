"""The rules for train/val/test splits: pure functions over plain records, no database.

``assign(items, min_count=40)`` decides every image's split; ``check(splits, groups, sha256)``
looks for leaks in any split table. The caller (``curator.splits``) reads the library into
``Item`` records (labelled, active images only) and stores the result.

The rules:

* A **unit** is a duplicate group, or an image in no group. A unit is never split: all its
  images share one split. Counts toward ``min_count`` and ``max_count`` are of units, so a
  duplicate group counts once (once in each class it holds images of).
* A class **takes part** when it has at least ``min_count`` usable units. Usable means not
  flagged ``benchmark``, not a duplicate of a benchmark image, and, with
  ``include_staged=False``, neither staged nor synthetic.
* **Benchmark** images of classes taking part go to ``benchmark`` and nowhere else. They do not
  count toward the cutoff (they are never trained on). Unflagged images in a duplicate group with
  a benchmark image are in no split: the benchmark set stays exactly what was flagged, and
  nothing that duplicates it is trained or validated on.
* **Staged and synthetic** images go to ``train`` only. A unit is *real* when it holds at least
  one real (neither staged nor synthetic) image; its real images decide its split, and a staged
  duplicate of a val or test image is left out of every split rather than pull it into train.
* Above ``max_count`` a class is sampled down evenly across its sub-classes (images with no
  sub-class are one more stratum): each keeps ``min(size, level)`` units for one common level,
  and sub-classes of up to ``KEEP_WHOLE`` units are kept whole even if that passes the cap.
  Real units are kept before staged ones, and (with ``previous``) earlier units before new ones.
* **Quotas** are per class: ``round(real units * fraction)`` for val and for test, at least 1
  each when the fraction is above 0, within what the class's real units allow while leaving
  one unit to train. Each seat goes to the sub-class furthest below its own share
  (``real units * fraction``), so the class total is exact and each sub-class is within about
  one unit of its share (largest-remainder rounding).
* Within a sub-class, new units are ranked by a seeded hash of their content
  (``blake2b(f"{seed}:{sha256}")`` of the lowest sha256 among the unit's real images); the
  lowest ranks fill test, the next val, the rest train. No shuffle, so a unit's rank never
  depends on which other images exist.

Guarantees:

* Deterministic: the same items and options give the same splits, in any input order.
  Another seed ranks units differently.
* With ``previous`` (the earlier build's ``{image_id: split}``, same options): every earlier
  image that is still usable in a class taking part keeps its split (staged ones keep train);
  earlier units are never sampled out by ``max_count``; new units fill each class's remaining
  quota. The one exception: a duplicate group whose images had different splits (groups merged
  since) goes to the most held-out of them (test, then val, then train) and is reported.
  Shares can exceed their target when earlier images leave; no earlier unit is moved to fix it.
* Without ``previous``: a class that gained and lost no images keeps its splits exactly
  (unless a duplicate group links it to one that did). In a class that gained ``k`` units,
  only units near the val/test boundaries of its sub-classes can move (a few per added unit;
  the tests pin it at ``2k + 2`` for a class without sub-classes); with ``max_count``, units
  near each sub-class's sampling boundary can also be sampled in or out. Pass ``previous`` for
  exact stability.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from math import floor

from curator.errors import InvalidInput

TRAIN, VAL, TEST, BENCHMARK = "train", "val", "test", "benchmark"
SPLITS = (TRAIN, VAL, TEST, BENCHMARK)
KEEP_WHOLE = 5  # sub-classes with this many units or fewer are never sampled down

# Why an image is in no split (Assignment.held_out values).
BELOW_CUTOFF = "class below the cutoff"
EXCLUDED_STAGED = "staged or synthetic, excluded"
BENCHMARK_DUPLICATE = "duplicate of a benchmark image"
SAMPLED_OUT = "sampled out by max_count"
STAGED_DUPLICATE = "staged or synthetic duplicate of a val or test image"

_HELD_OUT_FIRST = (TEST, VAL, TRAIN)  # a merged group goes to the first of these it touched


@dataclass(frozen=True)
class Item:
    """One labelled, active image as the split rules see it.

    Attributes:
        image_id: the library's image id.
        sha256: the image's content hash; seeds its rank.
        cls: its class.
        subclass: its sub-class, or None.
        group: its duplicate group id, or None when it has no duplicate.
        staged, synthetic, benchmark: its flags.
    """

    image_id: int
    sha256: str
    cls: str
    subclass: str | None = None
    group: int | None = None
    staged: bool = False
    synthetic: bool = False
    benchmark: bool = False

    @property
    def real(self) -> bool:
        """Neither staged nor synthetic: may go to val or test."""
        return not (self.staged or self.synthetic)


@dataclass
class Assignment:
    """What ``assign`` decided.

    Attributes:
        splits: image id -> ``train``, ``val``, ``test`` or ``benchmark``; images in no split
            are absent (see ``held_out``).
        classes: the classes taking part, sorted.
        below_cutoff: class -> how many usable units it lacks to reach ``min_count``.
        counts: class taking part -> split -> images (all four splits present).
        problems: one line per thing worth a look (too few real images, split groups, ...).
        sampled_out: class -> images dropped by ``max_count`` (classes that dropped some).
        held_out: image id -> why it is in no split (the reasons are this module's constants).
    """

    splits: dict[int, str] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    below_cutoff: dict[str, int] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    sampled_out: dict[str, int] = field(default_factory=dict)
    held_out: dict[int, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Unit:
    """A duplicate group or a lone image: split as one."""

    members: list[Item]
    rank: tuple[int, str]
    cls: str
    sub: str | None
    real: bool
    was: str | None = None  # its split in `previous`, if it had one
    split: str | None = None


def assign(
    items: Iterable[Item],
    *,
    min_count: int,
    max_count: int | None = None,
    val: float = 0.1,
    test: float = 0.1,
    seed: int = 0,
    include_staged: bool = True,
    previous: Mapping[int, str] | None = None,
) -> Assignment:
    """Split labelled, active images into train, val, test and benchmark.

    Args:
        items: the images, one ``Item`` each (unknown and rejected images left out).
        min_count: usable units (duplicate groups counted once) a class needs to take part.
        max_count: cap on a class's units, sampled evenly across sub-classes; None for no cap.
        val: share of each class's real units for validation, in [0, 1).
        test: share for test, in [0, 1); ``val + test`` must be below 1.
        seed: seeds the content hash that ranks units.
        include_staged: False leaves staged and synthetic images out of every split and out
            of the counts; True trains on them (they never reach val or test).
        previous: ``{image_id: split}`` of an earlier build with the same options; its
            images keep their splits (see the module docstring for the exact guarantee).

    Returns:
        An ``Assignment``.

    Raises:
        InvalidInput: an option out of range, a malformed item or previous split, or no class
            reaching ``min_count``.
    """
    fractions = _check_options(min_count, max_count, val, test)
    items = _check_items(items)
    previous = _check_previous(previous)
    out = Assignment()
    bench, usable = _partition(items, include_staged, out.held_out)
    out.classes, out.below_cutoff = _cutoff(items, usable, min_count)
    taking_part = set(out.classes)
    for item in bench + usable:
        if item.cls not in taking_part:
            out.held_out[item.image_id] = BELOW_CUTOFF
    out.splits.update((i.image_id, BENCHMARK) for i in bench if i.cls in taking_part)
    units = _units([i for i in usable if i.cls in taking_part], seed, previous, out.problems)
    by_class: dict[str, list[_Unit]] = defaultdict(list)
    for unit in units:
        by_class[unit.cls].append(unit)
    for cls in out.classes:
        kept = _sample(by_class[cls], max_count, out)
        _fill(cls, kept, fractions, out.problems)
    _write(units, items, out)
    return out


def _check_options(min_count, max_count, val, test) -> dict[str, Fraction]:
    """Validate the numbers; return the fractions as exact ``Fraction`` s keyed by split."""
    for name, value in (("val", val), ("test", test)):
        if not 0 <= value < 1:
            raise InvalidInput(
                f"--{name} {value} is outside [0, 1): give the share of images for {name}, "
                "such as 0.1"
            )
    fractions = {VAL: Fraction(str(val)), TEST: Fraction(str(test))}
    if sum(fractions.values()) >= 1:
        raise InvalidInput(
            f"--val {val} and --test {test} add up to {float(sum(fractions.values())):g}: "
            "they must leave room for training (sum < 1)"
        )
    if min_count < 1:
        raise InvalidInput(f"--min-count {min_count} is below 1: a class needs at least 1 image")
    if max_count is not None and max_count < min_count:
        raise InvalidInput(
            f"--max-count {max_count} is below --min-count {min_count}: "
            "raise --max-count or lower --min-count"
        )
    return fractions


def _check_items(items: Iterable[Item]) -> list[Item]:
    """The items sorted by id; refuses a repeated id or an image with no class."""
    items = sorted(items, key=lambda i: i.image_id)
    for a, b in zip(items, items[1:]):
        if a.image_id == b.image_id:
            raise InvalidInput(f"image {a.image_id} is given twice: pass each image once")
    for item in items:
        if not item.cls:
            raise InvalidInput(
                f"image {item.image_id} has no class: pass only labelled images to split"
            )
    return items


def _check_previous(previous: Mapping[int, str] | None) -> dict[int, str]:
    """``previous`` as a dict; refuses a split name it does not know."""
    previous = dict(previous or {})
    for image_id, split in previous.items():
        if split not in SPLITS:
            raise InvalidInput(
                f"previous split of image {image_id} is '{split}': expected one of "
                + ", ".join(SPLITS)
            )
    return previous


def _partition(items: list[Item], include_staged: bool, held: dict[int, str]):
    """Split items into (benchmark images, usable images); record why the rest are held out."""
    bench_groups = {i.group for i in items if i.benchmark and i.group is not None}
    bench, usable = [], []
    for item in items:
        if item.benchmark:
            bench.append(item)
        elif item.group is not None and item.group in bench_groups:
            held[item.image_id] = BENCHMARK_DUPLICATE
        elif not item.real and not include_staged:
            held[item.image_id] = EXCLUDED_STAGED
        else:
            usable.append(item)
    return bench, usable


def _unit_key(item: Item) -> tuple:
    return ("group", item.group) if item.group is not None else ("image", item.image_id)


def _cutoff(items: list[Item], usable: list[Item], min_count: int):
    """The classes reaching ``min_count`` usable units, and how many the others lack."""
    units = Counter(cls for cls, _ in {(i.cls, _unit_key(i)) for i in usable})
    below = {
        cls: min_count - units[cls]
        for cls in sorted({i.cls for i in items})
        if units[cls] < min_count
    }
    classes = sorted(cls for cls in units if units[cls] >= min_count)
    if not classes:
        if not units:
            raise InvalidInput(
                f"no class has {min_count} usable images (there are none at all): "
                "label images first with `curator label`"
            )
        largest = min(units, key=lambda c: (-units[c], c))
        raise InvalidInput(
            f"no class has {min_count} usable images (the largest, {largest}, has "
            f"{units[largest]}): lower --min-count or add images"
        )
    return classes, below


def seeded_hash(sha256: str, seed: int) -> int:
    """A 64-bit number fixed by an image's content and ``seed``: the order splits (and
    suspects' folds) deal images in, the same on every machine and every run."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:{sha256}".encode(), digest_size=8).digest(), "big")


def _rank(sha256: str, seed: int) -> tuple[int, str]:
    """A unit's place in line: a seeded hash of its content (sha256 breaks a tie)."""
    return seeded_hash(sha256, seed), sha256


def _units(usable: list[Item], seed: int, previous: dict[int, str], problems: list[str]):
    """Group usable items into units, each with its rank, stratum and earlier split."""
    members: dict[tuple, list[Item]] = defaultdict(list)
    for item in usable:
        members[_unit_key(item)].append(item)
    units = []
    for key, group in members.items():
        real = [i for i in group if i.real]
        canonical = min(real or group, key=lambda i: i.sha256)
        unit = _Unit(
            group, _rank(canonical.sha256, seed), canonical.cls, canonical.subclass, bool(real)
        )
        unit.was = _was(unit, previous, problems)
        if len({i.cls for i in group}) > 1:
            problems.append(
                f"duplicate group {key[1]} holds images of classes "
                f"{', '.join(sorted({i.cls for i in group}))}: split with {unit.cls}; "
                "check their labels"
            )
        units.append(unit)
    return sorted(units, key=lambda u: u.rank)


def _was(unit: _Unit, previous: dict[int, str], problems: list[str]) -> str | None:
    """The unit's split in ``previous``: its real images decide; when none of them was in a
    split, a unit with an earlier staged image was train (the only split staged images get)."""
    anyone = {previous.get(i.image_id) for i in unit.members} & {TRAIN, VAL, TEST}
    earlier = {previous.get(i.image_id) for i in unit.members if i.real} & anyone
    if not earlier:
        return TRAIN if anyone else None
    chosen = next(s for s in _HELD_OUT_FIRST if s in earlier)
    if len(earlier) > 1:
        problems.append(
            f"duplicate group {unit.members[0].group}: its images were in "
            f"{' and '.join(s for s in SPLITS if s in earlier)} in the previous build; "
            f"all now go to {chosen}"
        )
    return chosen


def _sample(units: list[_Unit], max_count: int | None, out: Assignment) -> list[_Unit]:
    """The units a class keeps under ``max_count``, spread evenly over its sub-classes."""
    if max_count is None or len(units) <= max_count:
        return units
    strata: dict[str | None, list[_Unit]] = defaultdict(list)
    for unit in units:
        strata[unit.sub].append(unit)
    for line in strata.values():
        # Earlier val/test first, then earlier train, then new; real before staged; then rank.
        line.sort(key=lambda u: (_HELD_OUT_FIRST.index(u.was) if u.was else 3, not u.real, u.rank))
    sizes = {s: len(line) for s, line in strata.items()}
    floors = {
        s: max(min(sizes[s], KEEP_WHOLE), sum(u.was is not None for u in line))
        for s, line in strata.items()
    }
    kept = []
    for s, n in _level_fill(sizes, floors, max_count).items():
        kept += strata[s][:n]
        for unit in strata[s][n:]:
            for item in unit.members:
                out.held_out[item.image_id] = SAMPLED_OUT
            out.sampled_out[unit.cls] = out.sampled_out.get(unit.cls, 0) + len(unit.members)
    return sorted(kept, key=lambda u: u.rank)


def _level_fill(sizes: dict, floors: dict, budget: int) -> dict:
    """Give each stratum ``min(size, max(level, floor))`` for the highest level within budget,
    then the spare units one each to the largest strata still growing."""

    def total(level: int) -> int:
        return sum(min(sizes[s], max(level, floors[s])) for s in sizes)

    lo, hi = 0, max(sizes.values())
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if total(mid) <= budget else (lo, mid - 1)
    alloc = {s: min(sizes[s], max(lo, floors[s])) for s in sizes}
    spare = budget - sum(alloc.values())
    growing = [s for s in sizes if floors[s] <= lo < sizes[s]]
    for s in sorted(growing, key=lambda s: (-sizes[s], s or ""))[: max(spare, 0)]:
        alloc[s] += 1
    return alloc


def _quota(n: int, fraction: Fraction) -> int:
    """``n * fraction`` rounded half up, at least 1 when the fraction is above 0."""
    return max(floor(n * fraction + Fraction(1, 2)), 1 if fraction else 0)


def _fill(cls: str, units: list[_Unit], fractions: dict[str, Fraction], problems: list[str]):
    """Set the split of each of one class's units: earlier ones keep theirs, new ones fill the
    class's val and test quotas sub-class by sub-class, lowest ranks first."""
    real = [u for u in units if u.real]
    for unit in units:
        unit.split = unit.was if unit.real else TRAIN
    fixed = Counter(u.split for u in real if u.split)
    room = max(0, len(real) - (0 if len(real) < len(units) else 1) - fixed[VAL] - fixed[TEST])
    seats = {s: max(0, _quota(len(real), fractions[s]) - fixed[s]) for s in (TEST, VAL)}
    while seats[TEST] + seats[VAL] > room:
        seats[VAL if seats[VAL] >= seats[TEST] else TEST] -= 1
    strata: dict[str | None, deque[_Unit]] = defaultdict(deque)
    sizes: Counter = Counter(u.sub for u in real)
    for unit in real:  # already in rank order
        if unit.split is None:
            strata[unit.sub].append(unit)
    for split in (TEST, VAL):
        have = Counter(u.sub for u in real if u.split == split)
        share = {s: sizes[s] * fractions[split] for s in sizes}
        _allocate(strata, share, have, seats[split], split)
    for line in strata.values():
        for unit in line:
            unit.split = TRAIN
    got = Counter(u.split for u in real)
    if any(fractions[s] and not got[s] for s in (VAL, TEST)):
        problems.append(
            f"class {cls}: {len(real)} real images (duplicate groups counted once), too few to "
            f"fill val and test: it has {got[VAL]} val and {got[TEST]} test"
        )


def _allocate(strata, share, have, seats: int, split: str) -> None:
    """Hand ``seats`` new units to ``split``, each from the sub-class furthest below its share
    (lowest next rank on a tie); equals largest-remainder rounding when nothing was fixed."""
    for _ in range(seats):
        open_ = [s for s, line in strata.items() if line]
        if not open_:
            return
        s = min(open_, key=lambda s: (have[s] - share[s], strata[s][0].rank))
        strata[s].popleft().split = split
        have[s] += 1


def _write(units: list[_Unit], items: list[Item], out: Assignment) -> None:
    """Copy unit splits onto images, count images per class and split, note benchmark holds."""
    for unit in units:
        for item in unit.members if unit.split else ():  # no split: sampled out
            if unit.split != TRAIN and not item.real:
                out.held_out[item.image_id] = STAGED_DUPLICATE
            else:
                out.splits[item.image_id] = unit.split
    cls_of = {i.image_id: i.cls for i in items}
    out.counts = {cls: dict.fromkeys(SPLITS, 0) for cls in out.classes}
    for image_id, split in out.splits.items():
        out.counts[cls_of[image_id]][split] += 1
    held = sorted(i for i, why in out.held_out.items() if why == BENCHMARK_DUPLICATE)
    if held:
        out.problems.append(
            f"{len(held)} images are in no split as duplicates of benchmark images "
            f"(ids {', '.join(map(str, held[:10]))}{', ...' if len(held) > 10 else ''}): "
            "flag them benchmark too, or unflag the originals"
        )


def check(
    splits: Mapping[int, str],
    groups: Mapping[int, int | None],
    sha256: Mapping[int, str],
) -> list[str]:
    """Leaks between splits: a duplicate group, or identical bytes, in two splits.

    Args:
        splits: image id -> split, for the images in a split.
        groups: image id -> duplicate group id or None.
        sha256: image id -> content hash.

    Returns:
        One line per leak; empty when there is none.
    """
    by_group: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    by_sha: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for image_id, split in sorted(splits.items()):
        if groups.get(image_id) is not None:
            by_group[groups[image_id]][split].append(image_id)
        if sha256.get(image_id):
            by_sha[sha256[image_id]][split].append(image_id)
    problems = [
        f"duplicate group {g} spans {_where(where)}"
        for g, where in sorted(by_group.items())
        if len(where) > 1
    ]
    problems += [
        f"identical images (sha256 {sha[:12]}) span {_where(where)}"
        for sha, where in sorted(by_sha.items())
        if len(where) > 1
    ]
    return problems


def _where(where: dict[str, list[int]]) -> str:
    """``train (images 1, 4) and test (image 7)``."""
    order = sorted(where, key=lambda s: (SPLITS.index(s) if s in SPLITS else len(SPLITS), s))
    return " and ".join(
        f"{s} (image{'s' if len(where[s]) > 1 else ''} {', '.join(map(str, where[s]))})"
        for s in order
    )
