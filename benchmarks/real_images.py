"""Real images for benchmarks: labelled sets, planted near duplicates and look-alikes that are not.

No test uses these and nobody here drew them. Five kinds (``KINDS``):

- ``views``: ``warm_start.py``'s generated "photos" of 50 real emoji drawings (Google's and
  Twitter's, npm fetches them the first time): 64 px JPEGs, one class per emoji, 40 classes of
  70 images and 10 of 55 (3,350).
- ``photos``: crops of the colour photos bundled with scikit-image and scikit-learn (astronaut,
  coffee, chelsea, rocket, both motorcycles, the Hubble deep field, a retina, IHC stain, the
  colour wheel; sklearn's china and flower): windows of 25-50% of the photo's short side that
  overlap one another by at most 30% (IoU), flat ones (grey std < 10) passed over; one class
  per photo. Different crops of one photo are different images.
- ``grey``: the same from scikit-image's grey photos (camera, moon, coins, cell, page, text,
  brick, grass, gravel, and the horse silhouette flattened on white).
- ``faces``: scikit-image's ``lfw_subset.npy``: 200 real 25x25 grey images, 100 faces and 100
  not faces (two classes), upscaled to 64 px.
- ``digits``: ``sklearn.datasets.load_digits()``: 1,797 real 8x8 handwritten digits, 10 classes
  of 174-183, dark ink on white, upscaled to 64 px.

Every set is seeded: the same ``seed`` writes the same pixels (``views`` is warm_start's one
fixed set whatever the seed).

Usage (benchmarks/ on sys.path, as the other benchmarks put it):

    from real_images import labelled_set, plant_duplicates, negative_pairs
    paths, classes = labelled_set("digits", Path("benchmarks/out/real"), seed=0)
    planted = plant_duplicates(paths, Path("benchmarks/out/real/planted"), seed=0, per_kind=20)
    negatives = negative_pairs("digits", Path("benchmarks/out/real"), seed=0)
"""

from __future__ import annotations

import collections
import io
import itertools
import random
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

HERE = Path(__file__).resolve().parent
KINDS = ("views", "photos", "grey", "faces", "digits")
# Planted near duplicates. Colour shifts are left out of grey originals (they would not change them).
TRANSFORMS = ("reencode", "resize", "crop", "brightness", "saturation", "hue")
COLOUR_ONLY = ("saturation", "hue")
COLOUR_PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png",
                 "motorcycle_right.png", "hubble_deep_field.jpg", "retina.jpg", "ihc.png", "color.png")
GREY_PHOTOS = ("camera.png", "moon.png", "coins.png", "cell.png", "page.png", "text.png",
               "brick.png", "grass.png", "gravel.png", "horse.png")
CROPS_PER_PHOTO = 40
SIDE = 64  # faces and digits are upscaled to this


def labelled_set(kind: str, folder: Path, seed: int = 0) -> tuple[list[Path], list[str]]:
    """Write the ``kind`` set under ``folder/kind/<class>/`` and return (paths, class names).

    Args:
        kind: one of ``KINDS``.
        folder: where to write; files already there are overwritten.
        seed: picks the crop windows (``photos``, ``grey``); the other sets do not depend on it.

    Returns:
        The image paths and, for each, its class name (same length, sorted by path).
    """
    if kind not in _MAKERS:
        raise ValueError(f"unknown kind {kind!r}: give one of {', '.join(KINDS)}")
    images = _MAKERS[kind](folder / kind, random.Random(f"real-images-{kind}-{seed}"))
    items = sorted(images)
    return [p for p, _ in items], [c for _, c in items]


def plant_duplicates(
    paths: list[Path], folder: Path, seed: int = 0, *, per_kind: int = 20,
    transforms: tuple[str, ...] = TRANSFORMS,
) -> list[tuple[Path, Path, str]]:
    """Near duplicates of ``per_kind`` originals per transform, written under ``folder/<transform>/``.

    Each original is used once in all (so no two planted copies of one original), colour shifts
    only on colour originals:

    - ``reencode``: JPEG at quality 60-90 (a PNG becomes a JPEG);
    - ``resize``: 80% of each side (Lanczos), in the original's format;
    - ``crop``: 3-5% off each side (each side its own share), not resized back;
    - ``brightness``: 5-10% brighter or darker; ``saturation``: 10-20% more or less;
      ``hue``: turned 5-10 degrees either way.

    Returns:
        (original path, copy path, transform) for each copy.
    """
    rng = random.Random(f"real-images-planted-{seed}")
    order = sorted(paths)
    rng.shuffle(order)
    colour = [p for p in order if not _is_grey(p)]
    used: set[Path] = set()
    out = []
    for t in transforms:
        pool = [p for p in (colour if t in COLOUR_ONLY else order) if p not in used][:per_kind]
        for k, original in enumerate(pool):
            used.add(original)
            out.append((original, _plant(original, folder / t, f"{k:04d}-{original.stem}", t, rng), t))
    return out


