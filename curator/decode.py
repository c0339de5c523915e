"""Reading any image Pillow can open as RGB pixels: the one decoder of import, training,
prediction and serving.

Every mode becomes RGB the same way: transparency is put on white (what a viewer sees), 16-bit
and 32-bit greyscale (``I;16``, ``I``) and float (``F``) pixels are scaled to 0-255 rather than
clipped, palettes, 1-bit, CMYK and LA are converted. Animated GIFs and multi-page TIFFs give
their first frame; EXIF rotation is applied. HEIC/HEIF is read when ``pillow-heif`` is
installed (registered on first use), AVIF when Pillow has its AVIF reader.

Decompression bombs are judged on the file's bytes, not on pixels alone (Pillow's own guard,
which refuses any image over 179 Mpx and warns over 89 Mpx, is turned off on first use):

- up to ``SAFE_PIXELS`` (89.5 Mpx, Pillow's own warning limit) an image is always read;
- above it, an image is read only when its file has at least one byte per
  ``MAX_PIXELS_PER_BYTE`` (100) pixels: a real photograph has one per 2 to 20 (a 108-Mpx
  JPEG of 19 MB: 5.7), a bomb one per thousands (400 Mpx of zeros in 50 KB: 8,000);
- above ``max_pixels`` (``MAX_PIXELS``, 250 Mpx, by default; ``curator import --max-pixels``)
  an image is refused whatever its size.

JPEGs are decoded at a fraction of their scale (``draft``) when a small size is asked for, so
a big photograph costs little memory.
"""

from __future__ import annotations

import importlib.util
import io
import os
from pathlib import Path
from typing import IO

from curator.errors import CuratorError

SAFE_PIXELS = 89_478_485  # Pillow's Image.MAX_IMAGE_PIXELS: always read up to here
MAX_PIXELS_PER_BYTE = 100  # above SAFE_PIXELS: a file sparser than this is a bomb
MAX_PIXELS = 250_000_000  # the hard limit by default (a 250-Mpx RGB image is 750 MB decoded)

BASE_FORMATS = {"JPEG": (".jpg", ".jpeg", ".jpe"), "MPO": (), "PNG": (".png",), "WEBP": (".webp",),
                "GIF": (".gif",), "BMP": (".bmp",), "DIB": (".dib",), "TIFF": (".tif", ".tiff")}
# Pillow's format -> (its name for people, suffixes, the module that reads it, how to get it).
OPTIONAL_FORMATS = {"HEIF": ("HEIC/HEIF", (".heic", ".heif"), "pillow_heif", "pip install pillow-heif"),
                    "AVIF": ("AVIF", (".avif",), "PIL._avif", "pip install 'pillow>=11.3'")}
FORMATS = set(BASE_FORMATS) | set(OPTIONAL_FORMATS)
IMAGE_SUFFIXES = {s for suffixes in BASE_FORMATS.values() for s in suffixes} | {
    s for _, suffixes, _, _ in OPTIONAL_FORMATS.values() for s in suffixes}
HIGH_DEPTH = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": None, "F": None}


class Unreadable(CuratorError):
    """A file that is not a usable image; the message is the reason (``not an image: ...``)."""


def available_formats() -> dict[str, bool]:
    """Whether each optional format (HEIF, AVIF) can be read here; looks, imports nothing."""
    return {name: _has_module(module) for name, (_, _, module, _) in OPTIONAL_FORMATS.items()}


def formats_line() -> str:
    """One sentence for help texts: what is read, and what is missing with its install hint."""
    have = available_formats()
    line = "Reads JPEG, PNG, WebP, GIF, BMP, TIFF"
    line += "".join(f", {OPTIONAL_FORMATS[name][0]}" for name, ok in have.items() if ok)
    missing = [f"{OPTIONAL_FORMATS[name][0]} ({OPTIONAL_FORMATS[name][3]})" for name, ok in have.items() if not ok]
    return line + (f"; not here: {', '.join(missing)}." if missing else ".")


def _has_module(name: str) -> bool:
    """Whether ``name`` can be imported; a submodule is looked for beside its package's files,
    so that ``curator --help`` never imports the package (PIL)."""
    parent, _, child = name.rpartition(".")
    try:
        spec = importlib.util.find_spec(parent or name)
    except (ImportError, ValueError):
        return False
    if spec is None or not parent:
        return spec is not None
    return any(any(Path(d).glob(f"{child}.*")) for d in spec.submodule_search_locations or ())


_ready = False


def _pil():
    """PIL.Image with curator's bomb rule in place of Pillow's and the optional readers registered."""
    global _ready
    from PIL import Image as PILImage

    if not _ready:
        PILImage.MAX_IMAGE_PIXELS = None  # check_size judges instead, knowing the file's bytes
        if _has_module("pillow_heif"):
            from pillow_heif import register_heif_opener

            register_heif_opener()
        _ready = True
    return PILImage


