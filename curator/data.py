"""The model's data pipeline: files to uint8 tensors, cached or streamed, augmented on the device.

Images are decoded once to ``size x size`` uint8 (shorter side resized, centre crop, on white
like the hashes), so a batch is a cheap ``(B, 3, S, S)`` tensor. Augmentation (left-right flip,
slight rotation and zoom) runs on the whole batch with ``affine_grid``/``grid_sample``, on the
GPU when there is one, and normalisation uses the model's own mean and std. A build that fits
in ``cache_mib`` is decoded once for the whole run; a bigger one streams through DataLoader
workers every epoch. Both paths shuffle with the same seeded permutation.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO

import numpy as np
import torch
from torch.nn import functional as F


def load_pixels(source: str | os.PathLike | IO[bytes], size: int, *, max_pixels: int | None = None) -> np.ndarray:
    """One image as ``(size, size, 3)`` uint8: EXIF-rotated, on white, shorter side resized, centred.

    Every mode and format of ``curator.decode`` is read the same way as at import (16-bit and
    float greyscale scaled, not clipped); a big JPEG is decoded at a fraction of its scale.

    Args:
        max_pixels: the hard pixel limit; None (library images, already judged at import)
            keeps only the bytes-per-pixel bomb rule.

    Raises:
        FileNotFoundError, PermissionError: the file cannot be opened.
        curator.decode.Unreadable: not an image, corrupt, or a decompression bomb.
    """
    from PIL import Image as PILImage

    from curator.decode import read_rgb

    img = read_rgb(source, draft=size, max_pixels=max_pixels)
    scale = size / min(img.size)
    w, h = max(size, round(img.width * scale)), max(size, round(img.height * scale))
    img = img.resize((w, h), PILImage.BILINEAR, reducing_gap=3.0)
    left, top = (w - size) // 2, (h - size) // 2
    return np.array(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


class Pixels(torch.utils.data.Dataset):
    """Files as ``(uint8 (3, S, S), ok)``; an unreadable file gives zeros and ``ok=False``."""

    def __init__(self, paths: Sequence[str], size: int):
        self.paths, self.size = list(paths), size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            px = torch.from_numpy(load_pixels(self.paths[i], self.size)).permute(2, 0, 1)
            return px.contiguous(), True
        except Exception:  # noqa: BLE001 - one bad image never stops a batch
            return torch.zeros(3, self.size, self.size, dtype=torch.uint8), False


def default_workers() -> int:
    """DataLoader workers: the cores this process may use, less one for the model, at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(8, cores - 1))


def loader(paths: Sequence[str], size: int, *, batch_size: int, workers: int | None = None,
           order: Sequence[int] | None = None) -> torch.utils.data.DataLoader:
    """Batches of ``(uint8 (B, 3, S, S), ok (B,))`` in ``order`` (default: as given)."""
    workers = default_workers() if workers is None else workers
    return torch.utils.data.DataLoader(
        Pixels(paths, size), batch_size=batch_size, sampler=list(order) if order is not None else None,
        num_workers=workers, persistent_workers=False, pin_memory=torch.cuda.is_available(),
        multiprocessing_context="fork" if workers and os.name == "posix" else None,
    )


@dataclass
class Examples:
    """Labelled images for one split, cached in memory when they fit, else streamed each epoch."""

    paths: list[str]
    labels: torch.Tensor  # (N,) int64
    size: int
    workers: int | None = None
    pixels: torch.Tensor | None = None  # (N, 3, S, S) uint8 once cached
    ok: torch.Tensor | None = None  # (N,) bool once cached
    missing: int = 0  # images of the split left out: no readable path (curator.locations)

    @property
    def nbytes(self) -> int:
        return len(self.paths) * 3 * self.size * self.size

    def cache(self, *, on_progress=None) -> None:
        """Decode every image once (in workers) and keep them; unreadable ones are masked out."""
        chunks, oks = [], []
        for px, ok in loader(self.paths, self.size, batch_size=64, workers=self.workers):
            chunks.append(px)
            oks.append(ok)
            if on_progress:
                on_progress(len(px))
        empty = torch.zeros(0, 3, self.size, self.size, dtype=torch.uint8)
        self.pixels = torch.cat(chunks) if chunks else empty
        self.ok = torch.cat(oks) if oks else torch.zeros(0, dtype=torch.bool)

    def batches(self, batch_size: int, *, order: Sequence[int]) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``(uint8 pixels, labels, ok)`` batches following ``order`` (indices into this split)."""
        order = torch.as_tensor(list(order), dtype=torch.long)
        if self.pixels is not None:
            for i in range(0, len(order), batch_size):
                idx = order[i:i + batch_size]
                yield self.pixels[idx], self.labels[idx], self.ok[idx]
            return
        start = 0
        for px, ok in loader(self.paths, self.size, batch_size=batch_size, workers=self.workers, order=order.tolist()):
            idx = order[start:start + len(px)]
            start += len(px)
            yield px, self.labels[idx], ok


def shard(n: int, *, seed: int, epoch: int, rank: int = 0, world: int = 1, shuffle: bool = True,
          batch_size: int | None = None) -> list[int]:
    """This rank's indices for one epoch: a seeded permutation, padded so every rank gets as many.

    With ``batch_size``, a last batch of a single image is left out (BatchNorm cannot train on
    one image; the shuffle leaves out a different one each epoch, and every rank the same count).
    """
    if shuffle:
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(n, generator=g).tolist()
    else:
        order = list(range(n))
    if world > 1 and n:
        per = math.ceil(n / world)
        order = (order * (1 + per * world // n))[:per * world]
        order = order[rank::world]
    if batch_size and len(order) % batch_size == 1 and len(order) > 1:
        order = order[:-1]
    return order


def normalise(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` to the float input the model was built for."""
    m = torch.tensor(mean, device=pixels.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=pixels.device).view(1, 3, 1, 1)
    return (pixels.float() / 255.0 - m) / s


def augment(x: torch.Tensor, *, flip: bool = True, rotate: float = 10.0, zoom: float = 0.1,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Random left-right flip, rotation within ``±rotate`` degrees and zoom within ``±zoom``.

    One affine warp per image, for the whole batch at once: ``x`` is float ``(B, C, H, W)``.
    Edges are extended (``border``), so zooming out shows no black frame.
    """
    b = x.shape[0]
    if b == 0 or (not flip and rotate == 0 and zoom == 0):
        return x
    rand = torch.rand(3, b, generator=generator).to(x.device)
    angle = (rand[0] * 2 - 1) * math.radians(rotate)
    scale = 1 + (rand[1] * 2 - 1) * zoom  # > 1 zooms in
    mirror = torch.where(rand[2] < 0.5, -1.0, 1.0) if flip else torch.ones(b, device=x.device)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([
        torch.stack([cos * mirror, -sin, torch.zeros_like(cos)], 1),
        torch.stack([sin * mirror, cos, torch.zeros_like(cos)], 1),
    ], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
