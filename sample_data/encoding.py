"""The bytes of every file that is not a shipped PNG: near duplicates (JPEG re-encode on white,
resize, crop) and the few images saved in another format. Every Pillow encoder option is
explicit, so two runs with one Pillow give the same bytes.
"""

from __future__ import annotations

import io

from PIL import Image

from plan import CROP_PX

EXT = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}


def _rgba(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGBA")


def _on_white(img: Image.Image) -> Image.Image:
    bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
    bg.alpha_composite(img)
    return bg.convert("RGB")


def _save(img: Image.Image, fmt: str) -> bytes:
    """``img`` encoded as ``fmt`` with every option explicit."""
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
    """The format a near duplicate of ``kind`` is written in."""
    return "JPEG" if kind == "jpeg" else "PNG"