def check_size(width: int, height: int, nbytes: int, *, max_pixels: int | None = MAX_PIXELS) -> None:
    """Refuse a decompression bomb (see the module's rule); ``max_pixels=None``: no hard limit.

    Raises:
        Unreadable: ``decompression bomb: ...`` with the numbers and the fix.
    """
    pixels = width * height
    if max_pixels is not None and pixels > max_pixels:
        raise Unreadable(f"decompression bomb: {width}x{height} is {pixels:,} pixels, over the limit of"
                         f" {max_pixels:,}: raise it with --max-pixels if the image is real")
    if pixels > SAFE_PIXELS and pixels > MAX_PIXELS_PER_BYTE * max(nbytes, 1):
        raise Unreadable(f"decompression bomb: {width}x{height} is {pixels:,} pixels in {nbytes:,} bytes"
                         f" ({pixels // max(nbytes, 1):,} pixels a byte; a real image of over {SAFE_PIXELS:,}"
                         f" pixels has at most {MAX_PIXELS_PER_BYTE})")


def open_checked(source: str | os.PathLike | IO[bytes], *, nbytes: int | None = None,
                 max_pixels: int | None = MAX_PIXELS):
    """Open an image (header only) and check its size; the caller closes it.

    Raises:
        FileNotFoundError, PermissionError: ``source`` is a path that cannot be opened.
        Unreadable: not an image, or a decompression bomb.
    """
    PILImage = _pil()
    from PIL import UnidentifiedImageError

    try:
        img = PILImage.open(source)
    except UnidentifiedImageError:
        raise Unreadable("not an image: no image format recognises this file") from None
    except OSError as e:
        if isinstance(source, (str, os.PathLike)) and e.errno is not None:
            raise  # the file itself: missing, no permission
        raise Unreadable(f"corrupt: {first_line(e)}") from None
    except Exception as e:  # noqa: BLE001 - any decoder failure is the file's fault
        raise Unreadable(f"corrupt: {first_line(e)}") from None
    if nbytes is None:
        nbytes = _size_of(source)
    try:
        check_size(img.width, img.height, nbytes, max_pixels=max_pixels)
    except Unreadable:
        img.close()
        raise
    return img


def decoded(img, *, draft: int | None = None):
    """The opened image's first frame as RGB, EXIF-rotated and on white.

    Args:
        draft: a JPEG is decoded at the smallest fraction (1/2 to 1/8) still at least this big.

    Raises:
        Unreadable: ``corrupt or truncated: ...``.
    """
    from PIL import ImageOps

    try:
        if draft and img.format in ("JPEG", "MPO"):
            img.draft("RGB", (draft, draft))  # every byte is still decoded: truncation is caught
        img.load()
        return to_rgb(ImageOps.exif_transpose(img))
    except Unreadable:
        raise
    except Exception as e:  # noqa: BLE001 - truncated, corrupt, or a mode a decoder chokes on
        raise Unreadable(f"corrupt or truncated: {first_line(e)}") from None


def read_rgb(source: str | os.PathLike | IO[bytes], *, draft: int | None = None,
             max_pixels: int | None = MAX_PIXELS):
    """``open_checked`` then ``decoded``: a file or stream as an RGB PIL image."""
    with open_checked(source, max_pixels=max_pixels) as img:
        return decoded(img, draft=draft)


def to_rgb(img):
    """Any mode as RGB: transparency on white, high bit depths scaled to 0-255 (never clipped)."""
    if img.mode in HIGH_DEPTH:
        img = _scaled_to_l(img)
    return on_white(img).convert("RGB")


def on_white(img):
    """Transparent pixels hide arbitrary colours: use what a viewer sees, the image on white."""
    PILImage = _pil()
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        img = img.convert("RGBA")
        return PILImage.alpha_composite(PILImage.new("RGBA", img.size, (255, 255, 255, 255)), img)
    return img


def _scaled_to_l(img):
    """16-bit, 32-bit and float greyscale as 8-bit ``L``: by the mode's full range when it has one
    (I;16: 65535), else by the smallest of 1 (floats), 255 and 65535 that holds the values, else
    stretched from the lowest to the highest value."""
    import numpy as np

    a = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    full = HIGH_DEPTH[img.mode]
    if full is None:
        fits = [r for r in ((1.0,) if img.mode == "F" else ()) + (255.0, 65535.0) if low >= 0 and high <= r]
        full = fits[0] if fits else None
    if full is None:
        a, full = a - low, max(high - low, 1e-12)
    out = np.clip(np.rint(a * (255.0 / full)), 0, 255).astype(np.uint8)
    return _pil().fromarray(out, "L")


def _size_of(source) -> int:
    if isinstance(source, (str, os.PathLike)):
        return os.path.getsize(source)
    if isinstance(source, io.BytesIO):
        return source.getbuffer().nbytes
    return 0


def first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
