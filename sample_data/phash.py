"""A 64-bit perceptual hash in pure Python, bit for bit what ``imagehash.phash`` computes, so
that the sample data's guarantees (planted near duplicates within ``NEAR_BITS``, no unplanted
look-alikes of different emoji) hold for the hash curator uses, without numpy or scipy here.
"""

from __future__ import annotations

import io
import math

from PIL import Image, ImageOps

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
    """The Hamming distance between two hashes."""
    return (a ^ b).bit_count()
