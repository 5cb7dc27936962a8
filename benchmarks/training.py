"""Training speed: ``train.loop.Trainer.train_step`` next to a bare training step, and the data loader's stalls.

    python benchmarks/training.py                     # EDSR, batch 16, LR patch 48: fp32 (and bf16 where fast)
    python benchmarks/training.py --arch srresnet --patches 24 --precisions bf16
    python benchmarks/training.py --loader ../shared/data/train/T91 --precisions bf16   # also with real data

The bare step is the update written out by hand: the same network (``channels_last``), the same batch, bf16
autocast for bf16, L1 loss, ``zero_grad``, ``backward`` and an Adam step. Both start from the same weights and are
timed in one process, interleaved (one step of each per round, so that other work on the machine slows both alike):
the fastest of ``--steps`` rounds after a warm-up round (``sr_app.timing.time_interleaved``). Random tensors stand in
for data.

``--loader FOLDER`` then trains ``--steps`` more rounds on real patches through a DataLoader as ``python -m train.sr``
builds it (``train.data.PatchDataset``, ``--workers`` processes), each round one step on the loader's next batch and
one on the fixed random batch, and reports how long each step waited for its batch (the first batch, which starts
the workers, is left out) and the fastest step on each kind of batch.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.inference import synchronize  # noqa: E402
from sr_app.models import CONFIGS, build_network  # noqa: E402
from sr_app.timing import time_interleaved  # noqa: E402
from sr_app.upscalers import default_device, use_bf16  # noqa: E402
from train.config import TrainConfig  # noqa: E402
from train.data import PatchDataset, make_loader  # noqa: E402
from train.loop import Trainer, on_device  # noqa: E402


def bare_step(model: nn.Module, bf16: bool) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """One hand-written L1 update of ``model`` with Adam, as a function of an (LR, HR) batch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999))
    device_type = next(model.parameters()).device.type

    def step(lr: torch.Tensor, hr: torch.Tensor) -> None:
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.l1_loss(model(lr), hr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def make_trainer(model: nn.Module, bf16: bool, device: torch.device) -> Trainer:
    """A :class:`Trainer` with ``python -m train.sr``'s defaults (L1, Adam at 1e-4)."""
    return Trainer(model, TrainConfig(network=model.config, data=(), out=Path("."), bf16=bf16), device)


def loader_stalls(
    trainer: Trainer, loader: DataLoader, fixed: tuple[torch.Tensor, torch.Tensor], steps: int, sync: Callable[[], None]
) -> dict[str, float]:
    """Seconds over ``steps`` rounds of: wait for ``loader``'s next batch, a step on it, a step on the ``fixed``
    batch. The fastest step on real data and on the fixed batch (the worker processes share the CPU with the step),
    and the median and longest wait."""
    batches = iter(loader)
    next(batches)  # starts the workers
    times: dict[str, list[float]] = {"wait": [], "real": [], "fixed": []}
    for _ in range(steps):
        start = time.perf_counter()
        batch = next(batches)
        waited = time.perf_counter()
        trainer.train_step(*on_device(batch, trainer.device))
        sync()
        stepped = time.perf_counter()
        trainer.train_step(*fixed)
        sync()
        times["wait"].append(waited - start)
        times["real"].append(stepped - waited)
        times["fixed"].append(time.perf_counter() - stepped)
    return {
        "real_s": min(times["real"]),
        "fixed_s": min(times["fixed"]),
        "wait_s": statistics.median(times["wait"]),
        "max_wait_s": max(times["wait"]),
    }


def compare(args: argparse.Namespace, patch: int, precision: str, device: torch.device) -> None:
    """Print one row: the bare step and the Trainer's on random LR ``patch``² batches; then, with ``--loader``, the
    Trainer on real data."""
    config = CONFIGS[args.arch]()
    bf16 = precision == "bf16"
    network = build_network(config).to(device, memory_format=torch.channels_last).train()
    bare = bare_step(copy.deepcopy(network), bf16)
    trainer = make_trainer(network, bf16, device)
    lr, hr = (
        torch.rand(args.batch_size, 3, side, side, device=device).contiguous(memory_format=torch.channels_last)
        for side in (patch, patch * config.scale)
    )
    steps = {"bare": lambda: bare(lr, hr), "trainer": lambda: trainer.train_step(lr, hr)}
    seconds = {name: min(times) for name, times in time_interleaved(steps, args.steps, synchronize(device)).items()}
    ratio = seconds["trainer"] / seconds["bare"]
    print(f"{patch} | {precision} | {seconds['bare']:.3f} | {seconds['trainer']:.3f} | {ratio:.2f}")
    if args.loader:
        dataset = PatchDataset([args.loader], config.scale, patch)
        loader = make_loader(dataset, args.batch_size, args.workers, device)
        stalls = loader_stalls(trainer, loader, (lr, hr), args.steps, synchronize(device))
        print(
            f"  real data ({len(dataset.pairs)} images, {args.workers} workers): step {stalls['real_s']:.3f} s, "
            f"{stalls['fixed_s']:.3f} s on a fixed batch; waits for a batch: median {stalls['wait_s'] * 1000:.1f} ms, "
            f"max {stalls['max_wait_s'] * 1000:.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=list(CONFIGS), default="edsr", help="network (its default config)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patches", default="48", help="LR patch sides, comma-separated")
    parser.add_argument("--precisions", help="fp32, bf16 or fp32,bf16 (default: bf16 too where it is fast)")
    parser.add_argument("--steps", type=int, default=5, help="timed rounds (and loader steps)")
    parser.add_argument("--loader", type=Path, help="folder of HR images: also time real data through a DataLoader")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader worker processes for --loader")
    parser.add_argument("--device")
    args = parser.parse_args()
    device = torch.device(args.device) if args.device else default_device()
    precisions = args.precisions or ("fp32,bf16" if use_bf16("auto", device) else "fp32")
    print(f"{args.arch}, device {device}, {torch.get_num_threads()} threads, batch {args.batch_size}")
    print(f"fastest of {args.steps} interleaved rounds after a warm-up")
    print("lr_patch | dtype | bare_s | trainer_s | trainer/bare")
    for patch in map(int, args.patches.split(",")):
        for precision in precisions.split(","):
            compare(args, patch, precision, device)


if __name__ == "__main__":
    main()
