"""A run's checkpoint: :class:`Checkpoint` writes and reads the layout of ``OUT/checkpoint.pt`` in one place.

The file is a ``torch.save`` dict of tensors and plain values only: ``iteration``, ``best_psnr``, ``init``,
``prior_iterations`` (:class:`Progress`), ``arch`` and ``config`` (the network), ``trainer`` (the trainer's state
dict: networks, optimizers, schedulers, EMA), ``rng`` (the CPU generator's state) and ``train_config`` (the
:class:`train.config.TrainConfig` of the command that wrote it, as plain values). It is read with
``weights_only=True``, so resuming never unpickles arbitrary objects. Files written before a key existed still load:
without ``arch`` the network is an EDSR, without ``init``/``prior_iterations`` the run's own start serves, without
``train_config`` it is empty.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from sr_app.errors import UserError
from sr_app.models import CONFIGS, NetworkConfig

#: The checkpoint's file name in the run folder.
CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointError(UserError, ValueError):
    """A run's checkpoint cannot be resumed: it holds more than tensors and plain values, or another network."""


@dataclass(frozen=True)
class Progress:
    """How far a run has come: its updates, its best validation PSNR, and the weights file it started from."""

    iteration: int = 0  # updates done
    best_psnr: float = -math.inf  # dB on the first validation set; -inf before any validation
    init: str = ""  # the --init file as shown to the user (train.loop.shown_path); "" for a random start
    prior_iterations: int = 0  # updates the init file had had before (its iterations_total)


@dataclass(frozen=True)
class Checkpoint:
    """Everything a run needs to continue where it stopped."""

    progress: Progress
    network: NetworkConfig
    trainer: dict[str, Any]  # Trainer.state_dict()
    rng: torch.Tensor  # torch.get_rng_state(): uint8, on the CPU
    train_config: dict[str, Any] = field(default_factory=dict)  # TrainConfig.to_dict(); {} in older files

    def save(self, path: Path) -> None:
        """Write the checkpoint to ``path`` atomically: a crash leaves the previous file whole."""
        state = asdict(self.progress) | {
            "arch": self.network.arch,
            "config": self.network.to_dict(),
            "trainer": self.trainer,
            "rng": self.rng,
            "train_config": self.train_config,
        }
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, start: Progress) -> Checkpoint:
        """The checkpoint at ``path``, its tensors on the CPU; ``start`` (the run's own init file and its prior
        updates) serves files written before the checkpoint recorded them."""
        if not path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise CheckpointError(f"{path} holds more than tensors and plain values; refusing to load it") from error
        progress = Progress(
            state["iteration"],
            state["best_psnr"],
            state.get("init", start.init),
            state.get("prior_iterations", start.prior_iterations),
        )
        network = CONFIGS[state.get("arch", "edsr")](**state["config"])
        return cls(progress, network, state["trainer"], state["rng"], state.get("train_config", {}))
