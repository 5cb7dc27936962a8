"""Running one training on several processes under ``torchrun`` (gloo on CPU, nccl on GPU), or on one without it.

Every process trains on its share of the global batch and DistributedDataParallel averages the gradients; the main
process (rank 0) alone validates, logs, checkpoints and exports.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sr_app.upscalers import default_device


def setup_distributed(device_name: str | None) -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the process group when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = torch.device(device_name) if device_name else default_device()
    if world == 1:
        return 0, 1, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world, device


def teardown_distributed() -> None:
    """Leave torchrun's process group once every process is done."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def is_main_process() -> bool:
    """Rank 0 of a distributed run, or the only process: the one that validates, logs, checkpoints and exports."""
    return not dist.is_initialized() or dist.get_rank() == 0


def wrap_distributed(module: nn.Module) -> nn.Module:
    """``module`` inside DistributedDataParallel when running under torchrun, else itself.

    Buffers are not broadcast at every forward pass: they are constants or per-process batch-norm statistics (rank
    0's are validated and exported), and broadcasting ``channels_last`` buffers fails in DDP.
    """
    if not dist.is_initialized():
        return module
    device = next(module.parameters()).device
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, broadcast_buffers=False)
