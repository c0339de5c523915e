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
import sys
import tempfile
from pathlib import Path

from emoji_packages import VENDORS, fetch_packages, load_sources, slug
from outputs import expected, write_all
from selection import build

# benchmarks/warm_start.py and benchmarks/real_images.py import this script as `build` and use
# these names from emoji_packages.py.
__all__ = ["VENDORS", "fetch_packages", "load_sources", "main", "slug"]


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, fetch the packages, build and write everything."""
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
