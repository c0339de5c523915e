"""Reading one image file as an import does, and the worker processes that read many at once.

``probe`` hashes and checks a file and never raises: a file that is not a usable image comes
back with its ``reason`` (what ``curator.ingest`` records it as rejected for). ``hash_bytes``
is the same reading for bytes already in memory. ``worker_pool`` forks workers that leave
Ctrl-C to the parent: imports and ``curator.crop_hash`` read files on every core through it.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import signal
from collections.abc import Callable
from pathlib import Path

from curator import crop_hash, decode
from curator.decode import FORMATS, MAX_PIXELS, Unreadable

META = ("phash", "width", "height", "format", "mode", "exif_orientation", "color_sig",  # what probe reads
        "crop_phashes", "fine_hashes")
HASH_SIDE = 64  # images are reduced to about this before the 32x32 pHash resize


def probe(path: str, max_pixels: int | None = MAX_PIXELS) -> dict:
    """Hash and check one file. Never raises: a bad file comes back with ``reason`` set."""
    out: dict = {"path": path, "sha256": None, "bytes": 0, "reason": None}
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        out["reason"] = f"unreadable: {e.strerror or e}"
        return out
    out["sha256"], out["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    if not data:
        out["reason"] = "empty file (0 bytes)"
        return out
    try:
        out.update(_decode(data, max_pixels))
    except Unreadable as e:
        out["reason"] = str(e)
    except Exception as e:  # noqa: BLE001 - whatever one file does, the import goes on
        out["reason"] = f"cannot be decoded: {type(e).__name__}: {decode.first_line(e)}"
    return out


def hash_bytes(data: bytes) -> dict:
    """What an import stores of an image's pixels (size, format, colour signature, pHashes),
    from its bytes, under the same pixel limit as an import; raises Unreadable."""
    return _decode(data, MAX_PIXELS)


def _decode(data: bytes, max_pixels: int | None) -> dict:
    """Metadata, colour signature and pHash of an image held in memory; raises Unreadable."""
    import imagehash
    import numpy as np

    with decode.open_checked(io.BytesIO(data), nbytes=len(data), max_pixels=max_pixels) as img:
        meta = {"format": img.format, "mode": img.mode, "width": img.width, "height": img.height}
        if img.format not in FORMATS:
            raise Unreadable(f"unsupported format {img.format}: curator takes {', '.join(sorted(FORMATS))}")
        try:
            meta["exif_orientation"] = img.getexif().get(0x0112)  # a PNG's loads the pixels
        except Exception as e:  # noqa: BLE001
            raise Unreadable(f"corrupt or truncated: {decode.first_line(e)}") from None
        # The hashes need 32x32 grey and 4x4 colour pixels, not 12 megapixels: a JPEG is decoded
        # at 1/2..1/8 scale (every byte still decoded, so truncation is caught), then reduced.
        img = decode.decoded(img, draft=HASH_SIDE)
    factor = min(img.size) // HASH_SIDE
    if factor > 1:
        img = img.reduce(factor)
    meta["color_sig"] = color_signature(img)
    img = img.convert("L")
    meta["crop_phashes"], meta["fine_hashes"] = crop_hash.signatures(img)
    bits = imagehash.phash(img).hash.flatten()  # row-major, as imagehash's own hex string
    value = int.from_bytes(np.packbits(bits).tobytes(), "big")
    meta["phash"] = value - (1 << 64) if value >= 1 << 63 else value  # fits SQLite's INTEGER
    return meta


def color_signature(img) -> bytes:
    """48 bytes: an 8-bin histogram per RGB channel (24 uint16 shares of 65535).

    pHash is grey; this tells colour variants (a red and a blue part, two skin tones) apart,
    and being global it shrugs off the slight crops and resizes that near duplicates have.
    """
    import numpy as np

    px = np.asarray(img.convert("RGB"), dtype=np.uint8).reshape(-1, 3) >> 5
    hist = np.concatenate([np.bincount(px[:, c], minlength=8) for c in range(3)])
    return np.round(hist * 65535 / max(len(px), 1)).astype("<u2").tobytes()


_WORKER_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def quiet_worker() -> None:
    # Ctrl-C goes to the whole process group; only the parent should handle it. A forked
    # worker must not inherit the CLI's SIGTERM handler either: the pool stops workers with it.
    # Workers are forked with both signals blocked (see worker_pool) and unblock them only now: a
    # SIGTERM from a pool closing before this ran would otherwise reach the inherited handler,
    # be dropped when SIG_DFL replaced it, and leave the worker (and the import) waiting forever.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _WORKER_SIGNALS)


def worker_pool(workers: int, initializer: Callable[[], None] = quiet_worker):
    """A pool of forked workers that leave Ctrl-C to the parent and stop at the pool's SIGTERM.

    They are forked with SIGINT and SIGTERM blocked, which ``initializer`` (``quiet_worker``
    last) unblocks once their handlers are set: however soon the pool is closed, no worker
    loses its SIGTERM.
    """
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _WORKER_SIGNALS)
    try:
        return ctx.Pool(workers, initializer=initializer)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