def negative_pairs(kind: str, folder: Path, seed: int = 0, *, limit: int = 20_000) -> list[tuple[Path, Path, str]]:
    """Distinct images that look alike and must not be grouped: (path, path, relation).

    - ``views``: ``skin-tone``: the same emoji by the same vendor in two skin tones, drawn into
      the same view (scale, turn, place, background), written under ``folder/skin-tones/``;
      and ``same-class``: two views of one emoji.
    - ``photos``, ``grey``: ``same-photo``: two crops of one photo (every such pair).
    - ``faces``: ``same-class``: two faces, or two non-faces.
    - ``digits``: ``same-digit``: two handwritten examples of one digit.

    Same-class pairs beyond ``limit`` per relation are sampled (seeded). The set is written
    with ``labelled_set(kind, folder, seed)`` first.
    """
    rng = random.Random(f"real-images-negatives-{kind}-{seed}")
    paths, classes = labelled_set(kind, folder, seed)
    relation = {"photos": "same-photo", "grey": "same-photo", "digits": "same-digit"}.get(kind, "same-class")
    by_class = collections.defaultdict(list)
    for p, c in zip(paths, classes):
        by_class[c].append(p)
    pairs = [(a, b, relation) for members in by_class.values() for a, b in itertools.combinations(members, 2)]
    if len(pairs) > limit:
        pairs = rng.sample(pairs, limit)
    if kind == "views":
        pairs += _skin_tone_pairs(folder / "skin-tones", rng)
    return pairs


# -- the sets --------------------------------------------------------------------------------


def _views(dest: Path, rng: random.Random) -> list[tuple[Path, str]]:
    views = _warm_start().make_views()  # made once, in benchmarks/out/views
    out = []
    for src in sorted(views.glob("*/*.jpg")):
        target = dest / src.parent.name / src.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        out.append((target, src.parent.name))
    return out


def _photo_crops(names: tuple[str, ...], grey: bool):
    def make(dest: Path, rng: random.Random) -> list[tuple[Path, str]]:
        out = []
        for name, img in _photos(names, grey):
            stem, fmt = name.rsplit(".", 1)[0], "JPEG" if name.endswith(".jpg") else "PNG"
            for k, box in enumerate(_windows(img, rng)):
                out.append((_save(img.crop(box), dest / stem / f"{stem}-{k:02d}", fmt), stem))
        return out
    return make


def _photos(names: tuple[str, ...], grey: bool):
    """(file name, PIL image) of each photo: RGB, or L for ``grey``; sklearn's two with the colour ones."""
    import skimage.data

    data = Path(skimage.data.__file__).parent
    for name in names:
        with Image.open(data / name) as img:
            if img.mode == "RGBA":  # the horse: a silhouette on transparency
                img = Image.alpha_composite(Image.new("RGBA", img.size, "white"), img)
            yield name, img.convert("L" if grey else "RGB")
    if not grey:
        from sklearn.datasets import load_sample_images

        sample = load_sample_images()
        for path, pixels in zip(sample.filenames, sample.images):
            yield Path(path).name, Image.fromarray(pixels)


def _windows(img: Image.Image, rng: random.Random) -> list[tuple[int, int, int, int]]:
    """Up to CROPS_PER_PHOTO crop boxes of 25-50% of the short side, overlapping at most 30%
    (IoU) with one another, none flat (grey std under 10)."""
    grey = np.asarray(img.convert("L"), dtype=np.float32)
    short, boxes = min(img.size), []
    for _ in range(40 * CROPS_PER_PHOTO):
        w = max(64, round(short * rng.uniform(0.25, 0.5)))
        h = min(img.height, max(64, round(w * rng.uniform(0.75, 1.33))))
        w = min(w, img.width)
        x, y = rng.randint(0, img.width - w), rng.randint(0, img.height - h)
        box = (x, y, x + w, y + h)
        if all(_iou(box, b) <= 0.3 for b in boxes) and grey[y:y + h, x:x + w].std() >= 10:
            boxes.append(box)
            if len(boxes) == CROPS_PER_PHOTO:
                break
    return boxes


def _iou(a, b) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    areas = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return w * h / (areas - w * h)


def _faces(dest: Path, rng: random.Random) -> list[tuple[Path, str]]:
    import skimage.data

    faces = np.load(Path(skimage.data.__file__).parent / "lfw_subset.npy")  # (200, 25, 25) in 0-1
    out = []
    for k, pixels in enumerate(faces):
        cls = "face" if k < 100 else "not-face"
        img = Image.fromarray(np.round(pixels * 255).astype(np.uint8)).resize((SIDE, SIDE), Image.BICUBIC)
        out.append((_save(img, dest / cls / f"{cls}-{k:03d}", "PNG"), cls))
    return out


