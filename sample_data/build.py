#!/usr/bin/env python3
"""Rebuild curator's sample data set (``sample_data/``) from two npm emoji packages.

    python sample_data/build.py                  # runs `npm pack` itself, into a temp folder
    python sample_data/build.py --from DIR       # DIR already holds the packages (see below)
    python sample_data/build.py --out /tmp/sd    # write somewhere else (e.g. to diff two builds)

Needs Python 3.10+, Pillow, and either npm (to fetch the packages) or ``--from DIR``, where DIR
holds, per vendor, the tarball ``emoji-datasource-<vendor>-<version>.tgz`` or its unpacked
``package/`` folder as ``emoji-datasource-<vendor>/`` or ``<vendor>/package/``.

Design
------
The images are real emoji: Google's Noto Emoji (Apache-2.0) and Twitter's Twemoji (CC-BY-4.0),
64x64 RGBA PNGs, as shipped in ``emoji-datasource-google`` and ``emoji-datasource-twitter``
(pinned versions below). An emoji's Unicode sub-category (``animal-bird``, ``hand-fingers-open``)
is its class; the two vendors' drawings and the five skin-tone variants multiply the images per
emoji. Sub-classes are an emoji's base identity (``hand-fingers-open/waving-hand`` holds the
waving hand in six skin tones from both vendors). Classes were picked to look different from
each other at 64 px (hands, people, mammals, birds, flags, vehicles, fruit, drinks, smileys).

The shape exercises a per-class cutoff of 40 images and a throw-away cutoff of 35: four classes
at 40 or more, two at 35-39 (``animal-bird``, ``person``), three below 35. The pool holds more
images of the 35-39 classes (held-out vendors and skin tones of the same emoji, so a model
identifies them with high confidence) to lift them over 40, more images of every other class,
a few distractors, and a look-alike class the library does not have (``hand-fingers-partial``,
next to ``hand-fingers-open``). ``staged/sky-weather`` is a class made only of staged images.

Planted problems: exact duplicates (the same bytes at a second path, always in the same folder
or in the pool, never across two class folders) and near duplicates (JPEG re-encode on white,
resize to 96 or 48 px, a 2 px crop resized back), two of which sit in a different (sub-)class
folder than their original: label conflicts. Every planted pair is in ``manifest.csv``
(``duplicate_of``, ``duplicate_kind``) and ``expected.json``.

Unplanted look-alikes are kept out, so that a perceptual-hash duplicate finder has a clean job:
every planted near duplicate is within 8 bits of its original (64-bit pHash of the image with
alpha flattened on white; originals whose copy would land further are passed over), and a
candidate within 8 bits of an already chosen image of ANOTHER emoji is skipped (lemon and lime,
look-alike flags, a black bird beside a blue one), and so is an image whose pHash is a tie
(symmetric drawings: hearts, striped flags), where imagehash and this script could set a bit
differently. The pHash here is computed in pure Python and matches ``imagehash.phash``. Skin-tone variants of one
emoji (and its other vendor's drawing) stay although their grey pHashes are often 0-8 bits
apart: they are distinct images a colour-blind hash cannot separate, and ``expected.json``
lists every such pair (``phash.unplanted_pairs_flattened``).

Determinism: selection uses ``random.Random`` seeded with fixed strings; shipped PNGs are
copied byte for byte; everything Pillow writes uses explicit save options and carries no
timestamps; manifest and JSON are written in a fixed order. Two runs with the same packages
and the same Pillow give byte-identical output (a different Pillow/libjpeg/libwebp may encode
the few re-encoded files differently; ``expected.json`` counts do not depend on that).

Only the standard library and Pillow are used. Outputs (under ``--out``, default: this
script's folder): ``library/``, ``staged/``, ``pool/`` (replaced), ``manifest.csv``,
``expected.json``, ``README.md`` and ``LICENSES/emoji-datasource-MIT.txt``. Other files in
``LICENSES/`` (the Apache-2.0 and CC-BY-4.0 texts) are left alone.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps

SEED = "curator-sample-data-v1"
VENDORS = ("google", "twitter")
VERSION = "16.0.0"  # both packages, pinned
PACKAGE = "emoji-datasource-{vendor}"
CUTOFF = 40  # the per-class cutoff the sample exercises
THROWAWAY = 35  # below this a class is thrown away rather than topped up
NEAR_BITS = 8  # no two chosen images of different emoji are this close (pHash bits)
RAW_GUARD = False  # also keep apart by the raw (alpha-blind) pHash: costs too many images
CROP_PX = 2  # px cut from each side for a "crop" near duplicate
SKIN_TONES = {"1F3FB": 2, "1F3FC": 3, "1F3FD": 4, "1F3FE": 5, "1F3FF": 6}
ROLE_DIRS = ("library", "staged", "pool")


# -- what to build ------------------------------------------------------------------------------


@dataclass
class Plan:
    """How many images of one class go where. Library images are taken first, then staged,
    unknown and pool images from what is left (in a seeded random order)."""

    name: str
    subcategories: tuple[str, ...]
    library: int = 0  # flat class: images directly in library/<name>/
    subclasses: dict[str, tuple[str, int]] = field(default_factory=dict)  # sub -> (base, n)
    direct: tuple[str, int] | None = None  # (base, n) directly in the class folder
    staged: int = 0
    unknown: int = 0
    pool: int = 0
    exclude: tuple[str, ...] = ()  # short names left out (not the class's look)
    only_bases: bool = False  # draw everything from the sub-class bases only
    force: tuple[tuple[str, str], ...] = ()  # (vendor, short_name) that must be in library


NOT_VEHICLES = ("busstop", "motorway", "railway_track", "oil_drum", "fuelpump", "wheel", "station",
                "rotating_light", "traffic_light", "vertical_traffic_light", "octagonal_sign",
                "construction")

LIBRARY_PLANS = [
    Plan("hand-fingers-open", ("hand-fingers-open",), pool=20,
         subclasses={"waving-hand": ("1F44B", 12), "raised-hand": ("270B", 12),
                     "raised-back-of-hand": ("1F91A", 12), "vulcan-salute": ("1F596", 10)},
         direct=("1F590-FE0F", 3)),
    Plan("animal-mammal", ("animal-mammal",), library=48, unknown=2, pool=25, exclude=("feet",)),
    Plan("country-flag", ("country-flag",), library=44, unknown=2, pool=25),
    Plan("transport-ground", ("transport-ground",), library=42, unknown=2, pool=20,
         exclude=NOT_VEHICLES),
    Plan("animal-bird", ("animal-bird",), library=37, pool=5,
         force=(("google", "bird"), ("twitter", "penguin"))),
    Plan("person", ("person",), pool=10,
         subclasses={"baby": ("1F476", 9), "child": ("1F9D2", 9), "adult": ("1F9D1", 9),
                     "older-adult": ("1F9D3", 9)}),
    Plan("food-fruit", ("food-fruit",), library=27, staged=5, pool=6),
    Plan("drink", ("drink",), library=23, staged=2, pool=6),
    Plan("face-smiling", ("face-smiling",), library=19, pool=5),
]
STAGED_ONLY = Plan("sky-weather", ("sky & weather",), staged=44)
LOOKALIKE = Plan("hand-fingers-partial", ("hand-fingers-partial",), pool=45)
LOOKALIKE_OF = "hand-fingers-open"
OTHER_PLANS = [  # classes nobody has yet: some unknown images, some pool distractors
    Plan("plant-flower", ("plant-flower",), unknown=2, pool=3),
    Plan("musical-instrument", ("musical-instrument",), unknown=2, pool=3),
    Plan("sport", ("sport",), unknown=2, pool=4),
]

# (role, class) whose first free image is saved in another format, so every format appears.
FORMAT_SWAPS = [
    ("library", "animal-mammal", "WEBP"), ("pool", "animal-mammal", "WEBP"),
    ("library", "country-flag", "GIF"), ("staged", "sky-weather", "GIF"),
    ("library", "transport-ground", "BMP"), ("pool", "transport-ground", "BMP"),
    ("library", "drink", "TIFF"), ("staged", "sky-weather", "TIFF"),
]

# Planted duplicates in library/: (kind, original's folder, copy's folder or None = same,
# original's (vendor, short_name) or None = the next free one in seeded order).
LIBRARY_DUPLICATES = [
    ("exact", "hand-fingers-open/waving-hand", None, None),
    ("exact", "animal-mammal", None, None),
    ("exact", "country-flag", None, None),
    ("exact", "person/baby", None, None),
    ("exact", "drink", None, None),
    ("jpeg", "hand-fingers-open/waving-hand", None, None),
    ("resize96", "hand-fingers-open/raised-hand", None, None),
    ("crop", "hand-fingers-open/raised-hand", "hand-fingers-open/waving-hand", None),  # sub-class conflict
    ("jpeg", "animal-mammal", None, None),
    ("crop", "animal-mammal", None, None),
    ("jpeg", "animal-bird", "animal-mammal", ("twitter", "penguin")),  # class conflict
    ("crop", "animal-bird", None, None),
    ("resize48", "country-flag", None, None),
    ("jpeg", "country-flag", None, None),
    ("resize96", "transport-ground", None, None),
    ("crop", "transport-ground", None, None),
    ("resize48", "person/older-adult", None, None),
    ("crop", "food-fruit", None, None),
    ("jpeg", "face-smiling", None, None),
]
# Planted duplicates in pool/: (kind, where the original is: a library folder, or "pool").
POOL_DUPLICATES = [
    ("exact", "country-flag"),
    ("exact", "hand-fingers-open/raised-back-of-hand"),
    ("exact", "pool"),
    ("jpeg", "transport-ground"),
    ("resize96", "animal-mammal"),
    ("crop", "drink"),
]

EXT = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}
MANIFEST_COLUMNS = ["path", "role", "class", "subclass", "true_class", "vendor", "unified",
                    "short_name", "source_image", "duplicate_of", "duplicate_kind", "format",
                    "true_subclass", "sha256"]


# -- the packages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Src:
    """One shipped image."""

    vendor: str
    unified: str  # of this image (with the skin tone)
    base: str  # unified of the base emoji
    short_name: str  # base short name, plus ::skin-tone-N for a variant
    base_short: str
    subcategory: str
    image: str  # file name in img/<vendor>/64/
    package_dir: Path = field(compare=False, hash=False)

    @property
    def source_image(self) -> str:
        return f"{PACKAGE.format(vendor=self.vendor)}@{VERSION}/img/{self.vendor}/64/{self.image}"

    @property
    def stem(self) -> str:
        return f"{slug(self.base_short)}-{self.image.rsplit('.', 1)[0]}-{self.vendor}"

    def read(self) -> bytes:
        return (self.package_dir / "img" / self.vendor / "64" / self.image).read_bytes()


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def fetch_packages(src: Path | None, work: Path) -> dict[str, Path]:
    """The unpacked package folder (holding package.json) per vendor."""
    found: dict[str, Path] = {}
    for vendor in VENDORS:
        name = PACKAGE.format(vendor=vendor)
        tgz_name = f"{name}-{VERSION}.tgz"
        pkg = None
        if src is not None:
            for cand in (src / name, src / vendor / "package", src / name / "package"):
                if (cand / "package.json").is_file():
                    pkg = cand
                    break
            tgz = src / tgz_name
        else:
            print(f"npm pack {name}@{VERSION}", file=sys.stderr)
            subprocess.run(["npm", "pack", f"{name}@{VERSION}", "--silent"], cwd=work, check=True,
                           stdout=subprocess.DEVNULL)
            tgz = work / tgz_name
        if pkg is None:
            if not tgz.is_file():
                sys.exit(f"build.py: no {name} package (folder or {tgz_name}) in {src or work}")
            dest = work / vendor
            with tarfile.open(tgz) as tar:
                members = [m for m in tar.getmembers() if m.isfile() and (
                    m.name in ("package/package.json", "package/emoji.json", "package/LICENSE")
                    or m.name.startswith(f"package/img/{vendor}/64/"))]
                if sys.version_info >= (3, 12):
                    tar.extractall(dest, members=members, filter="data")
                else:
                    tar.extractall(dest, members=members)  # noqa: S202 - names filtered above
            pkg = dest / "package"
        version = json.loads((pkg / "package.json").read_text())["version"]
        if version != VERSION:
            sys.exit(f"build.py: {name} is {version}, this script is pinned to {VERSION}")
        found[vendor] = pkg
    return found


def load_sources(packages: dict[str, Path]) -> tuple[list[Src], set[str]]:
    """Every single-tone RGBA image of both vendors, minus images whose bytes the package ships
    under two names (some flags share a drawing). Returns (sources, their sha256s)."""
    sources: list[Src] = []
    for vendor, pkg in packages.items():
        flag = f"has_img_{vendor}"
        for e in json.loads((pkg / "emoji.json").read_text()):
            variants = [(e["unified"], e["image"], e["short_name"], e.get(flag))]
            for tone, v in sorted((e.get("skin_variations") or {}).items()):
                if tone in SKIN_TONES:
                    variants.append((v["unified"], v["image"],
                                     f"{e['short_name']}::skin-tone-{SKIN_TONES[tone]}", v.get(flag)))
            for unified, image, short, has in variants:
                if has and (pkg / "img" / vendor / "64" / image).is_file():
                    sources.append(Src(vendor, unified, e["unified"], short, e["short_name"],
                                       e["subcategory"], image, pkg))
    # a few shipped PNGs are palette or grey+alpha images: keep to RGBA ones
    sources = [s for s in sources if Image.open(io.BytesIO(s.read())).mode == "RGBA"]
    by_sha: dict[str, list[Src]] = {}
    for s in sources:
        by_sha.setdefault(sha256(s.read()), []).append(s)
    unique = sorted((v[0] for v in by_sha.values() if len(v) == 1), key=lambda s: (s.vendor, s.image))
    return unique, {k for k, v in by_sha.items() if len(v) == 1}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- pHash (imagehash.phash compatible, pure Python) --------------------------------------------

_COS = [[math.cos(math.pi * k * (2 * n + 1) / 64) for n in range(32)] for k in range(8)]


def phash(img: Image.Image, flatten: bool) -> tuple[int, bool]:
    """64-bit pHash as ``imagehash.phash`` computes it (32x32 LANCZOS grey, 8x8 DCT-II low
    frequencies, bit = above the median), first bit most significant. ``flatten`` composites
    alpha onto white first; without it the grey conversion keeps whatever colour transparent
    pixels hold, which is what ``curator import`` hashes today.

    Returns (hash, stable): stable is False when a coefficient lies within rounding error of the
    median (symmetric drawings: striped flags, hearts), where imagehash's FFT and this sum may
    set a bit differently."""
    if flatten:
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        bg.alpha_composite(rgba)
        img = bg
    grey = img.convert("L").resize((32, 32), Image.Resampling.LANCZOS)
    px = list(grey.tobytes())
    rows = [px[i * 32:(i + 1) * 32] for i in range(32)]
    # DCT along axis 0 (down the columns), then axis 1; only the 8x8 low frequencies.
    col = [[sum(_COS[k][n] * rows[n][m] for n in range(32)) for m in range(32)] for k in range(8)]
    low = [sum(_COS[l][m] * col[k][m] for m in range(32)) for k in range(8) for l in range(8)]
    srt = sorted(low)
    med = (srt[31] + srt[32]) / 2
    value = 0
    for v in low:
        value = (value << 1) | (v > med)
    scale = max(abs(v) for v in low) + 1.0
    return value, min(abs(v - med) for v in low) > 1e-9 * scale


def hashes(data: bytes) -> tuple[int, int, bool]:
    """(flattened, raw, both stable) pHash of encoded image bytes."""
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    (flat, s1), (raw, s2) = phash(img, True), phash(img, False)
    return flat, raw, s1 and s2


def bits(a: int, b: int) -> int:
    return (a ^ b).bit_count()


# -- encoding ------------------------------------------------------------------------------------


def _rgba(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGBA")


def _on_white(img: Image.Image) -> Image.Image:
    bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
    bg.alpha_composite(img)
    return bg.convert("RGB")


def _save(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "PNG":
        img.save(buf, "PNG", optimize=False, compress_level=9)
    elif fmt == "JPEG":
        img.save(buf, "JPEG", quality=85, optimize=False, progressive=False, subsampling=2)
    elif fmt == "WEBP":
        img.save(buf, "WEBP", lossless=True, quality=100, method=6, exact=False)
    elif fmt == "GIF":
        img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            buf, "GIF", optimize=False)
    elif fmt == "BMP":
        img.save(buf, "BMP")
    elif fmt == "TIFF":
        img.save(buf, "TIFF", compression="tiff_lzw")
    else:
        raise ValueError(fmt)
    return buf.getvalue()


def encode(original: bytes, fmt: str, kind: str) -> bytes:
    """The bytes of a file made from a shipped PNG: ``kind`` is a near-duplicate transform
    ('' for none), ``fmt`` the format to write."""
    if kind == "" and fmt == "PNG":
        return original
    img = _rgba(original)
    if kind.startswith("resize"):
        side = int(kind[len("resize"):])
        img = img.resize((side, side), Image.Resampling.LANCZOS)
    elif kind == "crop":
        w, h = img.size
        img = img.crop((CROP_PX, CROP_PX, w - CROP_PX, h - CROP_PX)).resize((w, h), Image.Resampling.LANCZOS)
    elif kind not in ("", "jpeg"):
        raise ValueError(kind)
    if fmt in ("JPEG", "GIF", "BMP"):
        img = _on_white(img)  # no alpha in these (GIF: a palette image, on white)
    return _save(img, fmt)


def dup_fmt(kind: str) -> str:
    return "JPEG" if kind == "jpeg" else "PNG"


# -- selection ------------------------------------------------------------------------------------


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
    bases = {b for b, _ in plan.subclasses.values()} | ({plan.direct[0]} if plan.direct else set())
    out = [s for s in sources if s.subcategory in plan.subcategories and s.base_short not in plan.exclude
           and (not plan.only_bases or s.base in bases)]
    random.Random(f"{SEED}:{plan.name}").shuffle(out)
    return out


def allocate(plan: Plan, sources: list[Src], ch: Chooser, library_class: bool) -> list[Item]:
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


# -- outputs --------------------------------------------------------------------------------------


def kind_name(kind: str) -> str:
    return "resize" if kind.startswith("resize") else kind


def manifest_rows(items: list[Item]) -> list[dict]:
    rows = []
    for it in sorted(items, key=lambda i: i.path):
        rows.append({
            "path": it.path, "role": it.role, "class": it.cls, "subclass": it.sub,
            "true_class": it.true_class, "vendor": it.src.vendor, "unified": it.src.unified,
            "short_name": it.src.short_name, "source_image": it.src.source_image,
            "duplicate_of": it.dup_of.path if it.dup_of else "", "duplicate_kind": kind_name(it.kind),
            "format": it.fmt, "true_subclass": it.true_sub, "sha256": sha256(it.data),
        })
    return rows


def expected(items: list[Item], extra: dict) -> dict:
    lib = [it for it in items if it.role == "library"]
    libfiles = [it for it in items if it.role in ("library", "unknown")]
    sha = {id(it): sha256(it.data) for it in items}

    def distinct(its) -> int:
        return len({sha[id(i)] for i in its})

    classes: dict[str, dict] = {}
    for c in sorted({it.cls for it in lib}):
        its = [it for it in lib if it.cls == c]
        entry = {"images": distinct(its), "files": len(its),
                 "usable": distinct([i for i in its if i.dup_of is None])}
        subs = sorted({it.sub for it in its if it.sub})
        if subs:
            entry["subclasses"] = {s: distinct([i for i in its if i.sub == s]) for s in subs}
            entry["no_subclass"] = distinct([i for i in its if not i.sub])
        classes[c] = entry
    # a byte string in two class folders would be one image with the first label: not planted
    owners: dict[str, set[str]] = {}
    for it in lib:
        owners.setdefault(sha[id(it)], set()).add(it.cls)
    assert all(len(v) == 1 for v in owners.values()), "exact duplicate across class folders"

    usable = {c: e["usable"] for c, e in classes.items()}
    pool = [it for it in items if it.role == "pool"]
    known = {sha[id(it)] for it in items if it.role in ("library", "unknown", "staged")}
    pool_by_class: dict[str, int] = {}
    for it in pool:
        if it.dup_of is None:
            pool_by_class[it.true_class] = pool_by_class.get(it.true_class, 0) + 1
    staged: dict[str, int] = {}
    for it in items:
        if it.role == "staged":
            staged[it.cls] = staged.get(it.cls, 0) + 1
    dups = [it for it in items if it.dup_of is not None]
    exact = [[d.dup_of.path, d.path] for d in sorted(dups, key=lambda d: d.path) if d.kind == "exact"]
    near = [[d.dup_of.path, d.path, kind_name(d.kind)] for d in sorted(dups, key=lambda d: d.path)
            if d.kind != "exact"]
    conflicts = sorted(d.path for d in dups if d.role == "library" and d.label != d.dup_of.label)

    # pHash distances: planted pairs, and every unplanted pair of distinct images as close
    h = {id(it): hashes(it.data) for it in items}
    planted = []
    for d in sorted(dups, key=lambda d: d.path):
        a, b = h[id(d.dup_of)], h[id(d)]
        planted.append({"original": d.dup_of.path, "duplicate": d.path, "kind": kind_name(d.kind),
                        "flattened": bits(a[0], b[0]), "raw": bits(a[1], b[1])})
    assert all(v[2] for v in h.values()), "an unstable pHash slipped in"
    originals = sorted((it for it in items if it.dup_of is None), key=lambda i: i.path)
    unplanted: dict[str, list] = {"flattened": [], "raw": []}
    for m, key in ((0, "flattened"), (1, "raw")):
        for i, a in enumerate(originals):
            for b in originals[i + 1:]:
                d = bits(h[id(a)][m], h[id(b)][m])
                if d <= NEAR_BITS:
                    unplanted[key].append([a.path, b.path, d, a.src.base == b.src.base])
    phash_summary = {
        "method": "imagehash.phash: 32x32 LANCZOS grey, 8x8 DCT-II, bit = above the median. "
                  "'flattened' composites alpha on white first; 'raw' converts RGBA to grey directly, "
                  "as curator import hashes today, so colours hidden under transparent pixels count.",
        "threshold_bits": NEAR_BITS,
        "planted_max_flattened": max(p["flattened"] for p in planted),
        "planted_max_raw": max(p["raw"] for p in planted),
        "planted_pairs": planted,
        "unplanted_within_threshold": {
            k: {"pairs": len(v), "same_emoji": sum(1 for p in v if p[3]),
                "other_emoji": [p[:3] for p in v if not p[3]]} for k, v in unplanted.items()},
        "unplanted_pairs_flattened": [p[:3] for p in unplanted["flattened"]],
        "selection_skipped": extra["skipped_near_identical"],
    }
    assert phash_summary["planted_max_flattened"] <= NEAR_BITS
    assert not phash_summary["unplanted_within_threshold"]["flattened"]["other_emoji"]

    near_cut = sorted(c for c, n in usable.items() if THROWAWAY <= n < CUTOFF)
    return {
        "cutoff": CUTOFF,
        "throwaway_cutoff": THROWAWAY,
        "packages": {PACKAGE.format(vendor=v): VERSION for v in VENDORS},
        "library_files": len(libfiles),
        "library_distinct_bytes": distinct(libfiles),
        "labelled_files": len(lib),
        "labelled_distinct_bytes": distinct(lib),
        "classes": classes,
        "usable": usable,
        "unknown": distinct([it for it in items if it.role == "unknown"]),
        "staged": dict(sorted(staged.items())),
        "staged_only_classes": sorted(set(staged) - set(classes)),
        "pool": {"files": len(pool), "distinct_bytes": distinct(pool),
                 "new_distinct_bytes": len({sha[id(it)] for it in pool} - known),
                 "by_true_class": dict(sorted(pool_by_class.items())),
                 "planted_duplicates": len([d for d in dups if d.role == "pool"])},
        "exact_duplicate_pairs": exact,
        "near_duplicate_pairs": near,
        "label_conflicts": conflicts,
        "label_conflict_details": [
            {"path": d.path, "folder_label": d.label, "true_label": d.dup_of.label,
             "original": d.dup_of.path, "kind": kind_name(d.kind)}
            for d in sorted(dups, key=lambda d: d.path) if d.role == "library" and d.label != d.dup_of.label],
        "lookalike_class": {"pool_class": LOOKALIKE.name, "resembles": LOOKALIKE_OF,
                            "pool_images": pool_by_class.get(LOOKALIKE.name, 0)},
        "near_cutoff_classes": near_cut,
        "above_cutoff_classes": sorted(c for c, n in usable.items() if n >= CUTOFF),
        "below_throwaway_classes": sorted(c for c, n in usable.items() if n < THROWAWAY),
        "formats": count_formats(items),
        "phash": phash_summary,
        "notes": [
            "Counts under 'classes' are what an importer that collapses identical bytes reports: "
            "'images' = distinct sha256 among the files in the class folder (sub-folders included); "
            "'files' = files; 'subclasses' and 'no_subclass' the same per sub-folder.",
            "'usable' = distinct images after also collapsing every planted near duplicate onto its "
            "original: the files in the folder whose manifest duplicate_of is empty.",
            "Exact duplicates are planted only within one folder or in pool/, never across two "
            "class folders, so every byte string has one folder label and no exact-duplicate "
            "label conflict arises (an importer keeps the first path's label and records the "
            "second path as another location).",
            "Label conflicts are near duplicates in another folder than their original: counted as "
            "an image of the folder they sit in under 'images', not counted under 'usable' "
            "(their original is counted in its own class).",
            "Pairs are [original, duplicate(, kind)]. library_files counts library/unknown too; "
            "labelled_* leave it out.",
            "pool.by_true_class counts pool originals (planted pool duplicates left out); "
            "pool.new_distinct_bytes = pool images whose bytes are not already under library/ or staged/.",
        ],
    }


def count_formats(items: list[Item]) -> dict[str, int]:
    out: dict[str, int] = {}
    for it in items:
        out[it.fmt] = out.get(it.fmt, 0) + 1
    return dict(sorted(out.items()))


def write_readme(out: Path, exp: dict, items: list[Item]) -> None:
    staged, pool = exp["staged"], exp["pool"]["by_true_class"]
    rows = []
    for c, e in exp["classes"].items():
        subs = ", ".join(f"`{s}` {n}" for s, n in e.get("subclasses", {}).items())
        if e.get("subclasses") and e.get("no_subclass"):
            subs += f", (none) {e['no_subclass']}"
        mark = "at/above" if e["usable"] >= CUTOFF else "near" if e["usable"] >= THROWAWAY else "below"
        rows.append(f"| `{c}` | {subs or '-'} | {e['files']} | {e['images']} | {e['usable']} | {mark} | "
                    f"{staged.get(c, 0)} | {pool.get(c, 0)} |")
    for c in exp["staged_only_classes"]:
        rows.append(f"| `{c}` (staged only) | - | 0 | 0 | 0 | - | {staged[c]} | {pool.get(c, 0)} |")
    lk = exp["lookalike_class"]
    rows.append(f"| `{lk['pool_class']}` (pool only; looks like `{lk['resembles']}`) | - | 0 | 0 | 0 | - | 0 | "
                f"{lk['pool_images']} |")
    others = sorted(c for c in pool if c not in exp["classes"] and c != lk["pool_class"] and c not in staged)
    rows.append(f"| distractors ({', '.join(f'`{c}`' for c in others)}) | - | 0 | 0 | 0 | - | 0 | "
                f"{sum(pool[c] for c in others)} |")
    unknown_true = sorted({it.true_class for it in items if it.role == "unknown"})
    dup_rows = [f"| `{p[1]}` | exact | `{p[0]}` |" for p in exp["exact_duplicate_pairs"]]
    dup_rows += [f"| `{p[1]}` | {p[2]} | `{p[0]}` |" for p in exp["near_duplicate_pairs"]]
    ph = exp["phash"]
    unpl = ph["unplanted_within_threshold"]
    fmts = ", ".join(f"{k} {v}" for k, v in exp["formats"].items())
    n_staged = sum(staged.values())
    text = f"""# sample_data/

