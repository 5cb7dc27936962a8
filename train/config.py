"""One training run's settings as a value: :class:`TrainConfig`, and the command-line flags that build it.

Each training command builds its config once in ``main()`` (:meth:`TrainConfig.from_args`) and hands it to
:func:`train.loop.run`; the defaults are the EDSR recipe, and ``train.gan.GANConfig`` extends the config with the
GAN's options and the SRGAN recipe's defaults. A run records its config as plain values (:meth:`TrainConfig.to_dict`)
in ``OUT/config.jsonl`` and in its checkpoint.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Self

import torch

from sr_app.methods import REGISTRY
from sr_app.models import NetworkConfig
from train.checkpoint import CHECKPOINT_NAME
from train.losses import PIXEL_LOSSES


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything a training run needs besides its trainer class (defaults: the EDSR recipe)."""

    network: NetworkConfig  # the generator's architecture (a fresh network, or the one --init must hold)
    data: tuple[Path, ...]  # folders of HR training images
    out: Path  # run folder: checkpoint, logs, exported weights
    iterations: int = 300_000  # total updates; a resumed run continues to it
    batch_size: int = 16  # global batch, split across the processes of a distributed run
    lr_patch: int = 48  # LR patch side in pixels (HR is scale × this)
    lr: float = 1e-4  # Adam learning rate
    lr_step: int = 200_000  # multiply the learning rate by lr_gamma every lr_step updates
    lr_gamma: float = 0.5
    loss: str = "l1"  # the pixel loss: a key of train.losses.PIXEL_LOSSES
    ema: float = 0.0  # decay of the exponential moving average that is validated and exported, in [0, 1); 0: off
    bf16: bool = False  # bfloat16 autocast for forward passes
    workers: int = 2  # DataLoader worker processes
    log_every: int = 100  # updates between CSV log rows
    val_every: int = 1000  # updates between validations (and exports)
    checkpoint_every: int = 500  # updates between checkpoints
    val_data: tuple[Path, ...] = ()  # benchmark folders (HR/, optionally LR_x4/); the first decides the best weights
    export: Path | None = None  # weights file to write; None: the method's registry file in out
    resume: bool = False  # continue from out/checkpoint.pt
    init: Path | None = None  # weights file the generator starts from; None: random initialisation
    device: str | None = None  # "cuda", "mps" or "cpu"; None: the best available
    seed: int = 0  # the random seed (process rank added)
    command: str = "python -m train.sr"  # the command that trains, recorded in the exported weights

    @property
    def method(self) -> str:
        """The registry method the exported weights are for: the one named like the network's architecture."""
        return self.network.arch

    @property
    def export_file(self) -> Path:
        return self.export or self.out / REGISTRY[self.method].weights

    @property
    def checkpoint_file(self) -> Path:
        return self.out / CHECKPOINT_NAME

    @classmethod
    def from_args(cls, args: argparse.Namespace, **values: Any) -> Self:
        """The config of parsed flags (:func:`add_arguments`' and a command's own): every field named like a flag
        takes its value, ``values`` gives the fields no flag sets (``network``) and may override flags; the other
        fields keep their defaults."""
        names = {field.name for field in fields(cls)} - values.keys()
        flags = {name: tuple(v) if isinstance(v, list) else v for name, v in vars(args).items() if name in names}
        return cls(**flags, **values)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain values (JSON, and ``torch.load(weights_only=True)``): paths as text, the network as
        its ``arch`` and config."""
        return {field.name: _plain(getattr(self, field.name)) for field in fields(self)}


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if isinstance(value, NetworkConfig):
        return {"arch": value.arch, **value.to_dict()}
    return value


def device_name(text: str) -> str:
    """``--device``: a device name torch knows (``cuda``, ``cuda:1``, ``mps``, ``cpu``); another is a usage error."""
    try:
        torch.device(text)
    except RuntimeError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    return text


def add_arguments(parser: argparse.ArgumentParser, recipe: type[TrainConfig]) -> None:
    """The command-line flags of every :class:`TrainConfig` field but ``network`` and ``command``, with ``recipe``'s
    defaults."""
    parser.add_argument("--data", type=Path, action="append", required=True, help="folder of HR images (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoint, CSV log, exported weights")
    parser.add_argument(
        "--iterations", type=int, default=recipe.iterations, help="total updates (resume continues to it)"
    )
    parser.add_argument("--batch-size", type=int, default=recipe.batch_size, help="global batch size")
    parser.add_argument("--lr-patch", type=int, default=recipe.lr_patch, help="LR patch side (HR is 4× this)")
    parser.add_argument("--lr", type=float, default=recipe.lr, help="Adam learning rate")
    parser.add_argument("--lr-step", type=int, default=recipe.lr_step, help="decay the learning rate every N updates")
    parser.add_argument("--lr-gamma", type=float, default=recipe.lr_gamma, help="learning-rate decay factor")
    parser.add_argument("--loss", choices=sorted(PIXEL_LOSSES), default=recipe.loss, help="pixel loss")
    parser.add_argument(
        "--ema", type=float, default=recipe.ema, help="EMA decay of validated/exported weights (0: off)"
    )
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast for forward passes")
    parser.add_argument("--workers", type=int, default=recipe.workers, help="DataLoader worker processes")
    parser.add_argument("--log-every", type=int, default=recipe.log_every)
    parser.add_argument("--val-every", type=int, default=recipe.val_every)
    parser.add_argument("--checkpoint-every", type=int, default=recipe.checkpoint_every)
    parser.add_argument("--val-data", type=Path, action="append", default=[], help="benchmark folder (HR/, LR_x4/)")
    parser.add_argument("--export", type=Path, help="weights file to write (default: the method's file in OUT)")
    parser.add_argument("--resume", action="store_true", help=f"continue from OUT/{CHECKPOINT_NAME}")
    parser.add_argument("--init", type=Path, help="start the generator from this weights file")
    parser.add_argument("--device", type=device_name, help="cuda, mps or cpu (default: best available)")
    parser.add_argument("--seed", type=int, default=recipe.seed)
