"""Where the work runs: the torch device, and this process's place in a ``torchrun`` job.

Training, prediction, embedding and the service all choose their device with ``pick_device``;
training and bulk prediction read their place in a job (RANK, WORLD_SIZE, LOCAL_RANK) with
``Dist.from_env``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from curator.errors import InvalidInput


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: the GPU when there is one, else the CPU.

    Raises:
        InvalidInput: an unknown device name, or a GPU asked for where torch sees none.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InvalidInput(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInput(f"device {name} asked for, but torch sees no GPU here: use --device cpu")
    return device


@dataclass
class Dist:
    """Where this process sits in a torchrun job (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Dist:
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))

    def broadcast(self, value):
        """Rank 0's ``value``, on every rank of the job (``value`` itself without a job)."""
        if self.world == 1:
            return value
        import torch.distributed as tdist

        box = [value]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def share_cores(self, device: torch.device) -> None:
        """On the CPU, the job's processes share the machine's cores instead of each taking all."""
        if self.world > 1 and device.type == "cpu":
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.world))


def init_process_group(device: torch.device) -> None:
    """Join this torchrun job's process group for DistributedDataParallel (nccl on GPUs, gloo on
    the CPU); a GPU process takes ``cuda:LOCAL_RANK``."""
    import torch.distributed as tdist

    if not tdist.is_initialized():
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