Generated by `python sample_data/build.py`; do not edit by hand (change the script, rebuild).
The small real-image data set that `curator demo` and the tests run on: {exp['library_files']}
files under `library/`, {n_staged} under `staged/`, {exp['pool']['files']} in `pool/`
({fmts}).

## Provenance

64x64 emoji images and their metadata (`emoji.json`) from two npm packages of Cal Henderson's
[emoji-data](https://github.com/iamcal/emoji-data) project, pinned to one version:

| npm package | version | images | image licence |
| --- | --- | --- | --- |
| `emoji-datasource-google` | {VERSION} | Google [Noto Emoji](https://github.com/googlefonts/noto-emoji) (v2.048) | Apache-2.0 |
| `emoji-datasource-twitter` | {VERSION} | [Twemoji](https://github.com/jdecked/twemoji) (v16.0.1, the jdecked fork) | CC-BY-4.0 |

`manifest.csv` names each file's package image (`source_image`), `vendor`, `unified` code
points and `short_name`. Most files are the shipped PNG bytes, unchanged; the planted near
duplicates and the few WebP, GIF, BMP and TIFF files were re-encoded by `build.py` with Pillow.

## Licences

- **Noto Emoji images** (`vendor` = `google`): Copyright Google Inc., licensed under the
  Apache License, Version 2.0 (`LICENSES/Apache-2.0.txt`). Noto's flag images come from its
  `third_party/region-flags` set, which the Noto project describes as public domain or
  otherwise exempt from copyright.
- **Twemoji images** (`vendor` = `twitter`): Twemoji graphics by Twitter, Inc and other
  contributors, licensed under CC-BY 4.0 (https://creativecommons.org/licenses/by/4.0/,
  `LICENSES/CC-BY-4.0.txt`). Changes made here: some images were re-encoded (JPEG, WebP, GIF,
  BMP, TIFF), resized or cropped, as `manifest.csv` records per file.
- The emoji-data packages (metadata and code) are MIT-licensed, Copyright (c) 2013 Cal
  Henderson: `LICENSES/emoji-datasource-MIT.txt` is the `LICENSE` file both packages ship, the
  only licence text in them. The Apache-2.0 and CC-BY-4.0 texts in `LICENSES/` are taken from
  the npm package `spdx-license-list` 6.12.0 (itself CC0-1.0).

## Layout

```
library/<class>/<file>               labelled     curator import sample_data/library --labels-from-folders
library/<class>/<subclass>/<file>    labelled, with a sub-class
library/unknown/<file>               good images whose class nobody knows yet ({exp['unknown']})
staged/<class>/<file>                staged       curator import sample_data/staged --labels-from-folders --staged
pool/pool-NNNN.<ext>                 unlabelled   curator import sample_data/pool  (names do not reveal the class)
manifest.csv                         one row per file: role, folder label, true class, source, duplicate_of
expected.json                        the figures tests assert: counts, duplicate pairs, conflicts, pHash distances
build.py                             rebuilds all of the above from the npm packages
LICENSES/                            licence texts
```

Outside the pool, files are named `<short-name>-<code points>-<vendor>.<ext>`, e.g.
`library/animal-bird/bird-1f426-google.png`; a skin-tone variant carries the tone's code point
(`wave-1f44b-1f3fd-twitter.png`). Classes are emoji sub-categories; sub-classes are the base
emoji, each in up to six skin tones from both vendors.

## Classes

Cutoff {CUTOFF} images per class; classes under {THROWAWAY} are candidates to throw away.
*files*: files in the class folder (sub-folders included). *images*: distinct bytes, what the
importer reports. *usable*: distinct images once planted near duplicates are also collapsed
onto their originals, what a per-class cutoff counts. *pool*: pool images whose true class this
is (planted pool duplicates not counted).

| class | sub-classes (images) | files | images | usable | vs {CUTOFF} | staged | pool |
| --- | --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(rows)}

`library/unknown/` holds {exp['unknown']} images; their true classes
({', '.join(f'`{c}`' for c in unknown_true)}) are in `manifest.csv` (`true_class`).

## What is planted, and why

- **Classes around the cutoff.** {', '.join(f'`{c}`' for c in exp['above_cutoff_classes'])} have
  {CUTOFF} or more usable images; {', '.join(f'`{c}`' for c in exp['near_cutoff_classes'])} have
  {THROWAWAY}-{CUTOFF - 1}, and the pool holds enough more of each (other skin tones and vendors of
  the same emoji first) to lift them over {CUTOFF} once identified;
  {', '.join(f'`{c}`' for c in exp['below_throwaway_classes'])} stay under {THROWAWAY}.
- **Sub-classes.** `hand-fingers-open` (four hands, plus a few images straight in the class
  folder) and `person` (baby, child, adult, older adult).
- **Staged images.** `{', '.join(exp['staged_only_classes'])}` exists only as staged images; a few
  staged images of {', '.join(f'`{c}`' for c in staged if c in exp['classes'])} sit beside real ones.
- **A look-alike class in the pool.** `{lk['pool_class']}` ({lk['pool_images']} images) is not in the
  library and looks like `{lk['resembles']}`: a model trained on the library will call them
  `{lk['resembles']}`; curation should notice and create the class.
- **Duplicates.** {len(exp['exact_duplicate_pairs'])} exact (the same bytes at a second path: same
  folder, or in the pool) and {len(exp['near_duplicate_pairs'])} near (JPEG quality 85 on white;
  resized to 96 or 48 px; {CROP_PX} px cut from each side and resized back). Label conflicts, near
  duplicates in another (sub-)class folder than their original:
  {', '.join(f'`{p}`' for p in exp['label_conflicts'])}. No exact duplicate spans two class
  folders (the importer would keep the first path's label). Apart from the planted ones,
  nothing in `pool/` or `staged/` has the bytes of a library image.

| duplicate | kind | original |
| --- | --- | --- |
{chr(10).join(dup_rows)}

## Perceptual hashes (read before writing a duplicate finder)

`expected.json` → `phash` has each planted pair's pHash distance computed two ways. With alpha
flattened on white, every planted near duplicate is within {ph['threshold_bits']} bits of its original
(at most {ph['planted_max_flattened']}), and no two unplanted images of *different* emoji are that close
(build.py skips such candidates). But {unpl['flattened']['pairs']} unplanted pairs are within
{ph['threshold_bits']} bits too, all of them the same emoji in another skin tone or by the other vendor:
a grey pHash cannot see skin colour (listed in `phash.unplanted_pairs_flattened`). Hashing the
RGBA image straight to grey, as `curator import` stores pHashes today, reads the colours hidden
under transparent pixels: planted pairs then land up to {ph['planted_max_raw']} bits apart.

## Rebuild

```bash
python sample_data/build.py                  # npm pack both packages into a temp folder
python sample_data/build.py --from DIR       # DIR holds the .tgz files or unpacked packages
python sample_data/build.py --out /tmp/sd    # build elsewhere, e.g. to diff two builds
```

Needs Python 3.10+ and Pillow (`.venv/bin/python` has it). Selection is seeded, shipped PNGs
are copied byte for byte and every encoder option is explicit, so two runs give byte-identical
output with the same Pillow build.
"""
    (out / "README.md").write_text(text)


def write_all(out: Path, items: list[Item], exp: dict, packages: dict[str, Path]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for d in ROLE_DIRS:
        shutil.rmtree(out / d, ignore_errors=True)
    for it in sorted(items, key=lambda i: i.path):
        p = out / it.path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(it.data)
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(manifest_rows(items))
    (out / "expected.json").write_text(json.dumps(exp, indent=2) + "\n")
    (out / "LICENSES").mkdir(exist_ok=True)
    lic = {v: (packages[v] / "LICENSE").read_bytes() for v in VENDORS}
    assert lic["google"] == lic["twitter"]
    (out / "LICENSES" / "emoji-datasource-MIT.txt").write_bytes(lic["google"])
    write_readme(out, exp, items)
    # check: the folders hold exactly the manifest's files, with its bytes
    on_disk = sorted(str(p.relative_to(out)) for d in ROLE_DIRS for p in (out / d).rglob("*") if p.is_file())
    assert on_disk == sorted(it.path for it in items), "files on disk differ from the manifest"
    for it in items:
        assert sha256((out / it.path).read_bytes()) == sha256(it.data)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="src", type=Path, help="folder already holding the two packages")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                    help="where to write (default: this script's folder)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="curator-sample-") as tmp:
        packages = fetch_packages(args.src, Path(tmp))
        items, extra = build(packages)
        exp = expected(items, extra)
        write_all(args.out, items, exp, packages)
    size = sum(len(it.data) for it in items)
    print(f"wrote {len(items)} files ({size / 1e6:.1f} MB) to {args.out}", file=sys.stderr)
    for c, e in exp["classes"].items():
        print(f"  {c:20} images {e['images']:3}  usable {e['usable']:3}  "
              f"pool {exp['pool']['by_true_class'].get(c, 0)}", file=sys.stderr)


if __name__ == "__main__":
    main()
