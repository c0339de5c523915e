"""Checkpoints that describe themselves: a model can be rebuilt from the file alone.

A checkpoint is a dict saved with ``torch.save``: the timm model name, the class names in head
order, the data config (input size, mean, std), the weights, the epoch and its metrics, the
split build and run it came from, the run it warm-started from and the training options
(``config``, a dict). ``last.pt`` adds the optimizer and early-stopping state so
``curator train --resume`` can go on from the file alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from curator import atomic
from curator.errors import InvalidInput, NotFound

FORMAT = "curator-checkpoint/1"


def describe(model, *, model_name: str, classes: list[str], data_config: dict, epoch: int,
             metrics: dict, build: str, run: str, parent: str | None, config: dict | None = None) -> dict:
    """The checkpoint of ``model`` as it is now (weights copied to the CPU); ``config``: the
    run's training options (``asdict(TrainConfig)``)."""
    import timm

    return {
        "format": FORMAT, "model": model_name, "classes": list(classes), "data_config": data_config,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "epoch": epoch, "metrics": metrics, "build": build, "run": run, "parent": parent,
        "config": dict(config or {}),
        "timm_version": timm.__version__, "torch_version": torch.__version__,
    }


def save(ckpt: dict, path: str | os.PathLike) -> Path:
    """Write atomically: a kill mid-write leaves the previous file whole."""
    return atomic.write(path, lambda tmp: torch.save(ckpt, tmp))


def load(path: str | os.PathLike) -> dict:
    """Read a curator checkpoint (on the CPU).

    Raises:
        NotFound: no file there.
        InvalidInput: the file is not a curator checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"no checkpoint at {path}: the run saved no best epoch, or its folder moved")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - a damaged file is the user's to know about
        raise InvalidInput(f"{path} is not a readable checkpoint: {e}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise InvalidInput(f"{path} is not a curator checkpoint (expected format {FORMAT})")
    return ckpt


def build_model(ckpt: dict):
    """The timm model of a checkpoint with its weights loaded strictly, in eval mode."""
    import timm

    model = timm.create_model(ckpt["model"], pretrained=False, num_classes=len(ckpt["classes"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()
