"""The two npm emoji packages (``emoji-datasource-google`` and ``-twitter``, pinned) and the
images they ship: fetching or finding them, and reading ``emoji.json`` into ``Src`` records.

``benchmarks/warm_start.py`` and ``benchmarks/real_images.py`` use ``fetch_packages``,
``load_sources``, ``slug`` and ``VENDORS`` (through ``build.py``) for their own emoji images.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

VENDORS = ("google", "twitter")
VERSION = "16.0.0"  # both packages, pinned
PACKAGE = "emoji-datasource-{vendor}"
SKIN_TONES = {"1F3FB": 2, "1F3FC": 3, "1F3FD": 4, "1F3FE": 5, "1F3FF": 6}


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
    """``text`` lower-cased, each run of other characters a hyphen: a file name part."""
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
    """The hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()