def _digits(dest: Path, rng: random.Random) -> list[tuple[Path, str]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    out = []
    for k, (pixels, target) in enumerate(zip(digits.images, digits.target)):
        cls = str(int(target))
        ink = np.round(255 - pixels * 255 / 16).astype(np.uint8)  # 0-16 ink: dark on white paper
        img = Image.fromarray(ink).resize((SIDE, SIDE), Image.BICUBIC)
        out.append((_save(img, dest / cls / f"digit{cls}-{k:04d}", "PNG"), cls))
    return out


_MAKERS = {
    "views": _views,
    "photos": _photo_crops(COLOUR_PHOTOS, grey=False),
    "grey": _photo_crops(GREY_PHOTOS, grey=True),
    "faces": _faces,
    "digits": _digits,
}


# -- skin tones ------------------------------------------------------------------------------


def _skin_tone_pairs(dest: Path, rng: random.Random, emoji: int = 24) -> list[tuple[Path, Path, str]]:
    """``emoji`` emoji with skin tones, per vendor: every tone (base and 5) drawn into one view;
    each two tones of one view are a pair."""
    ws = _warm_start()
    ws.make_views()  # fetches the npm packages into benchmarks/out/npm
    sys.path.insert(0, str(ws.SAMPLE))
    import build as sample_build  # sample_data/build.py: reads the npm packages

    npm = ws.VIEWS.parent / "npm"
    sources, _ = sample_build.load_sources(sample_build.fetch_packages(npm, npm))
    tones = collections.defaultdict(list)
    for s in sources:
        tones[(s.base, s.vendor)].append(s)
    keys = sorted(k for k, v in tones.items() if len(v) >= 4)
    pairs = []
    for base, vendor in rng.sample(keys, min(emoji, len(keys))):
        state = rng.random()
        written = []
        for s in sorted(tones[(base, vendor)], key=lambda s: s.unified):
            drawing = Image.open(io.BytesIO(s.read())).convert("RGBA")
            view = ws._view(drawing, random.Random(state))  # the same view for every tone
            written.append(_save(view, dest / f"{sample_build.slug(s.short_name)}-{vendor}", "JPEG"))
        pairs += [(a, b, "skin-tone") for a, b in itertools.combinations(written, 2)]
    return pairs


def _warm_start():
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import warm_start  # imports torch: only when views are asked for

    return warm_start


# -- writing ---------------------------------------------------------------------------------


def _save(img: Image.Image, stem: Path, fmt: str, quality: int = 90) -> Path:
    stem.parent.mkdir(parents=True, exist_ok=True)
    path = stem.with_suffix(".jpg" if fmt == "JPEG" else ".png")
    if fmt == "JPEG":
        img.convert("RGB" if img.mode not in ("L", "RGB") else img.mode).save(path, "JPEG", quality=quality)
    else:
        img.save(path, "PNG")
    return path


def _is_grey(path: Path) -> bool:
    with Image.open(path) as img:
        if img.mode in ("L", "LA", "1"):
            return True
        px = np.asarray(img.convert("RGB"), dtype=np.int16)
    return bool(np.abs(px - px[..., :1]).max() <= 2)


def _plant(original: Path, folder: Path, name: str, transform: str, rng: random.Random) -> Path:
    with Image.open(original) as src:
        fmt, img = src.format, src.copy()
    if transform == "reencode":
        return _save(img, folder / name, "JPEG", quality=rng.randint(60, 90))
    if transform == "resize":
        img = img.resize((round(img.width * 0.8), round(img.height * 0.8)), Image.LANCZOS)
    elif transform == "crop":
        l, t, r, b = (rng.uniform(0.03, 0.05) for _ in range(4))
        img = img.crop((round(img.width * l), round(img.height * t),
                        round(img.width * (1 - r)), round(img.height * (1 - b))))
    elif transform == "brightness":
        img = ImageEnhance.Brightness(img).enhance(1 + rng.choice((-1, 1)) * rng.uniform(0.05, 0.10))
    elif transform == "saturation":
        img = ImageEnhance.Color(img).enhance(1 + rng.choice((-1, 1)) * rng.uniform(0.10, 0.20))
    elif transform == "hue":
        img = _turn_hue(img, rng.choice((-1, 1)) * rng.uniform(5, 10))
    else:
        raise ValueError(f"unknown transform {transform!r}: give one of {', '.join(TRANSFORMS)}")
    return _save(img, folder / name, fmt)


def _turn_hue(img: Image.Image, degrees: float) -> Image.Image:
    hsv = np.asarray(img.convert("RGB").convert("HSV"), dtype=np.int16).copy()
    hsv[..., 0] = (hsv[..., 0] + round(degrees * 256 / 360)) % 256
    return Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")


__all__ = ["KINDS", "TRANSFORMS", "labelled_set", "negative_pairs", "plant_duplicates"]
