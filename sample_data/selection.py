"""Which shipped images become which files: ``build`` allocates every plan's images (``Chooser``
keeps unplanted look-alikes of different emoji out), swaps formats, plants the duplicates, names
the files and encodes their bytes, all in seeded order.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path

from emoji_packages import Src, load_sources
from encoding import EXT, dup_fmt, encode
from phash import bits, hashes
from plan import (FORMAT_SWAPS, LIBRARY_DUPLICATES, LIBRARY_PLANS, LOOKALIKE, NEAR_BITS, OTHER_PLANS,
                  POOL_DUPLICATES, RAW_GUARD, SEED, STAGED_ONLY, Plan)


@dataclass(eq=False)
class Item:
    """One file to write."""

    role: str  # library | unknown | staged | pool
    cls: str  # the folder's class ('' for unknown and pool)
    sub: str
    true_class: str
    true_sub: str
    src: Src
    fmt: str = "PNG"
    kind: str = ""  # duplicate kind: exact | jpeg | resize | crop
    dup_of: Item | None = None
    name: str = ""
    data: bytes = b""

    @property
    def folder(self) -> str:
        if self.role == "library":
            return "/".join(p for p in ("library", self.cls, self.sub) if p)
        if self.role == "unknown":
            return "library/unknown"
        if self.role == "staged":
            return f"staged/{self.cls}"
        return "pool"

    @property
    def path(self) -> str:
        return f"{self.folder}/{self.name}"

    @property
    def label(self) -> str:
        return "/".join(p for p in (self.cls, self.sub) if p)


class Chooser:
    """Picks images, keeping unplanted near-identical pairs out."""

    def __init__(self) -> None:
        self.taken: set[tuple[str, str]] = set()
        self.kept: list[tuple[tuple[int, int], str]] = []  # (pHashes, base emoji) of everything chosen
        self._hash: dict[tuple[str, str], tuple[int, int]] = {}
        self.skipped: list[str] = []

    def ok(self, s: Src) -> bool:
        key = (s.vendor, s.image)
        if key in self.taken:
            return False
        if key not in self._hash:
            self._hash[key] = hashes(s.read())
        h = self._hash[key]
        if not h[2]:  # a pHash another implementation might compute differently: leave it out
            self.skipped.append(s.source_image)
            self.taken.add(key)
            return False
        if any(bits(h[0], k[0]) <= NEAR_BITS or (RAW_GUARD and bits(h[1], k[1]) <= NEAR_BITS)
               for k, base in self.kept if base != s.base):
            self.skipped.append(s.source_image)
            self.taken.add(key)  # never reconsidered
            return False
        return True

    def take(self, s: Src) -> Src:
        self.taken.add((s.vendor, s.image))
        self.kept.append((self._hash[(s.vendor, s.image)], s.base))
        return s

    def pick(self, cands: list[Src], n: int, what: str) -> list[Src]:
        out = []
        for s in cands:
            if len(out) == n:
                break
            if self.ok(s):
                out.append(self.take(s))
        if len(out) < n:
            sys.exit(f"build.py: only {len(out)} of {n} images for {what} (skipped: {self.skipped})")
        return out


def candidates(plan: Plan, sources: list[Src]) -> list[Src]:
    """The images ``plan`` may draw from, in its own seeded order."""
    bases = {b for b, _ in plan.subclasses.values()} | ({plan.direct[0]} if plan.direct else set())
    out = [s for s in sources if s.subcategory in plan.subcategories and s.base_short not in plan.exclude
           and (not plan.only_bases or s.base in bases)]
    random.Random(f"{SEED}:{plan.name}").shuffle(out)
    return out


def allocate(plan: Plan, sources: list[Src], ch: Chooser, library_class: bool) -> list[Item]:
    """The items of one class: forced library images, sub-classes, the rest of the library, then
    staged, unknown and pool images, as many as ``plan`` asks for."""
    cands = candidates(plan, sources)
    items: list[Item] = []
    cls = plan.name

    def add(role: str, sub: str, picked: list[Src]) -> None:
        for s in picked:
            items.append(Item(role, cls if role in ("library", "staged") else "", sub if role == "library" else "",
                              cls, sub if role == "library" else "", s))

    forced = []
    for vendor, short in plan.force:
        s = next((s for s in cands if s.vendor == vendor and s.short_name == short), None)
        if s is None or not ch.ok(s):
            sys.exit(f"build.py: cannot force {vendor} {short} into {cls}")
        forced.append(ch.take(s))
    add("library", "", forced)
    for sub, (base, n) in plan.subclasses.items():
        add("library", sub, ch.pick([s for s in cands if s.base == base], n, f"{cls}/{sub}"))
    if plan.direct:
        base, n = plan.direct
        add("library", "", ch.pick([s for s in cands if s.base == base], n, f"{cls} (no sub-class)"))
    add("library", "", ch.pick(cands, plan.library - len(forced), cls) if plan.library else [])
    add("staged", "", ch.pick(cands, plan.staged, f"staged {cls}"))
    add("unknown", "", ch.pick(cands, plan.unknown, f"unknown {cls}"))
    bases = {b for b, _ in plan.subclasses.values()}  # held-out variants of a sub-class first
    pool = ch.pick(sorted(cands, key=lambda s: s.base not in bases), plan.pool, f"pool {cls}")
    if plan.subclasses:  # pool images of a sub-class's base keep it as their true sub-class
        by_base = {b: sub for sub, (b, _) in plan.subclasses.items()}
        for s in pool:
            items.append(Item("pool", "", "", cls, by_base.get(s.base, ""), s))
    else:
        add("pool", "", pool)
    if not library_class:
        assert not any(it.role == "library" for it in items)
    return items


def build(packages: dict[str, Path]) -> tuple[list[Item], dict]:
    """Every file to write, with its name and bytes, and what selection skipped (for
    ``expected.json``)."""
    sources, _ = load_sources(packages)
    ch = Chooser()
    items: list[Item] = []
    for plan in LIBRARY_PLANS:
        items += allocate(plan, sources, ch, True)
    items += allocate(STAGED_ONLY, sources, ch, False)
    items += allocate(LOOKALIKE, sources, ch, False)
    for plan in OTHER_PLANS:
        items += allocate(plan, sources, ch, False)

    forced = {(v, s) for p in LIBRARY_PLANS for v, s in p.force}
    used: set[int] = set()  # ids of items already altered or used as an original

    def free(role: str, folder_label: str, want: tuple[str, str] | None = None) -> list[Item]:
        cls, _, sub = folder_label.partition("/")
        out = [it for it in items if it.role == role and it.kind == "" and it.cls == cls and it.sub == sub
               and it.fmt == "PNG" and id(it) not in used]
        if role == "pool":
            out = [it for it in items if it.role == "pool" and it.kind == "" and it.true_class == cls
                   and it.fmt == "PNG" and id(it) not in used]
        if want:
            return [it for it in out if (it.src.vendor, it.src.short_name) == want]
        return [it for it in out if (it.src.vendor, it.src.base_short) not in forced]

    for role, cls, fmt in FORMAT_SWAPS:
        it = free(role, cls)[0]
        it.fmt = fmt
        used.add(id(it))

    def original_for(kind: str, cands: list[Item]) -> Item:
        """The first free original whose copy stays within NEAR_BITS of it (flattened pHash): a
        crop moves a 64 px drawing a lot, and JPEG upsets near-white flags."""
        if kind == "exact":
            return cands[0]
        for it in cands:
            a, b = hashes(it.src.read()), hashes(encode(it.src.read(), dup_fmt(kind), kind))
            if b[2] and bits(a[0], b[0]) <= NEAR_BITS:
                return it
        sys.exit(f"build.py: no original for a {kind} near duplicate stays within {NEAR_BITS} bits")

    dups: list[Item] = []
    for kind, origin, dest, want in LIBRARY_DUPLICATES:
        orig = original_for(kind, free("library", origin, want))
        used.add(id(orig))
        cls, _, sub = (dest or origin).partition("/")
        dups.append(Item("library", cls, sub, orig.true_class, orig.true_sub, orig.src, dup_fmt(kind), kind, orig))
    for kind, origin in POOL_DUPLICATES:
        if origin == "pool":
            orig = random.Random(f"{SEED}:pool-dup").choice(
                [it for it in items if it.role == "pool" and it.fmt == "PNG" and id(it) not in used])
        else:
            orig = original_for(kind, free("library", origin))
        used.add(id(orig))
        dups.append(Item("pool", "", "", orig.true_class, orig.true_sub, orig.src, dup_fmt(kind), kind, orig))
    items += dups

    # names
    for it in items:
        if it.role == "pool":
            continue
        ext = EXT[it.fmt]
        if it.kind == "exact":
            it.name = f"{it.src.stem}-copy.{ext}" if it.folder == it.dup_of.folder else f"{it.src.stem}.{ext}"
        elif it.kind.startswith("resize"):
            it.name = f"{it.src.stem}-{it.kind[6:]}px.{ext}"
        elif it.kind == "crop":
            it.name = f"{it.src.stem}-crop.{ext}"
        else:
            it.name = f"{it.src.stem}.{ext}"
    pool = [it for it in items if it.role == "pool"]
    random.Random(f"{SEED}:pool-order").shuffle(pool)
    for i, it in enumerate(pool, 1):
        it.name = f"pool-{i:04d}.{EXT[it.fmt]}"

    # bytes
    for it in items:  # originals come before their duplicates
        it.data = it.dup_of.data if it.kind == "exact" else encode(it.src.read(), it.fmt, it.kind)
    paths = [it.path for it in items]
    if len(set(paths)) != len(paths):
        sys.exit("build.py: two files with one path")
    return items, {"skipped_near_identical": sorted(ch.skipped)}
